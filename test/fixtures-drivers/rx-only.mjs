// A third-party driver as a user would write one: plain JavaScript, no imports, loaded with
// `tlsnic replay --driver test/fixtures-drivers/rx-only.mjs` (also from the bundled dist/tlsnic.mjs).
// RX offload only, with the device's stream-scan resync (DRIVER_REQ, as nfp); it does not advertise
// NETIF_F_HW_TLS_TX, so the stack keeps TX in software and tls_dev_add is never called for TX.
const EOPNOTSUPP = -95;
const EINVAL = -22;

/** rec_seq bytes (8, big-endian) to the bigint the device takes. */
function recSeq(b) {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

function probe(nic, kernel, opts = {}) {
  const skByHandle = new Map();
  const tlsdevOps = {
    tlsDevAdd(_netdev, sk, direction, info, startSn) {
      if (direction !== 'rx') return EOPNOTSUPP;
      const handle = nic.addContext('rx', { tuple: sk.tuple, info, startSeq: startSn, rxResync: 'scan' });
      if (handle < 0) return handle;
      sk.tlsCtx.driverState.rx = handle;
      skByHandle.set(handle, sk);
      kernel.tlsOffloadRxResyncSetType(sk, 'driver_req');
      return 0;
    },
    tlsDevDel(_netdev, ctx, direction) {
      const handle = ctx.driverState[direction];
      if (handle === undefined) return;
      nic.delContext(handle);
      skByHandle.delete(handle);
      ctx.driverState[direction] = undefined;
    },
    tlsDevResync(_netdev, sk, seq, rcdSn, direction) {
      const handle = sk.tlsCtx.driverState.rx;
      if (direction !== 'rx' || handle === undefined) return EINVAL;
      // DRIVER_REQ: the stack answers with the seq the device asked about (its header's last byte); the
      // device's resync takes the record start.
      const res = nic.rxResync(handle, (seq - 4) >>> 0, recSeq(rcdSn));
      nic.counters[res === 'ok' ? 'rx_tls_resync_res_ok' : 'rx_tls_resync_res_skip']++;
      return 0;
    },
  };
  nic.onReceive((cqe) => {
    const sk = cqe.resyncRequest ? skByHandle.get(cqe.ctx) : undefined;
    if (sk) kernel.tlsOffloadRxResyncRequest(sk, cqe.resyncRequest.headerEndSeq);
    kernel.netifReceiveSkb({ data: cqe.frame, sk: null, decrypted: cqe.decrypted, gsoSize: 0 });
  });
  return {
    name: opts.name ?? 'rxonly0',
    features: { tlsHwTxOffload: false, tlsHwRxOffload: true, txChecksumOffload: true, rxChecksumOffload: true },
    tlsdevOps,
    isUp: () => nic.isLinkUp(),
    startXmit: (skb) => nic.transmit({ frame: skb.data, mss: skb.gsoSize }),
  };
}

export default { name: 'rx-only', probe };
