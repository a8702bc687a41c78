// Bad input to the capture readers: each case is a CaptureError with file, offset and packet number (never
// another exception, never a hang), and 'stop' mode ends cleanly at a truncated tail. Hand-built pcapng
// blocks cover the block types real tools rarely write (SPB, OPB, NRB, ISB, custom, sections, tsresol).
import test from 'ava';
import fc from 'fast-check';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCapture, readCaptureBytes, type CaptureOptions, type CapturedPacket } from '../emulator/capture/index.ts';
import { CaptureError } from '../emulator/errors.ts';
import { concatBytes } from '../emulator/bytes.ts';

const concat = (...parts: Uint8Array[]) => concatBytes(parts);

const FORMATS = new URL('../fixtures/formats/', import.meta.url).pathname;
const load = (f: string): Uint8Array => new Uint8Array(readFileSync(join(FORMATS, f)));

function drain(buf: Uint8Array, opts: CaptureOptions = {}): { pkts: CapturedPacket[]; reader: ReturnType<typeof readCaptureBytes> } {
  const reader = readCaptureBytes(buf, opts);
  return { pkts: [...reader], reader };
}
function captureError(t: import('ava').ExecutionContext, fn: () => unknown, re: RegExp): CaptureError {
  const e = t.throws(fn, { instanceOf: CaptureError, message: re });
  return e as CaptureError;
}

// ---- classic pcap -------------------------------------------------------------------------------------

test('empty, tiny and non-capture files say what they are', (t) => {
  captureError(t, () => readCaptureBytes(new Uint8Array(0)), /empty file/);
  captureError(t, () => readCaptureBytes(Uint8Array.of(0xd4, 0xc3, 0xb2)), /too short/);
  const e = captureError(t, () => readCaptureBytes(new TextEncoder().encode('GET / HTTP/1.1\r\n')), /first bytes are 47 45 54 20/);
  t.is(e.where.offset, 0);
  t.is(e.where.field, 'magic');
  captureError(t, () => readCaptureBytes(Uint8Array.of(0x1f, 0x8b, 8, 0, 0, 0)), /gzip/);
  const dir = mkdtempSync(join(tmpdir(), 'tlsnic-capture-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  captureError(t, () => openCapture(join(dir, 'missing.pcap')), /cannot open capture: ENOENT/);
  captureError(t, () => openCapture(dir), /cannot open capture/);
});

test('truncated pcap global header is an error in both modes', (t) => {
  const f = load('eth-us.pcap').subarray(0, 10);
  for (const truncated of ['throw', 'stop'] as const) {
    const e = captureError(t, () => readCaptureBytes(f, { truncated }), /truncated pcap global header: 10 of 24/);
    t.is(e.where.offset, 0);
  }
});

test('truncated record header: throw names offset and packet; stop keeps the packets before it', (t) => {
  const full = drain(load('eth-us.pcap')).pkts;
  const third = full[2]!.fileOffset;
  const cut = load('eth-us.pcap').subarray(0, third + 7);
  const e = captureError(t, () => drain(cut), /truncated capture: record header needs 16 bytes/);
  t.is(e.where.offset, third);
  t.is(e.where.packet, 3);
  t.is(e.where.file, '<memory>');
  const { pkts, reader } = drain(cut, { truncated: 'stop' });
  t.is(pkts.length, 2);
  t.deepEqual(reader.truncatedAt, { offset: third, reason: `record header needs 16 bytes at offset ${third}, the file ends after 7` });
  t.is(drain(load('eth-us.pcap'), { truncated: 'stop' }).reader.truncatedAt, null);
});

test('record data running past the end of the file', (t) => {
  const buf = load('eth-us.pcap');
  const last = drain(buf).pkts.at(-1)!;
  const cut = buf.subarray(0, buf.length - 5);
  const e = captureError(t, () => drain(cut), new RegExp(`record of ${last.data.length} captured bytes needs ${last.data.length + 16} bytes at offset ${last.fileOffset}`));
  t.is(e.where.packet, 24);
  t.is(drain(cut, { truncated: 'stop' }).pkts.length, 23);
});

test('record length beyond snaplen sanity or over the cap is corrupt, in both modes', (t) => {
  const buf = load('eth-us.pcap').slice();
  const dv = new DataView(buf.buffer);
  const second = drain(buf).pkts[1]!.fileOffset;
  const orig = dv.getUint32(second + 8, true);
  dv.setUint32(second + 8, 0x7fffffff, true);
  for (const truncated of ['throw', 'stop'] as const) {
    const e = captureError(t, () => drain(buf, { truncated }), /2147483647 captured bytes, more than the snaplen/);
    t.like(e.where, { offset: second, packet: 2, field: 'incl_len' });
  }
  dv.setUint32(second + 8, orig, true);
  captureError(t, () => drain(buf, { maxRecord: 40 }), /over the 40-byte record cap/);
});

// ---- pcapng ---------------------------------------------------------------------------------------

/** A pcapng block: type, body (padded by the caller), total length both ends. */
function block(type: number, body: Uint8Array, le = true): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, type, le);
  dv.setUint32(4, out.length, le);
  out.set(body, 8);
  dv.setUint32(out.length - 4, out.length, le);
  return out;
}
function words(le: boolean, ...parts: Array<number | Uint8Array | ['u16', number] | ['i64', bigint]>): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const p of parts) {
    if (p instanceof Uint8Array) {
      const c = new Uint8Array((p.length + 3) & ~3);
      c.set(p);
      chunks.push(c);
    } else if (typeof p === 'number') {
      const c = new Uint8Array(4);
      new DataView(c.buffer).setUint32(0, p, le);
      chunks.push(c);
    } else if (p[0] === 'u16') {
      const c = new Uint8Array(2);
      new DataView(c.buffer).setUint16(0, p[1], le);
      chunks.push(c);
    } else {
      const c = new Uint8Array(8);
      new DataView(c.buffer).setBigInt64(0, p[1], le);
      chunks.push(c);
    }
  }
  return concatBytes(chunks);
}const u16pair = (a: number, b: number): ['u16', number][] => [['u16', a], ['u16', b]];
const shb = (le: boolean) => block(0x0a0d0d0a, words(le, 0x1a2b3c4d, ...u16pair(1, 0), ['i64', -1n]), le);
function idb(le: boolean, link: number, snaplen: number, opts: Uint8Array = new Uint8Array(0)): Uint8Array {
  return block(1, concat(words(le, ...u16pair(link, 0), snaplen), opts), le);
}
function opt(le: boolean, code: number, value: Uint8Array): Uint8Array {
  return words(le, ...u16pair(code, value.length), value);
}
const endopt = (le: boolean) => words(le, ...u16pair(0, 0));
function epb(le: boolean, ifid: number, units: bigint, data: Uint8Array, opts: Uint8Array = new Uint8Array(0)): Uint8Array {
  return block(6, concat(words(le, ifid, Number(units >> 32n), Number(units & 0xffffffffn), data.length, data.length + 100, data), opts), le);
}
const payload = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

test('pcapng: sections switch byte order and restart interface ids; SPB, OPB, NRB, ISB, custom and DSB', (t) => {
  const enc = new TextEncoder();
  const s1 = concat(
    shb(true),
    idb(true, 1, 0, concat(opt(true, 2, enc.encode('eth0')), opt(true, 9, Uint8Array.of(0x80 | 20)), endopt(true))),
    block(4, words(true, ...u16pair(1, 8), Uint8Array.of(127, 0, 0, 1, 0x6c, 0x6f, 0, 0), ...u16pair(0, 0))), // NRB
    block(3, words(true, 50, payload(50, 1))), // SPB on interface 0, snaplen 0 = none
    block(2, words(true, ...u16pair(0, 0), 0, 1 << 20, 10, 60, payload(10, 2))), // OPB: ts 2^20 units of 2^-20 s = 1 s
    block(5, words(true, 0, 0, 0)), // ISB
    block(0x00000bad, words(true, 32473, payload(6, 3))), // custom block (PEN 32473)
    block(10, words(true, 0x544c534b, 9, enc.encode('CLIENT x\n'))), // DSB
    block(10, words(true, 0x5353484b, 3, enc.encode('ssh'))), // DSB of another secrets type: ignored
  );
  // Section 2, big-endian: ns resolution, if_tsoffset 10 s, snaplen 20 so its SPB is cut.
  const s2 = concat(
    shb(false),
    idb(false, 276, 20, concat(opt(false, 9, Uint8Array.of(9)), opt(false, 14, words(false, ['i64', 10n])), endopt(false))),
    idb(false, 101, 0),
    epb(false, 1, 5n, payload(33, 4), concat(opt(false, 1, enc.encode('first')), opt(false, 1, enc.encode('second')), endopt(false))),
    block(3, words(false, 64, payload(20, 5)), false),
  );
  const { pkts, reader } = drain(concat(s1, s2));
  t.is(reader.format, 'pcapng');
  t.deepEqual(reader.interfaces.map((i) => [i.section, i.id, i.linkType, i.tsresol, i.tsoffset, i.name]), [
    [0, 0, 1, 0x80 | 20, 0n, 'eth0'],
    [1, 0, 276, 9, 10n, undefined],
    [1, 1, 101, 6, 0n, undefined],
  ]);
  t.deepEqual(reader.decryptionSecrets, ['CLIENT x\n']);
  t.deepEqual(pkts.map((p) => [p.number, p.linkType, p.interfaceId, p.tsNs, p.data.length, p.origLen, p.comment]), [
    [1, 1, 0, 0n, 50, 50, undefined],
    [2, 1, 0, 1_000_000_000n, 10, 60, undefined],
    [3, 101, 1, 5000n, 33, 133, 'first\nsecond'], // interface 1 of section 2: default µs resolution
    [4, 276, 0, 0n, 20, 64, undefined], // SPB cut at interface 0's snaplen 20
  ]);
  t.deepEqual(pkts[0]!.data, payload(50, 1));
  t.deepEqual(pkts[3]!.data, payload(20, 5));
});

test('pcapng tsresol: 2^-n and 10^-n units, and if_tsoffset, give the same instant', (t) => {
  const sec = 1_700_000_000n;
  const cases: Array<[number, bigint, bigint]> = [
    [6, sec * 1_000_000n + 250_000n, sec * 1_000_000_000n + 250_000_000n], // µs
    [9, sec * 1_000_000_000n + 7n, sec * 1_000_000_000n + 7n],
    [3, sec * 1000n + 1n, sec * 1_000_000_000n + 1_000_000n],
    [12, 1_000_000n * 1_000_000_000_000n + 4_999n, 1_000_000n * 1_000_000_000n + 4n], // ps (smaller epoch: 64-bit units), floored to ns
    [0x80 | 10, sec * 1024n + 512n, sec * 1_000_000_000n + 500_000_000n], // 2^-10 s
  ];
  for (const [res, units, ns] of cases) {
    const file = concat(shb(true), idb(true, 1, 0, concat(opt(true, 9, Uint8Array.of(res)), endopt(true))), epb(true, 0, units, payload(4, 0)));
    t.is(drain(file).pkts[0]!.tsNs, ns, `tsresol 0x${res.toString(16)}`);
  }
});

const goodNg = () => concat(shb(true), idb(true, 1, 0), epb(true, 0, 1n, payload(60, 9)), epb(true, 0, 2n, payload(61, 9)));

test('pcapng block length not a multiple of 4, below 12 (zero-length: no infinite loop), trailer mismatch', (t) => {
  const base = goodNg();
  const second = base.length - (12 + 20 + 64);
  const patch = (off: number, v: number) => {
    const b = base.slice();
    new DataView(b.buffer).setUint32(off, v, true);
    return b;
  };
  for (const truncated of ['throw', 'stop'] as const) {
    let e = captureError(t, () => drain(patch(second + 4, 94), { truncated }), /total length 94, not a multiple of 4/);
    t.like(e.where, { offset: second + 4, packet: 2, field: 'block_total_length' });
    e = captureError(t, () => drain(patch(second + 4, 0), { truncated }), /total length 0, below the 12-byte minimum/);
    t.like(e.where, { offset: second + 4, packet: 2 });
    e = captureError(t, () => drain(patch(base.length - 4, 92), { truncated }), /trailing total length 92 does not match the leading 96/);
    t.like(e.where, { offset: base.length - 4, packet: 2 });
    e = captureError(t, () => drain(patch(second + 8, 7), { truncated }), /interface 7, but section 0 has 1 interface/);
    t.like(e.where, { offset: second + 8, packet: 2, field: 'interface_id' });
    e = captureError(t, () => drain(patch(second + 20, 1000), { truncated }), /captured length 1000 runs past the block/);
    t.like(e.where, { packet: 2 });
  }
  captureError(t, () => drain(patch(8, 0x11223344)), /byte-order magic is 0x44332211, not 1a2b3c4d/);
  captureError(t, () => drain(base, { maxRecord: 64 }), /block type 0x6 of 92 bytes is over the 64-byte block cap/);
  // An option whose length runs past its block.
  const badOpt = concat(shb(true), idb(true, 1, 0, words(true, ...u16pair(9, 200))));
  captureError(t, () => drain(badOpt), /option 9 of 200 bytes .* runs past the block's end/);
  // A block length beyond the file: truncated tail.
  const big = patch(second + 4, 4096);
  captureError(t, () => drain(big), /truncated capture: block type 0x6 of 4096 bytes needs 4096 bytes/);
  const stopped = drain(big, { truncated: 'stop' });
  t.is(stopped.pkts.length, 1);
  t.is(stopped.reader.truncatedAt?.offset, second);
});

// ---- cuts and corruption: CaptureError or a clean read, never anything else, never a hang ---------------

function readAllOrCaptureError(buf: Uint8Array, opts: CaptureOptions): { n: number; error: CaptureError | null; truncated: boolean } {
  let n = 0;
  try {
    const r = readCaptureBytes(buf, opts);
    for (const _ of r) {
      n++;
      if (n > 100_000) throw new Error('runaway reader');
    }
    return { n, error: null, truncated: r.truncatedAt !== null };
  } catch (e) {
    if (e instanceof CaptureError) return { n, error: e, truncated: false };
    throw e;
  }
}

for (const file of ['eth-us.pcap', 'eth-ns-be.pcap', 'eth-comment.pcapng', 'eth-ns-be.pcapng', 'sll2.pcap']) {
  test(`${file} cut at every offset: full read, CaptureError, or a clean 'stop' with a prefix of the packets`, (t) => {
    const buf = load(file);
    const full = drain(buf).pkts.map((p) => p.data.slice());
    // Record/block boundaries: a cut exactly there leaves a shorter but whole file.
    const ends = new Set(drain(buf).pkts.map((p) => p.fileOffset));
    ends.add(buf.length);
    if (file.endsWith('.pcapng')) {
      const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      const le = buf[8] === 0x4d;
      for (let o = 0; o < buf.length; o += dv.getUint32(o + 4, le)) ends.add(o);
    }
    // The first header (pcap global header, or the whole first SHB with its options) must be complete.
    const headerLen = file.endsWith('.pcap') ? 24 : new DataView(buf.buffer, buf.byteOffset).getUint32(4, buf[8] === 0x4d);
    for (let cut = 0; cut <= buf.length; cut++) {
      const piece = buf.subarray(0, cut);
      const thrown = readAllOrCaptureError(piece, { truncated: 'throw' });
      const stopped = readAllOrCaptureError(piece, { truncated: 'stop' });
      if (cut < headerLen) {
        if (thrown.error === null || stopped.error === null) return t.fail(`cut ${cut}: header cut must be an error`);
        continue;
      }
      // A cut on a record boundary is a shorter but whole file; anything else is a truncated tail.
      const boundary = ends.has(cut);
      if (!boundary && thrown.error === null) return t.fail(`cut ${cut}: 'throw' read a torn file without error`);
      if (stopped.error !== null) return t.fail(`cut ${cut}: 'stop' threw ${stopped.error.message}`);
      const got = drain(piece, { truncated: 'stop' }).pkts;
      for (let i = 0; i < got.length; i++) {
        if (!Buffer.from(got[i]!.data).equals(full[i]!)) return t.fail(`cut ${cut}: packet ${i + 1} differs`);
      }
      if (!boundary && !stopped.truncated) return t.fail(`cut ${cut}: 'stop' did not report truncatedAt`);
    }
    t.pass();
  });
}

test('random byte corruption never throws anything but CaptureError and never hangs (fast-check)', (t) => {
  const files = ['eth-us.pcap', 'eth-comment.pcapng', 'eth-ns-be.pcapng'].map(load);
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: files.length - 1 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
      fc.constantFrom<'throw' | 'stop'>('throw', 'stop'),
      (which, flips, truncated) => {
        const buf = files[which]!.slice();
        for (const [at, v] of flips) buf[at % buf.length] = v;
        readAllOrCaptureError(buf, { truncated }); // throws (fails the property) on any other error
      },
    ),
    { numRuns: 2000, seed: 0x7c5 },
  );
  t.pass();
});

test('file readers place errors by file name too', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tlsnic-capture-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'cut.pcapng');
  const buf = load('eth-comment.pcapng');
  writeFileSync(path, buf.subarray(0, buf.length - 30));
  const r = openCapture(path);
  const e = t.throws(() => [...r], { instanceOf: CaptureError })!;
  t.is((e as CaptureError).where.file, path);
  t.is((e as CaptureError).where.packet, 24);
  const s = openCapture(path, { truncated: 'stop' });
  t.is([...s].length, 23);
  t.is(s.truncatedAt?.reason.includes('the file ends after'), true);
});

test('a classic pcap whose major version is not 2 is refused, like libpcap', (t) => {
  const buf = load('eth-us.pcap').slice();
  new DataView(buf.buffer).setUint16(4, 3, true);
  const e = captureError(t, () => readCaptureBytes(buf), /pcap version 3.4 is not 2.x/);
  t.like(e.where, { offset: 4, field: 'version_major' });
});
