// nfp-like reference driver: TX out-of-order by next record sync (software fallback for the segment, a
// TX resync request when ahead, tls_dev_resync(TX) on the next record), RX resync by stream scan
// (DRIVER_REQ) or stack-driven (CORE_NEXT_HINT). Models drivers/net/ethernet/netronome/nfp/crypto/tls.c
// and nfp_net_tls_tx() in nfp_net_common.c.
import type { Nic } from '../../emulator/nic/nic.ts';
import { recSeqToBigInt } from '../../emulator/tls/crypto-info.ts';
import { TLS_HEADER_SIZE } from '../../emulator/tls/record.ts';
import { TcpSegmentView } from '../../emulator/wire/packet.ts';
import { seqAdd, seqDiff } from '../../emulator/wire/seq.ts';
import { EINVAL, type CryptoInfo, type NetDevice, type Sock, type SkBuff, type TlsContext, type TlsDevOps, type TlsKernelHelpers, type TlsOffloadCtxDir } from '../ops.ts';
import { defaultFeatures, makeNetDevice, rxSkb, type DriverModule, type ProbeOptions } from './common.ts';

/** Knobs: `rxResyncType`: 'driver_req' (device stream scan, default) or 'core_next_hint'. */
export type NfpOptions = ProbeOptions & { rxResyncType?: 'driver_req' | 'core_next_hint' };

type TxPriv = { handle: number; sk: Sock; nextSeq: number; startSeq: number };
type RxPriv = { handle: number; sk: Sock };

function probe(nic: Nic, kernel: TlsKernelHelpers, opts: NfpOptions = {}): NetDevice {
  const rxType = opts.rxResyncType ?? 'driver_req';
  const rxByHandle = new Map<number, RxPriv>();
  const view = new TcpSegmentView();
  const c = nic.counters;

  const ops: TlsDevOps = {
    // models nfp_net_tls_add()
    tlsDevAdd(_netdev: NetDevice, sk: Sock, direction: TlsOffloadCtxDir, info: CryptoInfo, startSn: number): number {
      const handle = nic.addContext(direction, {
        tuple: sk.tuple, info, startSeq: startSn, rxResync: rxType === 'driver_req' ? 'scan' : 'hint',
      });
      if (handle < 0) return handle;
      if (direction === 'tx') {
        sk.tlsCtx.driverState.tx = { handle, sk, nextSeq: startSn >>> 0, startSeq: startSn >>> 0 } satisfies TxPriv;
      } else {
        const priv: RxPriv = { handle, sk };
        sk.tlsCtx.driverState.rx = priv;
        rxByHandle.set(handle, priv);
        kernel.tlsOffloadRxResyncSetType(sk, rxType);
      }
      return 0;
    },

    // models nfp_net_tls_del()
    tlsDevDel(_netdev: NetDevice, ctx: TlsContext, direction: TlsOffloadCtxDir): void {
      const priv = ctx.driverState[direction] as TxPriv | RxPriv | undefined;
      if (!priv) return;
      nic.delContext(priv.handle);
      if (direction === 'rx') rxByHandle.delete(priv.handle);
      ctx.driverState[direction] = undefined;
    },

    // models nfp_net_tls_resync()
    tlsDevResync(_netdev: NetDevice, sk: Sock, seq: number, rcdSn: Uint8Array, direction: TlsOffloadCtxDir): number {
      const priv = sk.tlsCtx.driverState[direction] as TxPriv | RxPriv | undefined;
      if (!priv) return -EINVAL;
      if (direction === 'tx') {
        nic.txSetState(priv.handle, seq, recSeqToBigInt(rcdSn));
        (priv as TxPriv).nextSeq = seq >>> 0;
        return 0;
      }
      // With DRIVER_REQ the stack answers with the seq the device asked about, its header's last byte
      // (tls_device_rx_resync_new_rec()); this device's resync takes the record start.
      const start = rxType === 'driver_req' ? seqAdd(seq, -(TLS_HEADER_SIZE - 1)) : seq;
      const res = nic.rxResync(priv.handle, start, recSeqToBigInt(rcdSn));
      c[res === 'ok' ? 'rx_tls_resync_res_ok' : 'rx_tls_resync_res_skip']++;
      return 0;
    },
  };

  // models nfp_net_tls_tx()
  function startXmit(skb: SkBuff): void {
    const tx = skb.sk?.tlsCtx.txConf === 'hw' ? (skb.sk.tlsCtx.driverState.tx as TxPriv | undefined) : undefined;
    if (!tx) {
      nic.transmit({ frame: skb.data, mss: skb.gsoSize });
      return;
    }
    if (view.parse(skb.data) !== 'tcp') return;
    const datalen = view.payloadLength;
    const seq = view.seq;
    // models tls_is_skb_tx_device_offloaded(): an skb the stack's fallback encrypted already leaves as it is.
    if (!skb.decrypted && datalen > 0 && seqDiff(seq, tx.startSeq) >= 0) {
      nic.transmit({ frame: skb.data, mss: skb.gsoSize });
      return;
    }
    const resyncPending = kernel.tlsOffloadTxResyncPending(tx.sk);
    if (resyncPending || tx.nextSeq !== seq) {
      if (datalen === 0) {
        nic.transmit({ frame: skb.data, mss: skb.gsoSize }); // pure ACK out of order already
        return;
      }
      c.tx_tls_ooo++;
      const nskb = kernel.tlsEncryptSkb(skb);
      if (!nskb) {
        c.tx_tls_drop_no_sync_data++;
        return;
      }
      // Jump forward: a TX may have been lost locally; ask the stack to sync the device on the next record.
      const ahead = seqDiff(seq, tx.nextSeq);
      if (!resyncPending && ahead > 0) kernel.tlsOffloadTxResyncRequest(tx.sk, seq, tx.nextSeq);
      nic.transmit({ frame: nskb.data, mss: nskb.gsoSize });
      return;
    }
    if (datalen > 0) tx.nextSeq = seqAdd(seq, datalen);
    nic.transmit({ frame: skb.data, ctx: datalen > 0 ? tx.handle : -1, mss: skb.gsoSize });
  }

  // RX: the device flags the packet whose header it wants confirmed; the driver asks the stack (DRIVER_REQ).
  nic.onReceive((cqe) => {
    const req = cqe.resyncRequest;
    const priv = req ? rxByHandle.get(cqe.ctx) : undefined;
    if (req && priv) kernel.tlsOffloadRxResyncRequest(priv.sk, req.headerEndSeq);
    kernel.netifReceiveSkb(rxSkb(cqe));
  });

  return makeNetDevice(opts.name ?? 'nfp0', nic, defaultFeatures(nic, opts.features), ops, startXmit);
}

export const nfpDriver: DriverModule = { name: 'nfp', probe };
export default nfpDriver;
