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
import type { FourTuple, NetDevice, SkBuff } from '../driver-api/ops.ts';
import type { RxChunk, TcpSock, TcpUlp } from '../driver-api/tcp.ts';
import { sealRecord } from '../emulator/tls/record-crypto.ts';
import { CONTENT_APPLICATION_DATA } from '../emulator/tls/record.ts';
import { TAG_PLACEHOLDER, TlsStack } from '../driver-api/stack/index.ts';
import { ReplaySock } from '../cli/replay/replay-sock.ts';
import { LOCAL, REMOTE, rxFrame, txFrame } from './helpers/nic-bench.ts';
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
      // Each resync names a real record and its number: by its start, or with DRIVER_REQ by its header's
      // last byte, the seq the device asked about (tls_device_rx_resync_new_rec()).
      const back = opts.rxResyncType === 'driver_req' ? 4 : 0;
      for (const c of resyncs) {
        const i = r.stream.records.findIndex((rec) => seqAdd(r.start, rec.offset + back) === c.seq);
        t.true(i >= 0, `seed ${seed}: resync seq ${c.seq} does not name a record`);
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
  tls.onData((d) => got.push(d.slice()));
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

// ---- TX with the real NIC ----


/** A TCP sender that keeps what was queued (with its offload mark) and can (re)transmit any range. */
class TxTcp implements TcpSock {
  readonly id = 9000;
  readonly tuple = TUPLE;
  writeSeq: number;
  sndUna: number;
  copiedSeq = 0;
  ulp: TcpUlp | null = null;
  chunks: Array<{ seq: number; data: Uint8Array; offloaded: boolean }> = [];
  constructor(readonly netdev: NetDevice, isn: number) {
    this.writeSeq = isn;
    this.sndUna = isn;
  }
  setUlp(u: TcpUlp): void {
    this.ulp = u;
  }
  queue(data: Uint8Array, offloaded: boolean): void {
    this.chunks.push({ seq: this.writeSeq, data: Uint8Array.from(data), offloaded });
    this.writeSeq = seqAdd(this.writeSeq, data.length);
  }
  fence(): void {}
  push(): void {}
  close(): void {
    this.ulp?.onDestroy?.();
  }
  /** Segments of at most `mss` that never mix offload marks (the kernel never merges them into one skb). */
  segments(mss: number, fromChunk = 0): Array<{ seq: number; data: Uint8Array; offloaded: boolean }> {
    const out: Array<{ seq: number; data: Uint8Array; offloaded: boolean }> = [];
    for (const c of this.chunks.slice(fromChunk)) {
      const last = out.at(-1);
      let off = 0;
      if (last && last.offloaded === c.offloaded && last.data.length < mss) {
        const n = Math.min(mss - last.data.length, c.data.length);
        const merged = new Uint8Array(last.data.length + n);
        merged.set(last.data);
        merged.set(c.data.subarray(0, n), last.data.length);
        last.data = merged;
        off = n;
      }
      for (; off < c.data.length; off += mss) {
        out.push({ seq: seqAdd(c.seq, off), data: c.data.subarray(off, off + mss), offloaded: c.offloaded });
      }
    }
    return out;
  }
  xmit(seg: { seq: number; data: Uint8Array; offloaded: boolean }, sk: SkBuff['sk']): void {
    let skb: SkBuff | null = { data: txFrame(seg.seq, seg.data), sk, decrypted: seg.offloaded, gsoSize: 0 };
    skb = this.ulp!.validateXmit ? this.ulp!.validateXmit(skb, this.netdev) : skb;
    if (skb) this.netdev.startXmit(skb);
  }
  onReceive(_c: readonly RxChunk[]): void {}
}

for (const driver of [mlx5Driver, nfpDriver]) {
  test(`TX ${driver.name}: local drop + retransmits (incl. pre-offload bytes) -> wire equals software TLS, no placeholder leaks`, (t) => {
    const rng = new Prng(driver.name.length);
    const nic = new Nic({ backend, profile: { tso: false } });
    const stack = new TlsStack({ backend });
    const netdev = driver.probe(nic, stack.kernelHelpers(() => {}), {});
    const wire: Uint8Array[] = [];
    nic.attachWire((f) => wire.push(Uint8Array.from(f)));
    const isn = (2 ** 32 - 5000) >>> 0;
    const tcp = new TxTcp(netdev, isn);
    const tls = stack.attach(tcp);
    const hello = rng.bytes(700); // handshake bytes, sent before TLS_TX
    tls.send(hello);
    const info = randomInfo({ version: TLS_1_2_VERSION, cipherType: TLS_CIPHER_AES_GCM_128, label: '' }, rng, 1n);
    tls.setCryptoInfo('tx', info);
    t.is(tls.txMode, 'hw');
    const pts = Array.from({ length: 12 }, () => rng.bytes(rng.int(500, 4000)));
    const half = 6;
    for (let i = 0; i < half; i++) tls.send(pts[i]!);
    let segs = tcp.segments(1000);
    // Send all but segment 5 (lost locally), then retransmit 5, then the handshake's first segment.
    segs.forEach((s, i) => i !== 5 && tcp.xmit(s, tls.sk));
    tcp.xmit(segs[5]!, tls.sk);
    tcp.xmit(segs[0]!, tls.sk);
    const sentChunks = tcp.chunks.length;
    for (let i = half; i < pts.length; i++) tls.send(pts[i]!);
    segs = tcp.segments(1000, sentChunks);
    for (const s of segs) tcp.xmit(s, tls.sk);
    // The peer's view: handshake bytes then software-sealed records.
    const parts = [hello, ...pts.map((p, i) => sealRecord(backend, info, 1n + BigInt(i), CONTENT_APPLICATION_DATA, p))];
    const expect = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      expect.set(p, o);
      o += p.length;
    }
    const v = new TcpSegmentView();
    const covered = new Uint8Array(expect.length);
    for (const f of wire) {
      v.parse(f);
      t.true(v.verifyTcpChecksum());
      const off = (v.seq - isn) >>> 0;
      const pl = v.payload();
      for (let j = 0; j < pl.length; j++) {
        if (pl[j] !== expect[off + j]) return t.fail(`wire byte at stream offset ${off + j} differs from software TLS`);
        covered[off + j] = 1;
      }
      for (let j = 0; j + 16 <= pl.length; j++) {
        if (TAG_PLACEHOLDER.every((x, k) => pl[j + k] === x)) return t.fail('tag placeholder on the wire');
      }
    }
    const gap = covered.indexOf(0);
    t.is(gap, -1, `stream byte ${gap} of ${expect.length} never reached the wire (${wire.length} frames)`);
    if (driver === nfpDriver) {
      const rs = stack.callLog.filter((c) => c.op === 'tls_dev_resync');
      t.is(rs.length, 1);
      t.is(rs[0]!.dir, 'tx');
      t.is(rs[0]!.rcdSn, 1n + BigInt(half));
    }
    return undefined;
  });
}
