// Device benchmarks (issue 3): TX and RX throughput of the emulated NIC on 1448-byte segments, as a ratio
// to raw streaming node:crypto AES-GCM measured in the same run, and context-table lookup cost at 1e3 and
// 1e6 flows. These machines are shared and noisy: every figure is a median of interleaved rounds, and
// only ratios between figures taken in the same run mean anything.
//
// usage: node --import=tsx bench/run.ts [--json] [--mib N] [--rounds N]
import { createCipheriv } from 'node:crypto';
import { nodeBackend } from '../emulator/crypto/index.ts';
import { FlowTable } from '../emulator/nic/flow-table.ts';
import { TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_256, type TlsCipherType } from '../emulator/tls/crypto-info.ts';
import { makeNic, rxFrame, seqAdd, TUPLE, txFrame } from '../test/helpers/nic-bench.ts';
import { Prng } from '../test/helpers/prng.ts';
import { makeRecordStream, randomInfo, type RecordStream } from '../test/helpers/records.ts';

const MSS = 1448;
const args = process.argv.slice(2);
const flag = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const STREAM_MIB = flag('--mib', 16);
const ROUNDS = flag('--rounds', 5);
const json = args.includes('--json');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const now = () => process.hrtime.bigint();
const seconds = (t0: bigint) => Number(now() - t0) / 1e9;

/** The reference: what node:crypto alone does for the same records fed in the same 1448-byte pieces. */
function rawGcm(stream: RecordStream, alg: string, key: Uint8Array): number {
  const aad = new Uint8Array(13);
  const t0 = now();
  for (const r of stream.records) {
    const c = createCipheriv(alg as 'aes-128-gcm', key, r.sealed.subarray(0, 12), { authTagLength: 16 });
    c.setAAD(aad);
    const body = r.framed.subarray(r.bodyOffset, r.bodyOffset + r.bodyLength);
    for (let off = 0; off < body.length; off += MSS) c.update(body.subarray(off, off + MSS));
    c.final();
    c.getAuthTag();
  }
  return stream.framed.length / seconds(t0);
}

function cut(bytes: Uint8Array, start: number, make: (seq: number, p: Uint8Array) => Uint8Array): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let off = 0; off < bytes.length; off += MSS) frames.push(make(seqAdd(start, off), bytes.subarray(off, off + MSS)));
  return frames;
}

function deviceTx(stream: RecordStream, info: ReturnType<typeof randomInfo>, frames: Uint8Array[], start: number): number {
  const { nic } = makeNic();
  nic.attachWire(() => {});
  const h = nic.addContext('tx', { tuple: TUPLE, info, startSeq: start });
  const t0 = now();
  for (const frame of frames) nic.transmit({ frame, ctx: h });
  const s = seconds(t0);
  if (nic.counters.tx_tls_encrypted_bytes !== stream.framed.length) throw new Error('TX bench: the device did not encrypt every byte');
  return stream.framed.length / s;
}

function deviceRx(stream: RecordStream, info: ReturnType<typeof randomInfo>, template: Uint8Array[], start: number): number {
  const { nic } = makeNic();
  let decrypted = 0;
  nic.onReceive((c) => {
    if (c.decrypted) decrypted++;
  });
  nic.addContext('rx', { tuple: TUPLE, info, startSeq: start });
  const frames = template.map((f) => f.slice()); // RX decrypts in place: fresh bytes every round
  const t0 = now();
  for (const frame of frames) nic.receiveFrame(frame);
  const s = seconds(t0);
  if (decrypted !== frames.length) throw new Error(`RX bench: ${frames.length - decrypted} packets not decrypted`);
  return stream.sealed.length / s;
}

function throughput(cipherType: TlsCipherType, label: string, alg: string) {
  const rng = new Prng(cipherType);
  const info = randomInfo({ version: TLS_1_2_VERSION, cipherType, label }, rng, 0n);
  const sizes = Array.from({ length: Math.ceil((STREAM_MIB << 20) / 16384) }, () => 16384);
  const stream = makeRecordStream(nodeBackend, info, sizes, rng);
  const start = 1_000_000;
  const txFrames = cut(stream.framed, start, txFrame);
  const rxFrames = cut(stream.sealed, start, rxFrame);
  const ref: number[] = [];
  const tx: number[] = [];
  const rx: number[] = [];
  for (let round = 0; round < ROUNDS + 1; round++) {
    const a = rawGcm(stream, alg, info.key);
    const b = deviceTx(stream, info, txFrames, start);
    const c = deviceRx(stream, info, rxFrames, start);
    if (round === 0) continue; // warm-up: JIT and allocator
    ref.push(a);
    tx.push(b);
    rx.push(c);
  }
  const mb = (x: number) => x / 1e6;
  return { label, refMBps: mb(median(ref)), txMBps: mb(median(tx)), rxMBps: mb(median(rx)), txRatio: median(tx) / median(ref), rxRatio: median(rx) / median(ref) };
}

/** Lookup straight from packet bytes, as the RX path does, for uniformly random flows of the table. */
function lookupNs(flows: number, lookups: number): number {
  const rng = new Prng(flows);
  const table = new FlowTable<number>(flows);
  const addrs = new Uint8Array(flows * 8);
  const ports = new Uint16Array(flows * 2);
  for (let i = 0; i < flows; i++) {
    for (let j = 0; j < 8; j++) addrs[i * 8 + j] = rng.u32() & 0xff;
    ports[i * 2] = rng.u32() & 0xffff;
    ports[i * 2 + 1] = rng.u32() & 0xffff;
    const src = addrs.subarray(i * 8, i * 8 + 4);
    const dst = addrs.subarray(i * 8 + 4, i * 8 + 8);
    try {
      table.add({ dir: 'rx', family: 4, src, dst, sport: ports[i * 2]!, dport: ports[i * 2 + 1]! }, i);
    } catch {
      ports[i * 2] = ports[i * 2]! ^ 1; // a random duplicate: perturb the entry we will look up (rare)
      i--;
    }
  }
  // The packets to look up, in arrival order: the RX path looks up a header that is already in cache, so
  // the bench lays the looked-up headers out sequentially and only the table's own memory is random.
  const pkts = new Uint8Array(lookups * 12);
  for (let k = 0; k < lookups; k++) {
    const i = rng.u32() % flows;
    pkts.set(addrs.subarray(i * 8, i * 8 + 8), k * 12);
    pkts[k * 12 + 8] = ports[i * 2]! >>> 8;
    pkts[k * 12 + 9] = ports[i * 2]! & 0xff;
    pkts[k * 12 + 10] = ports[i * 2 + 1]! >>> 8;
    pkts[k * 12 + 11] = ports[i * 2 + 1]! & 0xff;
  }
  const times: number[] = [];
  for (let round = 0; round < ROUNDS + 1; round++) {
    let found = 0;
    const t0 = now();
    for (let o = 0; o < pkts.length; o += 12) {
      const sport = (pkts[o + 8]! << 8) | pkts[o + 9]!;
      const dport = (pkts[o + 10]! << 8) | pkts[o + 11]!;
      if (table.lookup('rx', pkts, o, o + 4, 4, sport, dport) >= 0) found++;
    }
    const s = seconds(t0);
    if (found !== lookups) throw new Error(`lookup bench: ${lookups - found} lookups missed`);
    if (round > 0) times.push((s * 1e9) / lookups);
  }
  return median(times);
}

const results = {
  node: process.version,
  streamMiB: STREAM_MIB,
  rounds: ROUNDS,
  throughput: [
    throughput(TLS_CIPHER_AES_GCM_128, 'AES-GCM-128', 'aes-128-gcm'),
    throughput(TLS_CIPHER_AES_GCM_256, 'AES-GCM-256', 'aes-256-gcm'),
  ],
  lookup: (() => {
    const small = lookupNs(1_000, 2_000_000);
    const big = lookupNs(1_000_000, 2_000_000);
    return { ns1e3: small, ns1e6: big, ratio: big / small };
  })(),
};

if (json) console.log(JSON.stringify(results, null, 2));
else {
  const f = (x: number, d = 2) => x.toFixed(d);
  console.log(`tlsnic device bench  (node ${results.node}, ${STREAM_MIB} MiB of 16 KiB records in ${MSS}-byte segments, median of ${ROUNDS} rounds)`);
  console.log('');
  console.log('cipher         raw GCM MB/s   TX MB/s  TX ratio   RX MB/s  RX ratio   (target ratio >= 0.70)');
  for (const r of results.throughput) {
    console.log(`${r.label.padEnd(14)} ${f(r.refMBps, 0).padStart(12)} ${f(r.txMBps, 0).padStart(9)} ${f(r.txRatio).padStart(9)} ${f(r.rxMBps, 0).padStart(9)} ${f(r.rxRatio).padStart(9)}`);
  }
  const l = results.lookup;
  console.log('');
  console.log(`table lookup from packet bytes, uniformly random flows: ${f(l.ns1e3, 1)} ns at 1e3 flows, ${f(l.ns1e6, 1)} ns at 1e6 flows, ratio ${f(l.ratio)} (target <= 1.50)`);
}
