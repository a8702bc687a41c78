// One benchmark scenario per process (bench/run.ts starts them): prints `RESULT <json>` on stdout.
// Each scenario runs for a count of records or for a time; figures are medians of rounds, and raw
// node:crypto references are measured interleaved with what they are a reference for (the machines this
// runs on are shared: only figures from the same rounds compare well).
//
// usage: node --import=tsx bench/scenarios.ts raw|device|table|ref '<json ScenarioOptions>'
import { createCipheriv, createDecipheriv, createHash } from 'node:crypto';
import { Session, type HeapProfiler } from 'node:inspector';
import { nodeBackend } from '../emulator/crypto/index.ts';
import { FlowTable } from '../emulator/nic/flow-table.ts';
import { TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128, type CryptoInfo } from '../emulator/tls/crypto-info.ts';
import { recordNonce, tls12Aad } from '../emulator/tls/record-crypto.ts';
import { makeNic, rxFrame, rxRing, seqAdd, TUPLE, txFrame } from '../test/helpers/nic-bench.ts';
import { Prng } from '../test/helpers/prng.ts';
import { makeRecordStream, randomInfo, type RecordStream } from '../test/helpers/records.ts';

export type ScenarioOptions = {
  /** Records per round (raw, device) or lookups per round (table); null: sized by `seconds`. */
  records: number | null;
  /** Target seconds per scenario (split over its rounds) when `records` is null. */
  seconds: number;
  recordSize: number;
  mss: number;
  /** Table sizes for the context-table scenario. */
  tableSizes?: number[];
  /** The replay direction whose floor the `ref` scenario measures (default down). */
  direction?: 'down' | 'up';
};
/**
 * The `ref` scenario, right before a replay run: streamed raw GCM, and floorMBps, the MB/s of payload that the
 * node:crypto work a replay of that direction cannot skip allows with nothing else done: download, each
 * captured record opened in one call (the walker learns the plaintext), its plaintext hashed (SHA-256, the
 * report's), sealed in MSS pieces (the device); upload, opened in MSS pieces (the device) and hashed.
 */
export type RefRow = { streamedMBps: number; floorMBps: number };

export type RawRow = { recordSize: number; oneShotMBps: number; streamedMBps: number };
/**
 * refMBps, txMBps, rxMBps: the fastest of DEVICE_ROUNDS passes each (noise only slows a pass down); txRatio,
 * rxRatio: the fastest device pass over the fastest reference pass. txRatios, rxRatios: each round's device
 * pass over the reference pass right before it (until 2026-12-02 the ratios were their medians; on this host
 * a pair often straddled a jump in its speed, and 16 KiB records read 0.27-1.31 where 25 interleaved passes
 * read 0.58-0.61 fastest over fastest). txHeapBytes, rxHeapBytes: JS heap bytes the device allocated per
 * segment in one more pass (V8's sampling heap profiler, an estimate); rawHeapBytes: the same for streamed raw
 * GCM per MSS piece (what node:crypto itself allocates for each update() it answers with a new Buffer).
 */
export type DeviceRow = {
  recordSize: number; refMBps: number; txMBps: number; rxMBps: number; txRatio: number; rxRatio: number; txRatios: number[]; rxRatios: number[];
  txHeapBytes: number; rxHeapBytes: number; rawHeapBytes: number;
};
/**
 * lookupNs: FlowTable.lookup() packet by packet; burstLookupNs: lookupBurst() on the same packets, TABLE_BURST at
 * a time. lineNs: the machine's floor, ns per read of a random 64-byte line of an array as large as the table's
 * buckets (bucketBytes), the reads independent of each other (as many in flight as the CPU takes). All three the
 * fastest of their passes (noise only slows a pass down; until 2026-12-02 the lookups were medians, compared with
 * the fastest floor); addNs, delNs: medians of rounds.
 */
export type TableRow = { flows: number; lookupNs: number; burstLookupNs: number; burstSize: number; addNs: number; delNs: number; lineNs: number; bucketBytes: number };

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const now = () => process.hrtime.bigint();
const seconds = (t0: bigint) => Number(now() - t0) / 1e9;
const ROUNDS = 5;

function stream(recordSize: number, records: number): { s: RecordStream; info: ReturnType<typeof randomInfo> } {
  const rng = new Prng(recordSize);
  const info = randomInfo({ version: TLS_1_2_VERSION, cipherType: TLS_CIPHER_AES_GCM_128, label: 'aes128' }, rng, 0n);
  return { s: makeRecordStream(nodeBackend, info, Array.from({ length: records }, () => recordSize), rng), info };
}

/**
 * Records per round: given, or what takes about `seconds / passes` (a pass: one timed loop over the
 * records), from a pilot of streamed raw GCM, the slowest reference per record.
 */
function recordsFor(o: ScenarioOptions, recordSize: number, passes: number): number {
  if (o.records !== null) return o.records;
  const pilot = stream(recordSize, 256);
  rawGcm(pilot.s, pilot.info.key, o.mss, false);
  const t0 = now();
  rawGcm(pilot.s, pilot.info.key, o.mss, false);
  const perRecord = seconds(t0) / 256;
  return Math.max(16, Math.min(200_000, Math.round(o.seconds / passes / perRecord)));
}

/** AES-128-GCM through node:crypto alone: each record sealed in one call, or fed in MSS-sized pieces. */
function rawGcm(s: RecordStream, key: Uint8Array, mss: number, oneShot: boolean): number {
  const aad = new Uint8Array(13);
  let bytes = 0;
  const t0 = now();
  for (const r of s.records) {
    const c = createCipheriv('aes-128-gcm', key, r.sealed.subarray(0, 12), { authTagLength: 16 });
    c.setAAD(aad);
    const body = r.framed.subarray(r.bodyOffset, r.bodyOffset + r.bodyLength);
    if (oneShot) c.update(body);
    else for (let off = 0; off < body.length; off += mss) c.update(body.subarray(off, off + mss));
    c.final();
    c.getAuthTag();
    bytes += r.framed.length;
  }
  return bytes / seconds(t0) / 1e6;
}

/**
 * The crypto a replay cannot skip, per record of `s` (RefRow.floorMBps): MB/s of payload. Opens check the tag,
 * so the nonce and AAD are the records' own (a wrong one throws).
 */
function replayFloor(s: RecordStream, info: CryptoInfo, mss: number, dir: 'down' | 'up'): number {
  const hash = createHash('sha256');
  let bytes = 0;
  const t0 = now();
  for (const r of s.records) {
    const nonce = recordNonce(info, r.recSeq, r.sealed.subarray(5, 13));
    const aad = tls12Aad(r.recSeq, r.type, r.bodyLength);
    const body = r.sealed.subarray(r.bodyOffset, r.bodyOffset + r.bodyLength);
    const tag = r.sealed.subarray(r.bodyOffset + r.bodyLength);
    const d = createDecipheriv('aes-128-gcm', info.key, nonce, { authTagLength: 16 });
    d.setAAD(aad);
    d.setAuthTag(tag);
    if (dir === 'down') {
      const plain = d.update(body);
      d.final();
      hash.update(plain);
      const c = createCipheriv('aes-128-gcm', info.key, nonce, { authTagLength: 16 });
      c.setAAD(aad);
      for (let off = 0; off < plain.length; off += mss) c.update(plain.subarray(off, off + mss));
      c.final();
      c.getAuthTag();
    } else {
      for (let off = 0; off < body.length; off += mss) hash.update(d.update(body.subarray(off, off + mss)));
      d.final();
    }
    bytes += r.bodyLength;
  }
  hash.digest();
  return bytes / seconds(t0) / 1e6;
}

function raw(o: ScenarioOptions): RawRow[] {
  const rows: RawRow[] = [];
  for (const recordSize of [...new Set([o.recordSize, 100])]) {
    const { s, info } = stream(recordSize, recordsFor(o, recordSize, 2 * 2 * (ROUNDS + 1)));
    const one: number[] = [];
    const str: number[] = [];
    for (let round = 0; round <= ROUNDS; round++) {
      const a = rawGcm(s, info.key, o.mss, true);
      const b = rawGcm(s, info.key, o.mss, false);
      if (round === 0) continue; // warm-up: JIT and allocator
      one.push(a);
      str.push(b);
    }
    rows.push({ recordSize, oneShotMBps: median(one), streamedMBps: median(str) });
  }
  return rows;
}

/**
 * JS heap bytes `fn` allocates, collected objects included: V8's sampling heap profiler (one sample per ~256
 * bytes allocated, scaled up), so an estimate. Off-heap backing stores (a Buffer's bytes) are not counted.
 */
function heapBytes(fn: () => void): number {
  const session = new Session();
  session.connect();
  let total = 0;
  const sum = (n: HeapProfiler.SamplingHeapProfileNode): number => n.selfSize + n.children.reduce((a, c) => a + sum(c), 0);
  session.post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  try {
    fn();
  } finally {
    session.post('HeapProfiler.stopSampling', (err, r) => {
      if (!err) total = sum(r.profile.head);
    });
    session.disconnect();
  }
  return total;
}

function cut(bytes: Uint8Array, start: number, mss: number, make: (seq: number, p: Uint8Array) => Uint8Array): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let off = 0; off < bytes.length; off += mss) frames.push(make(seqAdd(start, off), bytes.subarray(off, off + mss)));
  return frames;
}

/**
 * Rounds of the device scenario: many short ones, so that the device passes and the reference passes both
 * catch the host's quiet moments (its speed jumps 2-3x from one second to the next here).
 */
const DEVICE_ROUNDS = 24;

/** Device TX and RX (bench/run.ts of issue 3): the emulated NIC alone, frames prebuilt, one flow. */
function device(o: ScenarioOptions): DeviceRow[] {
  const rows: DeviceRow[] = [];
  for (const recordSize of [...new Set([o.recordSize, 100])]) {
    // A round is two reference passes and the TX and RX passes (each ~1.5-2 of a reference pass).
    const { s, info } = stream(recordSize, recordsFor(o, recordSize, 6 * (DEVICE_ROUNDS + 1)));
    const start = 1_000_000;
    const txFrames = cut(s.framed, start, o.mss, txFrame);
    const rxFrames = cut(s.sealed, start, o.mss, rxFrame);
    const frames = rxRing(rxFrames);
    const ref: number[] = [];
    const tx: number[] = [];
    const rx: number[] = [];
    const txRatios: number[] = [];
    const rxRatios: number[] = [];
    for (let round = 0; round <= DEVICE_ROUNDS; round++) {
      // A reference pass right before each device pass, so both kinds of pass meet the host's quiet moments
      // alike (the per-round pairs are kept for the JSON).
      const a = rawGcm(s, info.key, o.mss, false);
      const { nic } = makeNic();
      nic.attachWire(() => {});
      const h = nic.addContext('tx', { tuple: TUPLE, info, startSeq: start });
      let t0 = now();
      for (const frame of txFrames) nic.transmit({ frame, ctx: h });
      const b = s.framed.length / seconds(t0) / 1e6;
      if (nic.counters.tx_tls_encrypted_bytes !== s.framed.length) throw new Error('TX bench: the device did not encrypt every byte');
      const a2 = rawGcm(s, info.key, o.mss, false);
      const r = makeNic();
      let decrypted = 0;
      r.nic.onReceive((c) => {
        if (c.decrypted) decrypted++;
      });
      r.nic.addContext('rx', { tuple: TUPLE, info, startSeq: start });
      // RX decrypts in place: the ciphertext is written back into the same buffers every round, as a NIC's
      // RX ring reuses its pages (fresh buffers per round made the timed pass pay a full GC for them).
      for (let i = 0; i < frames.length; i++) frames[i]!.set(rxFrames[i]!);
      t0 = now();
      for (const frame of frames) r.nic.receiveFrame(frame);
      const c = s.sealed.length / seconds(t0) / 1e6;
      if (decrypted !== frames.length) throw new Error(`RX bench: ${frames.length - decrypted} packets not decrypted`);
      if (round === 0) continue;
      ref.push(a, a2);
      tx.push(b);
      rx.push(c);
      txRatios.push(b / a);
      rxRatios.push(c / a2);
    }
    // One more pass each way under the heap profiler (not timed: sampling slows allocation down).
    const tn = makeNic().nic;
    tn.attachWire(() => {});
    const th = tn.addContext('tx', { tuple: TUPLE, info, startSeq: start });
    const txHeap = heapBytes(() => {
      for (const frame of txFrames) tn.transmit({ frame, ctx: th });
    });
    const rn = makeNic().nic;
    rn.onReceive(() => {});
    rn.addContext('rx', { tuple: TUPLE, info, startSeq: start });
    for (let i = 0; i < frames.length; i++) frames[i]!.set(rxFrames[i]!);
    const rxHeap = heapBytes(() => {
      for (const frame of frames) rn.receiveFrame(frame);
    });
    const rawHeap = heapBytes(() => rawGcm(s, info.key, o.mss, false));
    const pieces = s.records.reduce((n, r) => n + Math.ceil(r.bodyLength / o.mss), 0);
    const refMBps = Math.max(...ref);
    const txMBps = Math.max(...tx);
    const rxMBps = Math.max(...rx);
    rows.push({
      recordSize, refMBps, txMBps, rxMBps, txRatio: txMBps / refMBps, rxRatio: rxMBps / refMBps, txRatios, rxRatios,
      txHeapBytes: txHeap / txFrames.length, rxHeapBytes: rxHeap / frames.length, rawHeapBytes: rawHeap / pieces,
    });
  }
  return rows;
}

const SINK = new Int32Array(1);

/**
 * The table's floor: ns per read of `mem` at the word offsets `at` (random 64-byte lines), the reads independent
 * of each other. Every page of `mem` must have been written: a page never written is the kernel's one zero
 * page, always in cache.
 */
function randomLineNs(mem: Int32Array, at: Int32Array): number {
  let acc = 0;
  const t = now();
  for (let k = 0; k < at.length; k++) acc ^= mem[at[k]!]!;
  const ns = (seconds(t) * 1e9) / at.length;
  SINK[0] ^= acc; // the loads have a use
  return ns;
}

/** Packets per lookupBurst() call: the kernel's default NAPI poll budget (NAPI_POLL_WEIGHT). */
const TABLE_BURST = 64;

/**
 * Context table: ns per lookup straight from packet bytes (uniformly random flows of the table, headers laid
 * out in arrival order as the RX path sees them), one by one and in bursts of TABLE_BURST, per add (filling
 * the table) and per del (emptying it).
 */
function table(o: ScenarioOptions): TableRow[] {
  const rows: TableRow[] = [];
  for (const flows of o.tableSizes ?? [1e3, 1e5, 1e6, 4e6]) {
    const rng = new Prng(flows);
    const addrs = new Uint8Array(flows * 8);
    const ports = new Uint16Array(flows * 2);
    for (let i = 0; i < addrs.length; i += 4) {
      const v = rng.u32();
      addrs[i] = v;
      addrs[i + 1] = v >>> 8;
      addrs[i + 2] = v >>> 16;
      addrs[i + 3] = v >>> 24;
    }
    for (let i = 0; i < ports.length; i++) ports[i] = rng.u32();
    // One key object refilled per add (the table copies key bytes): millions of key objects would measure the GC.
    const k = { dir: 'rx' as const, family: 4 as const, src: new Uint8Array(4), dst: new Uint8Array(4), sport: 0, dport: 0 };
    const key = (i: number) => {
      k.src.set(addrs.subarray(i * 8, i * 8 + 4));
      k.dst.set(addrs.subarray(i * 8 + 4, i * 8 + 8));
      k.sport = ports[i * 2]!;
      k.dport = ports[i * 2 + 1]!;
      return k;
    };
    const adds: number[] = [];
    const dels: number[] = [];
    const lookups: number[] = [];
    const bursts: number[] = [];
    const n = o.records ?? Math.max(100_000, Math.min(2_000_000, Math.round((o.seconds * 1e6) / 8)));
    const pkts = new Uint8Array(n * 12); // [src][dst][sport][dport]: also the record lookupBurst() reads
    const out = new Int32Array(n);
    for (let k = 0; k < n; k++) {
      const i = rng.u32() % flows;
      pkts.set(addrs.subarray(i * 8, i * 8 + 8), k * 12);
      pkts[k * 12 + 8] = ports[i * 2]! >>> 8;
      pkts[k * 12 + 9] = ports[i * 2]! & 0xff;
      pkts[k * 12 + 10] = ports[i * 2 + 1]! >>> 8;
      pkts[k * 12 + 11] = ports[i * 2 + 1]! & 0xff;
    }
    const rounds = flows >= 1e6 ? 1 : ROUNDS;
    const lines: number[] = [];
    let bucketBytes = 0;
    for (let round = 0; round <= rounds; round++) {
      const t = new FlowTable<number>(flows);
      const handles = new Int32Array(flows);
      let t0 = now();
      for (let i = 0; i < flows; i++) {
        try {
          handles[i] = t.add(key(i), i);
        } catch {
          handles[i] = -1; // a random duplicate 4-tuple (rare): that entry is looked up under the first one
        }
      }
      const add = (seconds(t0) * 1e9) / flows;
      bucketBytes = t.bucketBytes;
      const one = (): number => {
        let found = 0;
        const t1 = now();
        for (let p = 0; p < pkts.length; p += 12) {
          if (t.lookup('rx', pkts, p, p + 4, 4, (pkts[p + 8]! << 8) | pkts[p + 9]!, (pkts[p + 10]! << 8) | pkts[p + 11]!) >= 0) found++;
        }
        if (found !== n) throw new Error(`table bench: ${n - found} lookups missed`);
        return (seconds(t1) * 1e9) / n;
      };
      const burst = (): number => {
        out.fill(-1);
        const t1 = now();
        for (let k = 0; k < n; k += TABLE_BURST) t.lookupBurst('rx', 4, pkts, k * 12, 12, Math.min(TABLE_BURST, n - k), out, k);
        const ns = (seconds(t1) * 1e9) / n;
        for (let k = 0; k < n; k++) {
          if (out[k]! < 0) throw new Error(`table bench: burst lookup of packet ${k} missed`);
          const p = k * 12;
          if (k % 61 === 0 && out[k] !== t.lookup('rx', pkts, p, p + 4, 4, (pkts[p + 8]! << 8) | pkts[p + 9]!, (pkts[p + 10]! << 8) | pkts[p + 11]!)) {
            throw new Error(`table bench: burst lookup of packet ${k} differs from lookup()`);
          }
        }
        return ns;
      };
      // Both ways on the same table and packets, alternating which goes first, three passes each.
      const lookup: number[] = [];
      const burstLookup: number[] = [];
      for (let pass = 0; pass < 3; pass++) {
        if ((round + pass) % 2) burstLookup.push(burst());
        lookup.push(one());
        if ((round + pass) % 2 === 0) burstLookup.push(burst());
      }
      if (round === 0) {
        const mem = new Int32Array(bucketBytes >>> 2).fill(1);
        const at = new Int32Array(n);
        const lineMask = (bucketBytes >>> 6) - 1; // a power of two
        for (let k = 0; k < n; k++) at[k] = (rng.u32() & lineMask) << 4;
        for (let pass = 0; pass < 3; pass++) lines.push(randomLineNs(mem, at));
      }
      t0 = now();
      for (let i = 0; i < flows; i++) if (handles[i]! >= 0) t.remove(handles[i]!);
      const del = (seconds(t0) * 1e9) / flows;
      if (t.size !== 0) throw new Error(`table bench: ${t.size} entries left after deleting all`);
      if (round === 0) continue;
      adds.push(add);
      lookups.push(...lookup);
      bursts.push(...burstLookup);
      dels.push(del);
    }
    rows.push({ flows, lookupNs: Math.min(...lookups), burstLookupNs: Math.min(...bursts), burstSize: TABLE_BURST, addNs: median(adds), delNs: median(dels), lineNs: Math.min(...lines), bucketBytes });
  }
  return rows;
}

/**
 * The reference a replay run is paired with, measured right before it (the host's speed moves by 2-3x between
 * minutes): streamed raw GCM and that direction's floor on records of the replay's size, each the fastest of
 * REF_ROUNDS short rounds (as the replay keeps its fastest run: noise only slows things down; 3 rounds read the
 * download's floor anywhere from 0.18 to 0.67 of streamed raw, 25 interleaved passes 0.49-0.60).
 */
const REF_ROUNDS = 10;

function ref(o: ScenarioOptions): RefRow {
  const dir = o.direction ?? 'down';
  // A round: a raw pass and a floor pass (about two raw passes' time).
  const { s, info } = stream(o.recordSize, recordsFor(o, o.recordSize, 3 * (REF_ROUNDS + 1)));
  const str: number[] = [];
  const floor: number[] = [];
  for (let round = 0; round <= REF_ROUNDS; round++) {
    const a = rawGcm(s, info.key, o.mss, false);
    const b = replayFloor(s, info, o.mss, dir);
    if (round === 0) continue;
    str.push(a);
    floor.push(b);
  }
  return { streamedMBps: Math.max(...str), floorMBps: Math.max(...floor) };
}

const SCENARIOS = { raw, device, table, ref } as const;

const [name, json] = process.argv.slice(2);
const run = SCENARIOS[name as keyof typeof SCENARIOS];
if (!run || !json) {
  console.error(`usage: bench/scenarios.ts ${Object.keys(SCENARIOS).join('|')} '<json options>'`);
  process.exit(2);
}
console.log(`RESULT ${JSON.stringify(run(JSON.parse(json) as ScenarioOptions))}`);
