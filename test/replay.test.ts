// Real captures through the emulated NIC: for every fixture connection, the plaintext the replayed stack
// delivers (RX) and takes (TX) hashes to what the real applications sent, the NIC's TX bytes equal the
// captured wire bytes, and the offload decisions and counters are what the kernel would do.
import test from 'ava';
import { join } from 'node:path';
import { mlx5Driver, nfpDriver } from '../driver-api/drivers/index.ts';
import { allManifests, type FixtureManifest } from '../fixtures/manifest.ts';
import { replay, type FlowReport, type ReplayResult } from '../cli/replay/engine.ts';

const manifests = allManifests();

/** The manifest connection a replayed flow is, and which of its directions is the local host's TX. */
function match(m: FixtureManifest, f: FlowReport) {
  for (const c of m.connections) {
    if (f.local === c.server && f.remote === c.client) return { c, tx: c.serverToClient, rx: c.clientToServer };
    if (f.local === c.client && f.remote === c.server) return { c, tx: c.clientToServer, rx: c.serverToClient };
  }
  return null;
}

function check(t: import('ava').ExecutionContext, m: FixtureManifest & { dir: string }, r: ReplayResult, tls13: boolean) {
  t.is(r.flows.length, m.connections.length, `flows: ${r.flows.map((f) => `${f.local}<-${f.remote}`).join(', ')}`);
  let hwRxRecords = 0;
  for (const f of r.flows) {
    const mm = match(m, f);
    if (!mm) return t.fail(`replayed flow ${f.local} <- ${f.remote} is not in the manifest`);
    t.deepEqual(f.problems, [], `${f.local}: problems`);
    t.is(f.version, mm.c.version);
    t.is(f.rx.plaintextSha256, mm.rx.sha256, `${f.local}: RX plaintext differs from what the peer sent`);
    t.is(f.rx.plaintextBytes, mm.rx.bytes);
    t.is(f.tx.plaintextSha256, mm.tx.sha256, `${f.local}: TX plaintext differs from what the application wrote`);
    t.true(f.tx.wireMatch, `${f.local}: ${f.tx.mismatched} TX segments differ from the capture`);
    t.is(f.tx.dropped, 0);
    const offloadable = mm.c.cipher !== 'chacha20-poly1305' && (mm.c.version === '1.2' || tls13);
    t.is(f.tx.mode, offloadable ? 'hw' : 'sw', `${f.local} tx: ${f.tx.reason}`);
    t.is(f.rx.mode, offloadable ? 'hw' : 'sw', `${f.local} rx: ${f.rx.reason}`);
    if (!offloadable) t.truthy(f.rx.reason, 'a software decision records why');
    if (offloadable) {
      // A clean capture: every RX segment after the install point is decrypted by the device, except one
      // that straddles it (the client sends app data right behind its Finished when it finishes the handshake
      // last: TLS 1.3, and a resumed TLS 1.2 session's abbreviated handshake): skb->decrypted is
      // per packet, so that one goes up encrypted and the stack decrypts its record in software. With
      // real RX losses (tls12-loss-v4) retransmitted segments and those until resync rightly stay
      // encrypted; test/replay-loss.test.ts pins that capture.
      t.true(f.rx.decrypted > 0);
      const left = f.rx.segments - f.rx.decrypted;
      const clean = m.tshark.retransmissions === 0 && m.tshark.outOfOrder === 0;
      if (clean) t.true(left === 0 || (left === 1 && (mm.c.version === '1.3' || mm.c.resumed === true)), `${f.local}: ${left} RX segments the device left encrypted`);
      hwRxRecords++;
    }
  }
  if (hwRxRecords > 0) {
    t.true(r.ethtool.rx_tls_decrypted_packets! > 0);
    t.true(r.ethtool.tx_tls_encrypted_packets! > 0);
    t.is(r.ethtool.rx_tls_ctx, hwRxRecords);
    t.is(r.tlsStat.TlsRxDevice, hwRxRecords);
    t.is(r.tlsStat.TlsTxDevice, hwRxRecords);
    t.is(r.tlsStat.TlsDecryptError, 0);
  } else {
    t.is(r.ethtool.rx_tls_decrypted_packets, 0);
    t.is(r.ethtool.tx_tls_encrypted_packets, 0);
  }
}

for (const m of manifests) {
  for (const driver of [mlx5Driver, nfpDriver]) {
    test(`replay ${m.name} through ${driver.name}: plaintext, wire bytes and counters`, async (t) => {
      const r = await replay({ capture: join(m.dir, m.capture), keylog: join(m.dir, m.keylog), local: null, driver, tls13: false });
      check(t, m, r, false);
    });
  }
  if (m.connections.some((c) => c.version === '1.3')) {
    test(`replay ${m.name} with the TLS 1.3 offload opt-in`, async (t) => {
      const r = await replay({ capture: join(m.dir, m.capture), keylog: join(m.dir, m.keylog), local: null, driver: mlx5Driver, tls13: true });
      check(t, m, r, true);
    });
  }
}
