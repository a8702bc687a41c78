// Issue 4's done-when: a TLS 1.2 connection both ways between two hosts, each with its own emulated NIC,
// reference driver and kernel TLS stack, over a clean and a lossy, reordering link. Every application byte
// arrives exactly once and in order; the wire carries exactly what software TLS would; counters agree.
import test from 'ava';
import {
  assertDelivery, assertWire, callSummary, closeBoth, connectTls, fallbackBytesFrom, makeWorld, randomWrites, resyncAfterDel,
  runIdle, type DriverName, type E2eConn, type E2eHost, type E2eWorld,
} from './helpers/e2e.ts';
import { Rng } from '../driver-api/host/rng.ts';
import { formatEthtool } from '../emulator/nic/counters.ts';

/** Counter checks for the sending host of one direction (SPEC section 7). */
function assertTxCounters(t: import('ava').ExecutionContext, w: E2eWorld, sender: E2eHost, c: E2eConn, from: 'a' | 'b') {
  const d = from === 'a' ? c.ab : c.ba;
  const { expect, wire } = assertWire(t, w, d);
  // Every TLS byte that left the host went through the device's crypto or the software fallback.
  const tlsOnWire = wire.bytesFrom(expect.tlsStart);
  t.is(sender.nic.counters.tx_tls_encrypted_bytes + fallbackBytesFrom(sender, d, expect.tlsStart), tlsOnWire, `${d.dir}: encrypted + fallback = TLS bytes sent`);
}

/** `ethtool -S` and /proc/net/tls_stat as a user reads them: name -> value, parsed from the text layouts. */
function parseCounterText(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_]+):?\s+(\d+)$/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

function runDoneWhen(t: import('ava').ExecutionContext, driver: DriverName, keyBits: 128 | 256, lossy: boolean, seed: number) {
  const w = makeWorld({ driver, keyBits, seed, ...(lossy ? { loss: 0.04, reorder: 0.03 } : {}), tcp: { tso: lossy } });
  const rng = new Rng(seed).fork('writes');
  const c = connectTls(w, { writesA: randomWrites(rng, 300_000), writesB: randomWrites(rng, 200_000) });
  runIdle(w);
  assertDelivery(t, c);
  for (const [h, peer] of [[w.a, w.b], [w.b, w.a]] as const) {
    t.is(h.stack.tlsStat.TlsTxDevice, 1, `${h.side}: TlsTxDevice`);
    t.is(h.stack.tlsStat.TlsRxDevice, 1, `${h.side}: TlsRxDevice`);
    t.is(h.stack.tlsStat.TlsTxSw + h.stack.tlsStat.TlsRxSw, 0, `${h.side}: no SW fallback at install`);
    t.is(h.stack.tlsStat.TlsDecryptError, 0, `${h.side}: TlsDecryptError`);
    t.true(h.nic.counters.rx_tls_decrypted_packets > 0, `${h.side}: rx_tls_decrypted_packets`);
    t.is(h.nic.counters.rx_tls_err, 0, `${h.side}: rx_tls_err`);
    t.is(h.nic.counters.tx_tls_drop_bypass_req, 0);
    void peer;
  }
  // The text layouts a user reads say the same as the objects.
  for (const h of [w.a, w.b]) {
    t.deepEqual(parseCounterText(formatEthtool(h.nic.counters)), { ...h.nic.counters }, `${h.side}: ethtool -S text`);
    t.deepEqual(parseCounterText(h.stack.formatTlsStat()), { ...h.stack.tlsStat }, `${h.side}: tls_stat text`);
  }
  if (!lossy) {
    // A clean link: no out-of-order TX, every TLS byte through the device, every RX segment decrypted.
    for (const [h, d] of [[w.a, c.ab], [w.b, c.ba]] as const) {
      t.is(h.nic.counters.tx_tls_ooo, 0);
      t.is(h.stack.callLog.filter((x) => x.op === 'tls_dev_resync').length, 0);
      // What one side's device encrypted is exactly the TLS part of its direction, and the peer's device
      // decrypted every byte of it, in as many packets as carried it.
      const { expect, wire } = assertWire(t, w, d);
      const tlsBytes = expect.bytes.length - expect.tlsStart;
      t.is(h.nic.counters.tx_tls_encrypted_bytes, tlsBytes, `${d.dir}: tx_tls_encrypted_bytes`);
      const peer = h === w.a ? w.b : w.a;
      t.is(peer.nic.counters.rx_tls_decrypted_bytes, tlsBytes, `${d.dir}: rx_tls_decrypted_bytes`);
      t.is(peer.nic.counters.rx_tls_decrypted_packets, wire.framesFrom(expect.tlsStart), `${d.dir}: rx_tls_decrypted_packets`);
      t.is(h.nic.counters.tx_tls_encrypted_packets, wire.framesFrom(expect.tlsStart), `${d.dir}: tx_tls_encrypted_packets`);
    }
  } else {
    t.true(w.a.host.counters.RetransSegs + w.b.host.counters.RetransSegs > 0, 'loss exercised retransmission');
    t.true(w.a.nic.counters.tx_tls_ooo + w.b.nic.counters.tx_tls_ooo > 0, 'retransmits reached the device out of order');
  }
  assertTxCounters(t, w, w.a, c, 'a');
  assertTxCounters(t, w, w.b, c, 'b');
  // Driver calls: A installs TX then RX (it sent first), B RX then TX; after close each direction is deleted once.
  closeBoth(w, c);
  const adds = (h: E2eHost) => callSummary(h).filter((s) => s.startsWith('add') || s.startsWith('del'));
  t.deepEqual(adds(w.a), ['add tx 0', 'add rx 0', 'del rx', 'del tx']);
  t.deepEqual(adds(w.b), ['add rx 0', 'add tx 0', 'del rx', 'del tx']);
  for (const h of [w.a, w.b]) {
    t.is(resyncAfterDel(h), 0, `${h.side}: tls_dev_resync after tls_dev_del`);
    t.true(h.stack.callLog.every((x) => x.result === null || x.result === 0), `${h.side}: every driver call succeeded`);
    t.is(h.stack.tlsStat.TlsRxDeviceResync, h.stack.callLog.filter((x) => x.op === 'tls_dev_resync' && x.dir === 'rx').length);
    t.is(h.nic.contextCount, 0, `${h.side}: context table empty after close`);
    t.is(h.stack.tlsStat.TlsCurrTxDevice + h.stack.tlsStat.TlsCurrRxDevice, 0);
  }
}

for (const driver of ['mlx5', 'nfp'] as const) {
  for (const keyBits of [128, 256] as const) {
    test(`${driver} AES-GCM-${keyBits}: clean link, both ways byte-exact, wire = software TLS, counters agree`, (t) => {
      runDoneWhen(t, driver, keyBits, false, keyBits + (driver === 'nfp' ? 1 : 0));
    });
    test(`${driver} AES-GCM-${keyBits}: 4% loss + 3% reorder + TSO, both ways byte-exact, wire = software TLS, counters agree`, (t) => {
      for (const seed of [11, 12]) runDoneWhen(t, driver, keyBits, true, seed + keyBits);
    });
  }
}
