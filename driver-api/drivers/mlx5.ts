// mlx5-like reference driver: TX out-of-order by crypto state rebuilding (resync params + DUMP of the
// record prefix), RX resync DRIVER_REQ_ASYNC (request start on the device's flag, GET_PSV, request end).
// Models drivers/net/ethernet/mellanox/mlx5/core/en_accel/ktls_tx.c and ktls_rx.c.
import type { Nic } from '../../emulator/nic/nic.ts';
import { recSeqToBigInt } from '../../emulator/tls/crypto-info.ts';
import { TcpSegmentView } from '../../emulator/wire/packet.ts';
import { seqAdd, seqLt } from '../../emulator/wire/seq.ts';
import { EINVAL, type CryptoInfo, type NetDevice, type Sock, type SkBuff, type TlsContext, type TlsDevOps, type TlsKernelHelpers, type TlsOffloadCtxDir } from '../ops.ts';
import { WorkQueue, defaultFeatures, makeNetDevice, rxSkb, type DriverModule, type ProbeOptions } from './common.ts';

/** Knobs: `psvDelayUs` (GET_PSV completion latency), `psvNeverAnswers` (firmware fault: cancel after
 * `psvTimeoutUs`), `dumpChunk` (bytes per DUMP WQE; mlx5 uses the hw MTU). */
export type Mlx5Options = ProbeOptions & {
  psvDelayUs?: number;
  psvNeverAnswers?: boolean;
  psvTimeoutUs?: number;
  dumpChunk?: number;
};

type TxPriv = { handle: number; sk: Sock; expectedSeq: number; startSeq: number };
/**
 * workQueued: resync->work is queued and has not run yet (queue_work() fails meanwhile). Nothing limits the
 * GET_PSVs in flight: each run of the work posts one.
 */
type RxPriv = { handle: number; sk: Sock; workQueued: boolean; deleted: boolean };

function probe(nic: Nic, kernel: TlsKernelHelpers, opts: Mlx5Options = {}): NetDevice {
  const wq = new WorkQueue(opts.schedule);
  // sq->hw_mtu: the MTU plus Ethernet header, VLAN tag and FCS (MLX5E_SW2HW_MTU) for an MTU of 1500.
  const dumpChunk = opts.dumpChunk ?? 1500 + 22;
  const rxByHandle = new Map<number, RxPriv>();
  const view = new TcpSegmentView();
  const c = nic.counters;

  const ops: TlsDevOps = {
    // models mlx5e_ktls_add()
    tlsDevAdd(_netdev: NetDevice, sk: Sock, direction: TlsOffloadCtxDir, info: CryptoInfo, startSn: number): number {
      const handle = nic.addContext(direction, { tuple: sk.tuple, info, startSeq: startSn, rxResync: 'scan' });
      if (handle < 0) return handle;
      if (direction === 'tx') {
        sk.tlsCtx.driverState.tx = { handle, sk, expectedSeq: startSn >>> 0, startSeq: startSn >>> 0 } satisfies TxPriv;
      } else {
        const priv: RxPriv = { handle, sk, workQueued: false, deleted: false };
        sk.tlsCtx.driverState.rx = priv;
        rxByHandle.set(handle, priv);
        kernel.tlsOffloadRxResyncSetType(sk, 'driver_req_async');
      }
      return 0;
    },

    // models mlx5e_ktls_del()
    tlsDevDel(_netdev: NetDevice, ctx: TlsContext, direction: TlsOffloadCtxDir): void {
      const priv = ctx.driverState[direction] as TxPriv | RxPriv | undefined;
      if (!priv) return;
      nic.delContext(priv.handle);
      if (direction === 'rx') {
        (priv as RxPriv).deleted = true;
        rxByHandle.delete(priv.handle);
      }
      ctx.driverState[direction] = undefined;
    },

    // models mlx5e_ktls_rx_resync(): only RX is resynced by the stack on mlx5
    tlsDevResync(_netdev: NetDevice, sk: Sock, seq: number, rcdSn: Uint8Array, direction: TlsOffloadCtxDir): number {
      if (direction !== 'rx') return -EINVAL;
      const priv = sk.tlsCtx.driverState.rx as RxPriv | undefined;
      if (!priv) return -EINVAL;
      // The driver posts the static params and counts res_ok (mlx5e_ktls_rx_handle_resync_list()); whether
      // the device takes them it never learns (the device's verdict is in its event log, not in ethtool).
      nic.rxResync(priv.handle, seq, recSeqToBigInt(rcdSn));
      c.rx_tls_resync_res_ok++;
      return 0;
    },
  };

  // models mlx5e_ktls_handle_tx_skb() + mlx5e_ktls_tx_handle_ooo() + tx_sync_info_get()
  function startXmit(skb: SkBuff): void {
    const tx = skb.sk?.tlsCtx.txConf === 'hw' ? (skb.sk.tlsCtx.driverState.tx as TxPriv | undefined) : undefined;
    if (!tx) {
      nic.transmit({ frame: skb.data, mss: skb.gsoSize });
      return;
    }
    if (view.parse(skb.data) !== 'tcp') return;
    const datalen = view.payloadLength;
    const seq = view.seq;
    // models tls_is_skb_tx_device_offloaded(): from the start marker on, only skbs marked for the device are
    // its to encrypt; one the stack's fallback encrypted already (skb->decrypted clear) leaves as it is.
    if (datalen === 0 || (!skb.decrypted && !seqLt(seq, tx.startSeq))) {
      nic.transmit({ frame: skb.data, mss: skb.gsoSize });
      return;
    }
    if (tx.expectedSeq !== seq) {
      c.tx_tls_ooo++;
      const found = kernel.tlsGetRecord(tx.sk, seq);
      if (!found) {
        c.tx_tls_drop_no_sync_data++; // acked already: safe to drop (comment in mlx5e_ktls_tx_handle_ooo)
        return;
      }
      const { record, rcdSn } = found;
      const endsBefore = seqLt(seqAdd(seq, datalen - 1), record.startSeq);
      if (record.data.length === 0) {
        // Start marker: data from before offload started.
        if (endsBefore) {
          c.tx_tls_skip_no_sync_data++;
          if (!skb.decrypted) {
            nic.transmit({ frame: skb.data, mss: skb.gsoSize });
            return;
          }
          // Marked for the device yet before the start: cannot be right (WARN_ON_ONCE, dropped; mlx5 has
          // counted no tx_tls_drop_bypass_req since "net/mlx5e: kTLS, Fix corner-case checks in TX resync flow").
          return;
        }
        c.tx_tls_drop_no_sync_data++; // straddles the start marker: breaks the contract with the kernel
        return;
      }
      if (endsBefore) {
        c.tx_tls_drop_no_sync_data++;
        return;
      }
      const syncLen = (seq - record.startSeq) >>> 0;
      nic.txSetState(tx.handle, record.startSeq, rcdSn);
      // mlx5e_ktls_tx_handle_ooo() counts no tx_tls_resync_bytes (only the removed Innova path did): the
      // prefix shows in tx_tls_dump_bytes.
      for (let off = 0; off < syncLen; off += dumpChunk) {
        nic.txDump(tx.handle, record.data.subarray(off, Math.min(syncLen, off + dumpChunk)));
      }
    }
    tx.expectedSeq = seqAdd(seq, datalen);
    nic.transmit({ frame: skb.data, ctx: tx.handle, mss: skb.gsoSize });
  }

  // models mlx5e_ktls_handle_get_psv_completion() (and, for a GET_PSV that never completes, the error CQE
  // mlx5e_poll_ico_cq() hands to mlx5e_ktls_rx_resync_async_request_cancel())
  const psvCompletion = (priv: RxPriv) => {
    if (priv.deleted) {
      // MLX5E_PRIV_RX_FLAG_DELETING: counted as a skip. The driver's cancel there touches a context tls_dev_del
      // already let go; the model leaves that call out (the stack would report it as helper-after-del).
      c.rx_tls_resync_req_skip++;
      return;
    }
    const psv = nic.rxTracking(priv.handle);
    if (opts.psvNeverAnswers || psv.resyncTcpSn < 0) {
      // error CQE, or the device not tracking (record_tracker_state / auth_state): skip and cancel (6.18,
      // "net/mlx5e: kTLS, Cancel RX async resync request in error flows")
      c.rx_tls_resync_req_skip++;
      kernel.tlsOffloadRxResyncAsyncRequestCancel(priv.sk);
      return;
    }
    kernel.tlsOffloadRxResyncAsyncRequestEnd(priv.sk, psv.resyncTcpSn);
    c.rx_tls_resync_req_end++;
  };

  // models resync_handle_work(): posts one GET_PSV (resync_post_get_progress_params()) per run
  const resyncWork = (priv: RxPriv) => {
    priv.workQueued = false;
    if (priv.deleted) return; // cancel_work_sync() in mlx5e_ktls_del_rx(): a queued work never runs
    wq.schedule(opts.psvNeverAnswers ? opts.psvTimeoutUs ?? 1000 : opts.psvDelayUs ?? 0, () => psvCompletion(priv));
  };

  // models mlx5e_ktls_handle_rx_skb() + resync_update_sn() + resync_queue_get_psv()
  nic.onReceive((cqe) => {
    const skb = rxSkb(cqe);
    const req = cqe.resyncRequest;
    const priv = req ? rxByHandle.get(cqe.ctx) : undefined;
    // While the work is still queued, queue_work() fails: resync_queue_get_psv() returns false (6.18) and no
    // request_start follows; the GET_PSV that work posts answers for the first packet's window. Once it has
    // run, the work queues again even with its GET_PSV in flight: a second GET_PSV, whose completion makes a
    // second request_end (the kernel takes the later one).
    if (req && priv && !priv.workQueued) {
      priv.workQueued = true;
      wq.schedule(0, () => resyncWork(priv));
      kernel.tlsOffloadRxResyncAsyncRequestStart(priv.sk, req.packetSeq, req.packetLen);
      c.rx_tls_resync_req_start++;
    }
    kernel.netifReceiveSkb(skb);
    wq.flush();
  });

  return makeNetDevice(opts.name ?? 'mlx5_0', nic, defaultFeatures(nic, opts.features), ops, startXmit);
}

export const mlx5Driver: DriverModule = { name: 'mlx5', probe };
export default mlx5Driver;
