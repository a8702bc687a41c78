// The stack model with the emulated NIC and the reference drivers: a lost RX segment carrying a record
// header makes the device lose sync; each driver's resync flavour must bring decryption back, and the
// socket must read every record right throughout (SPEC sections 5, 6, 8).
import test from 'ava';
import { nodeBackend } from '../emulator/crypto/index.ts';
import { Nic } from '../emulator/nic/nic.ts';
import { TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128 } from '../emulator/tls/crypto-info.ts';
import { TcpSegmentView } from '../emulator/wire/packet.ts';
import { seqAdd, seqGeq } from '../emulator/wire/seq.ts';
import { mlx5Driver, nfpDriver } from '../driver-api/drivers/index.ts';
import type { DriverModule, ProbeOptions } from '../driver-api/drivers/index.ts';
import type { FourTuple } from '../driver-api/ops.ts';
import { TlsStack } from '../driver-api/stack/index.ts';
import { ReplaySock } from '../cli/replay/replay-sock.ts';
import { LOCAL, REMOTE, rxFrame } from './helpers/nic-bench.ts';
import { Prng } from './helpers/prng.ts';
import { makeRecordStream, randomInfo } from './helpers/records.ts';

const backend = nodeBackend;
const TUPLE: FourTuple = { family: 4, saddr: LOCAL.ip, sport: LOCAL.port, daddr: REMOTE.ip, dport: REMOTE.port };

function runLoss(driver: DriverModule, opts: ProbeOptions, seed: number) {
  const rng = new Prng(seed);
  const nic = new Nic({ backend, profile: { tso: false } });
  const stack = new TlsStack({ backend });
  const view = new TcpSegmentView();
  const decryptedAt: number[] = [];
  let sock: ReplaySock | null = null;
  const netdev = driver.probe(nic, stack.kernelHelpers((skb) => {
    if (view.parse(skb.data) !== 'tcp' || view.payloadLength === 0) return;
    if (skb.decrypted) decryptedAt.push(view.seq);
    sock!.receive(view.seq, view.payload(), skb.decrypted);
  }), opts);
  sock = new ReplaySock(TUPLE, netdev);
  const tls = stack.attach(sock);
  const info = randomInfo({ version: TLS_1_2_VERSION, cipherType: TLS_CIPHER_AES_GCM_128, label: '' }, rng, 5n);
  const start = rng.u32();
  sock.rxStartAt(start);
  tls.setCryptoInfo('rx', info);
  sock.startUlpRx(start);
  const sizes = Array.from({ length: 60 }, () => rng.int(1500, 2500));
  const stream = makeRecordStream(backend, info, sizes, rng);
  const got: Uint8Array[] = [];
  tls.onData((d) => got.push(Uint8Array.from(d)));
  // 1000-byte segments; lose the one holding record 10's header, retransmit it 6 segments later.
  const segs: Array<[number, number]> = [];
  for (let off = 0; off < stream.sealed.length; off += 1000) segs.push([off, Math.min(stream.sealed.length, off + 1000)]);
  const hdr = stream.records[10]!.offset;
  const lost = segs.findIndex(([a, b]) => a <= hdr && hdr < b);
  const order: number[] = [];
  for (let i = 0; i < segs.length; i++) {
    if (i !== lost) order.push(i);
    if (i === lost + 6) order.push(lost);
  }
  for (const i of order) {
    const [a, b] = segs[i]!;
    nic.receiveFrame(rxFrame(seqAdd(start, a), stream.sealed.subarray(a, b)));
  }
  return { stack, tls, got, stream, decryptedAt, start, lostSeq: seqAdd(start, segs[lost]![0]), nic };
}

const cases: Array<[string, DriverModule, ProbeOptions]> = [
  ['mlx5 (DRIVER_REQ_ASYNC)', mlx5Driver, {}],
  ['nfp (DRIVER_REQ)', nfpDriver, { rxResyncType: 'driver_req' }],
  ['nfp (CORE_NEXT_HINT)', nfpDriver, { rxResyncType: 'core_next_hint' }],
];

for (const [name, driver, opts] of cases) {
  test(`${name}: lost header segment -> device resynced by the stack, every record read right`, (t) => {
    for (let seed = 1; seed <= 5; seed++) {
      const r = runLoss(driver, opts, seed);
      t.is(r.tls.rxMode, 'hw');
      t.is(r.tls.error, null, r.tls.errorDetail?.message);
      t.is(r.got.length, r.stream.records.length);
      for (let i = 0; i < r.got.length; i++) {
        if (r.got[i]!.length !== r.stream.records[i]!.plaintext.length || !r.got[i]!.every((x, j) => x === r.stream.records[i]!.plaintext[j])) {
          return t.fail(`seed ${seed}: record ${i} differs`);
        }
      }
      const resyncs = r.stack.callLog.filter((c) => c.op === 'tls_dev_resync');
      t.true(resyncs.length >= 1, `seed ${seed}: no tls_dev_resync`);
      t.is(r.stack.tlsStat.TlsRxDeviceResync, resyncs.length);
      // Each resync names a real record start and its number.
      for (const c of resyncs) {
        const i = r.stream.records.findIndex((rec) => seqAdd(r.start, rec.offset) === c.seq);
        t.true(i >= 0, `seed ${seed}: resync seq ${c.seq} is not a record start`);
        t.is(c.rcdSn, r.stream.records[i]!.recSeq);
        t.is(c.result, 0);
      }
      // Decryption resumed after the resync.
      const last = resyncs.at(-1)!.seq!;
      t.true(r.decryptedAt.some((s) => seqGeq(s, last)), `seed ${seed}: nothing decrypted after the resync`);
    }
    return undefined;
  });
}

test('device down mid-stream with the real NIC: one tls_dev_del, records still read right in software', (t) => {
  const rng = new Prng(77);
  const nic = new Nic({ backend, profile: { tso: false } });
  const stack = new TlsStack({ backend });
  const view = new TcpSegmentView();
  let sock: ReplaySock | null = null;
  const netdev = mlx5Driver.probe(nic, stack.kernelHelpers((skb) => {
    if (view.parse(skb.data) !== 'tcp' || view.payloadLength === 0) return;
    sock!.receive(view.seq, view.payload(), skb.decrypted);
  }), {});
  sock = new ReplaySock(TUPLE, netdev);
  const tls = stack.attach(sock);
  const info = randomInfo({ version: TLS_1_2_VERSION, cipherType: TLS_CIPHER_AES_GCM_128, label: '' }, rng, 0n);
  sock.rxStartAt(1000);
  tls.setCryptoInfo('rx', info);
  sock.startUlpRx(1000);
  const stream = makeRecordStream(backend, info, Array.from({ length: 10 }, () => 3000), rng);
  const got: Uint8Array[] = [];
  tls.onData((d) => got.push(d));
  for (let off = 0; off < stream.sealed.length; off += 1000) {
    if (off === 14000) {
      stack.netdevDown(netdev); // mid-record: the record in flight arrives part decrypted, part not
      nic.setLink(false);
      nic.setLink(true);
    }
    nic.receiveFrame(rxFrame(1000 + off, stream.sealed.subarray(off, Math.min(stream.sealed.length, off + 1000))));
  }
  t.is(tls.error, null);
  t.is(got.length, 10);
  t.is(stack.callLog.filter((c) => c.op === 'tls_dev_del').length, 1);
  tls.close();
  t.is(stack.callLog.filter((c) => c.op === 'tls_dev_del').length, 1);
});
