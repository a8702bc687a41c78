// Device RX: inline decryption, all-or-nothing per packet, sync kept or lost as tls-offload.rst figures
// describe, stream-scan and hint resync (SPEC sections 5 and 6).
import test from 'ava';
import { nodeBackend } from '../emulator/crypto/index.ts';
import type { RxCompletion } from '../emulator/nic/types.ts';
import { Prng } from './helpers/prng.ts';
import { VARIANTS, makeRecordStream, randomCuts, randomInfo, type RecordStream } from './helpers/records.ts';
import { TUPLE, makeNic, parseSeg, rxFrame, seqAdd } from './helpers/nic-bench.ts';

const RUNS_PER_VARIANT = 250;

type Sent = { off: number; len: number };

function segmentStream(stream: RecordStream, rng: Prng, maxSeg: number): Sent[] {
  const out: Sent[] = [];
  let off = 0;
  for (const len of randomCuts(stream.sealed.length, maxSeg, rng)) {
    out.push({ off, len });
    off += len;
  }
  return out;
}

/** Which record (index) ends (its last tag byte) inside [off, off+len). */
function recordsEndingIn(stream: RecordStream, off: number, len: number): number[] {
  const out: number[] = [];
  stream.records.forEach((r, i) => {
    const last = r.offset + r.sealed.length - 1;
    if (last >= off && last < off + len) out.push(i);
  });
  return out;
}

for (const variant of VARIANTS) {
  test(`RX ${variant.label}: in-order stream with random corrupt records, ${RUNS_PER_VARIANT} runs: exactly the packets whose records authenticate are decrypted`, (t) => {
    for (let run = 0; run < RUNS_PER_VARIANT; run++) {
      const seed = 77 * run + variant.cipherType * 3 + variant.version;
      const rng = new Prng(seed);
      const { nic, cqes } = makeNic();
      const info = randomInfo(variant, rng);
      const start = rng.chance(0.3) ? (2 ** 32 - rng.int(1, 20000)) >>> 0 : rng.u32();
      t.true(nic.addContext('rx', { tuple: TUPLE, info, startSeq: start }) >= 0);
      const sizes = Array.from({ length: rng.int(1, 6) }, () => (rng.chance(0.2) ? 16384 : rng.int(0, 3000)));
      const stream = makeRecordStream(nodeBackend, info, sizes, rng);
      // Corrupt one body or tag byte of some records (not the header: framing stays intact; not the explicit
      // nonce: the oracle below predicts CTR bit flips).
      const wireBytes = Uint8Array.from(stream.sealed);
      const bad = new Set<number>();
      stream.records.forEach((r, i) => {
        if (rng.chance(0.25)) {
          wireBytes[r.offset + rng.int(r.bodyOffset, r.sealed.length - 1)] ^= 1 << rng.int(0, 7);
          bad.add(i);
        }
      });
      const sent = segmentStream(stream, rng, rng.chance(0.5) ? 1448 : 6000);
      for (const s of sent) nic.receiveFrame(rxFrame(seqAdd(start, s.off), wireBytes.subarray(s.off, s.off + s.len)));
      let decrypted = 0;
      let failed = 0; // packets in which a record ends whose tag fails: rx_tls_err counts packets, as mlx5 does
      for (let i = 0; i < sent.length; i++) {
        const s = sent[i]!;
        const c = cqes[i]!;
        const expect = !recordsEndingIn(stream, s.off, s.len).some((k) => bad.has(k));
        if (!expect) failed++;
        if (c.decrypted !== expect) {
          t.fail(`seed ${seed}: packet ${i} at stream offset ${s.off} decrypted=${c.decrypted}, expected ${expect}`);
          return;
        }
        const payload = parseSeg(c.frame).payload;
        // Decrypted: plaintext at body positions, framing bytes untouched. Not decrypted: exactly as received.
        const received = wireBytes.subarray(s.off, s.off + s.len);
        const ref = expect ? mergeCorrupt(stream.opened.subarray(s.off, s.off + s.len), received, stream, s) : received;
        if (!payload.every((b, k) => b === ref[k])) {
          t.fail(`seed ${seed}: packet ${i} payload wrong (decrypted=${c.decrypted})`);
          return;
        }
        if (c.decrypted) decrypted++;
      }
      t.is(nic.counters.rx_tls_decrypted_packets, decrypted);
      t.is(nic.counters.rx_tls_err, failed);
      t.true(failed <= bad.size);
    }
  });
}

/**
 * Expected bytes of a decrypted packet when records in it may be corrupt but end in a later packet: the
 * device decrypted them with the keystream anyway (the tag comes later), so their body bytes are the
 * plaintext XOR the corruption; framing bytes are as received.
 */
function mergeCorrupt(opened: Uint8Array, received: Uint8Array, stream: RecordStream, s: Sent): Uint8Array {
  const out = Uint8Array.from(opened);
  for (let k = 0; k < s.len; k++) {
    const pos = s.off + k;
    const diff = received[k]! ^ stream.sealed[pos]!;
    out[k] = out[k]! ^ diff;
  }
  return out;
}

test('RX figure "reorder of non-header segment": a lost segment without a header keeps sync', (t) => {
  const rng = new Prng(3);
  const { nic, cqes } = makeNic();
  const info = randomInfo(VARIANTS[0]!, rng);
  const h = nic.addContext('rx', { tuple: TUPLE, info, startSeq: 1 });
  const stream = makeRecordStream(nodeBackend, info, [2500, 2500, 2500], rng);
  // Segments of 1000 bytes; segment 1 (bytes 1000..2000) sits inside record 0's body.
  const segs = [0, 1000, 2000, 3000, 4000, 5000, 6000, 7000].filter((o) => o < stream.sealed.length);
  const order = [0, 2, 3, 4, 5, 6, 7, 1].filter((i) => i < segs.length);
  for (const i of order) {
    const o = segs[i]!;
    nic.receiveFrame(rxFrame(1 + o, stream.sealed.subarray(o, Math.min(o + 1000, stream.sealed.length))));
  }
  const flags = cqes.map((c) => c.decrypted);
  // 0 decrypted; 2 holds the rest of record 0 (blind) and the start of record 1: passed as is;
  // 3.. decrypted; the late segment 1 is outside the expected window: as is.
  t.deepEqual(flags, [true, false, true, true, true, true, true, false].slice(0, order.length));
  t.is(nic.counters.rx_tls_resync_req_pkt, 0);
  t.regex(nic.dumpTable(), new RegExp(`ctx=${h} dir=rx .* state=sync`));
  const s3 = parseSeg(cqes[2]!.frame); // segment 3, right after the gap: plaintext
  t.is(s3.seq, 1 + 3000);
  t.deepEqual(s3.payload, stream.opened.subarray(3000, 4000));
});

function lostHeaderRun(resync: 'scan' | 'hint') {
  const rng = new Prng(4);
  const bench = makeNic();
  const info = randomInfo(VARIANTS[0]!, rng, 10n);
  const h = bench.nic.addContext('rx', { tuple: TUPLE, info, startSeq: 100, rxResync: resync });
  const stream = makeRecordStream(nodeBackend, info, Array.from({ length: 30 }, () => 3000), rng);
  const send = (o: number, len = 1448) =>
    bench.nic.receiveFrame(rxFrame(100 + o, stream.sealed.subarray(o, Math.min(o + len, stream.sealed.length))));
  return { ...bench, h, stream, send, info };
}

test('RX figure "reorder of segment with a TLS header": sync lost, stream scan, confirmation, decryption resumes', (t) => {
  const { nic, cqes, h, stream, send } = lostHeaderRun('scan');
  const r1 = stream.records[1]!;
  // Send everything but the 1448-byte segment that holds record 1's header.
  const cut = r1.offset - 100;
  const requests: RxCompletion[] = [];
  for (let o = 0; o < stream.sealed.length; o += 1448) {
    if (o <= cut && cut < o + 1448) continue;
    send(o);
    const c = cqes.at(-1)!;
    if (c.resyncRequest && requests.length === 0) {
      requests.push(c);
      // The stack confirms the header the device asks about: record start and its number.
      const rec = stream.records.find((r) => 100 + r.offset === c.resyncRequest!.recordSeq);
      t.truthy(rec, 'the device asked about a real record header');
      t.is(c.resyncRequest.headerEndSeq, c.resyncRequest.recordSeq + 4);
      t.is(nic.rxResync(h, rec!.offset + 100, rec!.recSeq), 'ok');
    }
  }
  t.is(requests.length, 1);
  const reqAt = stream.records.findIndex((r) => 100 + r.offset === requests[0]!.resyncRequest!.recordSeq);
  // Scanning starts more than one max record past the loss.
  t.true(stream.records[reqAt]!.offset > r1.offset + 16384);
  // Everything from the record after the confirmed one is decrypted again, with the right plaintext.
  const resume = stream.records[reqAt + 1]!.offset;
  const after = cqes.filter((c) => parseSeg(c.frame).seq - 100 >= resume + 1448);
  t.true(after.length > 5);
  for (const c of after) {
    const s = parseSeg(c.frame);
    t.true(c.decrypted, `packet at ${s.seq - 100} decrypted`);
    t.deepEqual(s.payload, stream.opened.subarray(s.seq - 100, s.seq - 100 + s.payload.length));
  }
  t.is(nic.counters.rx_tls_resync_req_pkt, 1);
});

test('RX scan policy: an unanswered request is re-asked, then the scan restarts (no wedge)', (t) => {
  const { nic, cqes, stream, send } = lostHeaderRun('scan');
  const cut = stream.records[1]!.offset - 100;
  for (let o = 0; o < stream.sealed.length; o += 1448) if (!(o <= cut && cut < o + 1448)) send(o);
  const asked = cqes.filter((c) => c.resyncRequest).map((c) => c.resyncRequest!.recordSeq - 100);
  // Every request names a real header; re-asked after rerequestEveryRecords (8) more records.
  t.true(asked.length >= 2);
  for (const a of asked) t.true(stream.records.some((r) => r.offset === a));
  const idx = asked.map((a) => stream.records.findIndex((r) => r.offset === a));
  t.true(idx[1]! - idx[0]! >= 8);
  t.is(nic.counters.rx_tls_decrypted_packets, cqes.filter((c) => c.decrypted).length);
});

test('RX CORE_NEXT_HINT: after loss the device waits; a hint ahead arms it and decryption resumes there', (t) => {
  const { nic, cqes, h, stream, send } = lostHeaderRun('hint');
  const cut = stream.records[1]!.offset - 100;
  let hinted = false;
  for (let o = 0; o < stream.sealed.length; o += 1448) {
    if (o <= cut && cut < o + 1448) continue;
    send(o);
    t.is(cqes.at(-1)!.resyncRequest, null);
    if (!hinted && o > stream.records[5]!.offset) {
      // The stack names the next record start after what it has consumed.
      const next = stream.records[8]!;
      t.is(nic.rxResync(h, 100 + next.offset, next.recSeq), 'ok');
      hinted = true;
    }
  }
  const next = stream.records[8]!;
  for (const c of cqes) {
    const s = parseSeg(c.frame);
    const at = s.seq - 100;
    if (at >= next.offset) {
      t.is(c.decrypted, true, `packet at ${at}`);
      t.deepEqual(s.payload, stream.opened.subarray(at, at + s.payload.length));
    } else if (at + s.payload.length > stream.records[1]!.offset) {
      t.false(c.decrypted);
    }
  }
  // A hint for a point already passed is skipped.
  t.is(nic.rxResync(h, 100, 0n), 'skip');
});

test('RX: a bad TCP checksum gets no TLS processing and does not disturb the state', (t) => {
  const rng = new Prng(5);
  const { nic, cqes } = makeNic();
  const info = randomInfo(VARIANTS[2]!, rng);
  nic.addContext('rx', { tuple: TUPLE, info, startSeq: 0 });
  const stream = makeRecordStream(nodeBackend, info, [3000], rng);
  nic.receiveFrame(rxFrame(0, stream.sealed.subarray(0, 1000)));
  nic.receiveFrame(rxFrame(1000, stream.sealed.subarray(1000, 2000), true));
  nic.receiveFrame(rxFrame(1000, stream.sealed.subarray(1000, 2000)));
  nic.receiveFrame(rxFrame(2000, stream.sealed.subarray(2000)));
  t.deepEqual(cqes.map((c) => c.decrypted), [true, false, true, true]);
  t.deepEqual(parseSeg(cqes[1]!.frame).payload, stream.sealed.subarray(1000, 2000));
  t.is(nic.stats.rxBadChecksum, 1);
});

test('RX: frames of flows without a context, and malformed frames, pass up untouched', (t) => {
  const { nic, cqes } = makeNic();
  const f = rxFrame(0, new Uint8Array([23, 3, 3, 0, 1, 0]));
  nic.receiveFrame(f);
  nic.receiveFrame(new Uint8Array([1, 2, 3]));
  t.is(cqes.length, 2);
  t.false(cqes[0]!.decrypted);
  t.is(cqes[0]!.ctx, -1);
  t.is(nic.stats.rxMalformed, 1);
});
