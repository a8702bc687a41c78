// Device TX: inline encryption equals one-shot software TLS, whatever the segmentation (SPEC section 4).
import test from 'ava';
import { nodeBackend } from '../emulator/crypto/index.ts';
import { Prng } from './helpers/prng.ts';
import { PLACEHOLDER_BYTE, VARIANTS, makeRecordStream, randomCuts, randomInfo } from './helpers/records.ts';
import { TUPLE, makeNic, parseSeg, reassemble, seqAdd, txFrame } from './helpers/nic-bench.ts';

const RUNS_PER_VARIANT = 300;

for (const variant of VARIANTS) {
  test(`TX ${variant.label}: device output equals software TLS for ${RUNS_PER_VARIANT} random segmentations`, (t) => {
    for (let run = 0; run < RUNS_PER_VARIANT; run++) {
      const seed = 1000 * run + variant.cipherType + variant.version;
      const rng = new Prng(seed);
      const { nic, wire } = makeNic();
      const info = randomInfo(variant, rng);
      // Start anywhere, including just below 2^32 so the stream wraps.
      const start = rng.chance(0.3) ? (2 ** 32 - rng.int(1, 20000)) >>> 0 : rng.u32();
      const h = nic.addContext('tx', { tuple: TUPLE, info, startSeq: start });
      t.true(h >= 0);
      const sizes = Array.from({ length: rng.int(1, 6) }, () => (rng.chance(0.2) ? 16384 : rng.int(0, 3000)));
      const stream = makeRecordStream(nodeBackend, info, sizes, rng);
      let off = 0;
      let expectedSegments = 0;
      for (const n of randomCuts(stream.framed.length, rng.chance(0.5) ? 1448 : 9000, rng)) {
        const tso = n > 1448 && rng.chance(0.5);
        nic.transmit({ frame: txFrame(seqAdd(start, off), stream.framed.subarray(off, off + n)), ctx: h, mss: tso ? 1448 : 0 });
        expectedSegments += tso ? Math.ceil(n / 1448) : 1;
        off += n;
      }
      const segs = wire.map(parseSeg);
      const out = reassemble(segs, start, stream.sealed.length);
      if (!equal(out, stream.sealed)) {
        t.fail(`seed ${seed}: ciphertext differs from software TLS at byte ${firstDiff(out, stream.sealed)}`);
        return;
      }
      if (!segs.every((s) => s.checksumOk && s.payload.length <= 9000)) {
        t.fail(`seed ${seed}: a segment has a bad TCP checksum`);
        return;
      }
      if (nic.counters.tx_tls_encrypted_packets !== expectedSegments || segs.length !== expectedSegments) {
        t.fail(`seed ${seed}: ${segs.length} segments on the wire, counter ${nic.counters.tx_tls_encrypted_packets}, expected ${expectedSegments}`);
        return;
      }
      t.is(nic.counters.tx_tls_encrypted_bytes, stream.framed.length);
    }
    t.pass();
  });
}

test('TX: the tag placeholder never reaches the wire and the input frame is not modified (DMA reads it)', (t) => {
  const rng = new Prng(7);
  const { nic, wire } = makeNic();
  const info = randomInfo(VARIANTS[0]!, rng);
  const h = nic.addContext('tx', { tuple: TUPLE, info, startSeq: 1000 });
  const stream = makeRecordStream(nodeBackend, info, [0, 1, 100, 5000], rng);
  const frame = txFrame(1000, stream.framed);
  const before = Uint8Array.from(frame);
  nic.transmit({ frame, ctx: h, mss: 1448 });
  t.deepEqual(frame, before);
  const out = reassemble(wire.map(parseSeg), 1000, stream.sealed.length);
  t.deepEqual(out, stream.sealed);
  for (const r of stream.records) {
    const tag = out.subarray(r.offset + r.sealed.length - 16, r.offset + r.sealed.length);
    t.false(tag.every((b) => b === PLACEHOLDER_BYTE), `record ${r.recSeq} tag is the placeholder`);
  }
});

test('TX: bytes without a context pass untouched (pre-offload handshake data)', (t) => {
  const { nic, wire } = makeNic();
  const payload = new TextEncoder().encode('\x16\x03\x03\x00\x05hello');
  nic.transmit({ frame: txFrame(5, payload) });
  t.deepEqual(parseSeg(wire[0]!).payload, payload);
  t.is(nic.counters.tx_tls_encrypted_packets, 0);
});

test('TX: a segment at the wrong seq is dropped by the device, never sent in plaintext', (t) => {
  const rng = new Prng(8);
  const { nic, wire } = makeNic();
  const events: string[] = [];
  nic.onEvent((e) => { if (e.kind === 'violation') events.push(e.message); });
  const info = randomInfo(VARIANTS[0]!, rng);
  const h = nic.addContext('tx', { tuple: TUPLE, info, startSeq: 100 });
  const stream = makeRecordStream(nodeBackend, info, [3000], rng);
  nic.transmit({ frame: txFrame(100 + 1000, stream.framed.subarray(1000, 2000)), ctx: h });
  t.is(wire.length, 0);
  t.is(nic.stats.txViolations, 1);
  t.regex(events[0]!, /TX seq 1100 but the context expects 100/);
});

test('TX: set-state and dump rebuild the crypto state for a retransmitted middle segment', (t) => {
  const rng = new Prng(9);
  const { nic, wire } = makeNic();
  const info = randomInfo(VARIANTS[1]!, rng, 41n);
  const h = nic.addContext('tx', { tuple: TUPLE, info, startSeq: 5000 });
  const stream = makeRecordStream(nodeBackend, info, [4000, 4000], rng);
  nic.transmit({ frame: txFrame(5000, stream.framed), ctx: h, mss: 1448 });
  wire.length = 0;
  // Retransmit bytes 5000..6000 of the second record: rebuild from its start.
  const r2 = stream.records[1]!;
  const at = r2.offset + 1000;
  nic.txSetState(h, 5000 + r2.offset, r2.recSeq);
  nic.txDump(h, r2.framed.subarray(0, 600));
  nic.txDump(h, r2.framed.subarray(600, 1000));
  nic.transmit({ frame: txFrame(5000 + at, stream.framed.subarray(at, at + 1448)), ctx: h });
  t.deepEqual(parseSeg(wire[0]!).payload, stream.sealed.subarray(at, at + 1448));
  t.is(nic.counters.tx_tls_dump_packets, 2);
  t.is(nic.counters.tx_tls_dump_bytes, 1000);
});

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function firstDiff(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return -1;
}

test('TX: a wire frame is the device\'s until the callback returns; a transmit from inside the callback does not write over it', (t) => {
  const rng = new Prng(11);
  const { nic } = makeNic();
  const info = randomInfo(VARIANTS[0]!, rng);
  const stream = makeRecordStream(nodeBackend, info, [3000], rng);
  const h = nic.addContext('tx', { tuple: TUPLE, info, startSeq: 5000 });
  const first = txFrame(5000, stream.framed.subarray(0, 1000));
  const second = txFrame(6000, stream.framed.subarray(1000, 2000));
  const seen: Array<{ frame: Uint8Array; copy: Uint8Array }> = [];
  nic.attachWire((f) => {
    const copy = f.slice();
    // The first frame's callback puts the next segment on the wire before it returns (a bridge, a loop back).
    if (seen.length === 0) {
      seen.push({ frame: f, copy });
      nic.transmit({ frame: second, ctx: h });
      t.deepEqual(f, copy, 'the outer frame is unchanged after the nested transmit');
    } else seen.push({ frame: f, copy });
  });
  nic.transmit({ frame: first, ctx: h });
  t.is(seen.length, 2);
  t.not(seen[0]!.frame.buffer, seen[1]!.frame.buffer, 'the nested frame got memory of its own');
  const payload = (x: Uint8Array) => parseSeg(x).payload;
  t.deepEqual(payload(seen[0]!.copy), stream.sealed.subarray(0, 1000));
  t.deepEqual(payload(seen[1]!.copy), stream.sealed.subarray(1000, 2000));
  // Outside any callback the device builds the next frame where the last one was: one TX buffer, no allocation.
  const third = txFrame(7000, stream.framed.subarray(2000, 2500));
  let last: Uint8Array | null = null;
  nic.attachWire((f) => (last = f));
  nic.transmit({ frame: third, ctx: h });
  t.is(last!.buffer, seen[0]!.frame.buffer);
});

test('TX: the TX buffer every Nic shares is not written over by another Nic transmitting from a wire or event callback', (t) => {
  const rng = new Prng(12);
  const info = randomInfo(VARIANTS[0]!, rng);
  const stream = makeRecordStream(nodeBackend, info, [4000], rng);
  const a = makeNic().nic;
  const b = makeNic().nic;
  const ha = a.addContext('tx', { tuple: TUPLE, info, startSeq: 5000 });
  const hb = b.addContext('tx', { tuple: TUPLE, info, startSeq: 5000 });
  const got: Record<string, Uint8Array[]> = { a: [], b: [] };
  let bSeq = 5000;
  const bSends = () => {
    b.transmit({ frame: txFrame(bSeq, stream.framed.subarray(bSeq - 5000, bSeq - 4000)), ctx: hb });
    bSeq += 1000;
  };
  b.attachWire((f) => got.b!.push(f.slice()));
  bSends(); // b is one segment ahead of a: its frames hold other bytes than a's
  // While `a` builds a frame its event sink makes `b` send one (the event comes before a's wire callback),
  // and a's wire callback makes `b` send another: both of b's frames need memory other than a's frame.
  a.onEvent((ev) => {
    if (ev.kind === 'tx') bSends();
  });
  a.attachWire((f) => {
    const before = f.slice();
    bSends();
    t.deepEqual(f, before, "a's frame unchanged by b's transmit");
    got.a!.push(before);
  });
  a.transmit({ frame: txFrame(5000, stream.framed.subarray(0, 1000)), ctx: ha });
  t.is(got.a!.length, 1);
  t.is(got.b!.length, 3);
  t.deepEqual(parseSeg(got.a![0]!).payload, stream.sealed.subarray(0, 1000));
  for (let i = 0; i < 3; i++) t.deepEqual(parseSeg(got.b![i]!).payload, stream.sealed.subarray(i * 1000, (i + 1) * 1000));
  t.true([...got.a!, ...got.b!].every((f) => parseSeg(f).checksumOk));
});
