// Capture readers and writers on real captures: every format, byte order and timestamp resolution decodes
// to the same packets; pcap-parser and tshark read what we read; our writers' files round-trip and are
// accepted by tshark (which decrypts TLS from our embedded key log).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCapture, PcapngWriter, PcapWriter, readCaptureBytes, type CaptureOptions } from '../emulator/capture/index.ts';
import { hasTshark } from './helpers/tools.ts';

const FORMATS = new URL('../fixtures/formats/', import.meta.url).pathname;
const CAPTURES = new URL('../fixtures/captures/', import.meta.url).pathname;

type Pkt = { number: number; tsNs: bigint; linkType: number; data: Uint8Array; origLen: number; fileOffset: number; interfaceId: number; comment?: string | undefined };

function readAll(path: string, opts: CaptureOptions = {}): Pkt[] {
  const r = openCapture(path, opts);
  const out: Pkt[] = [];
  for (const p of r) out.push({ ...p, data: p.data.slice() });
  return out;
}

const usOf = (ns: bigint): bigint => (ns / 1000n) * 1000n;
function tshark(args: string[]): string {
  const r = spawnSync('tshark', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tshark ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}
function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'tlsnic-capture-'));
}

test('every format, byte order and resolution of the loopback capture decodes to the same packets', (t) => {
  const base = readAll(join(FORMATS, 'eth-ns.pcap'));
  t.is(base.length, 24);
  t.deepEqual(base.map((p) => p.number), Array.from({ length: 24 }, (_, i) => i + 1));
  const same = (file: string, link: number, strip: number, ts: (ns: bigint) => bigint | null) => {
    const got = readAll(join(FORMATS, file));
    t.is(got.length, base.length, file);
    got.forEach((p, i) => {
      const b = base[i]!;
      t.is(p.linkType, link, `${file} #${p.number} link type`);
      t.deepEqual(p.data.subarray(strip === 0 ? 0 : strip), strip === 0 ? b.data : b.data.subarray(14), `${file} #${p.number} data`);
      const want = ts(b.tsNs);
      if (want !== null) t.is(p.tsNs, want, `${file} #${p.number} ts`);
      t.is(p.origLen - p.data.length, b.origLen - b.data.length, `${file} #${p.number} lengths`);
      if (i > 0) t.true(p.fileOffset > got[i - 1]!.fileOffset);
    });
  };
  same('eth-ns-be.pcap', 1, 0, (ns) => ns);
  same('eth-ns.pcapng', 1, 0, (ns) => ns);
  same('eth-ns-be.pcapng', 1, 0, (ns) => ns);
  // eth-us.pcap is a separate µs tcpdump of the same packets: each packet socket stamps on its own, so the
  // stamps differ by about a microsecond; they must be whole µs and within 5 µs.
  same('eth-us.pcap', 1, 0, () => null);
  const us = readAll(join(FORMATS, 'eth-us.pcap'));
  us.forEach((p, i) => t.true(p.tsNs - base[i]!.tsNs < 5000n && base[i]!.tsNs - p.tsNs < 5000n && p.tsNs % 1000n === 0n, `eth-us.pcap #${p.number} ts`));
  const sameUs = (file: string) => t.deepEqual(readAll(join(FORMATS, file)).map((p) => [p.tsNs, p.data, p.origLen]), us.map((p) => [p.tsNs, p.data, p.origLen]), file);
  sameUs('eth-us-be.pcap');
  sameUs('eth-us.pcapng');
  sameUs('eth-comment.pcapng');
  // Raw IP: the same IP packets without the Ethernet header (data compared from offset 0 against base+14).
  const raw = (file: string, link: number) => {
    const got = readAll(join(FORMATS, file));
    t.is(got.length, 24);
    got.forEach((p, i) => {
      t.is(p.linkType, link);
      t.deepEqual(p.data, base[i]!.data.subarray(14), `${file} #${p.number}`);
      t.is(p.tsNs, us[i]!.tsNs);
    });
  };
  raw('raw101.pcap', 101);
  raw('raw12.pcap', 12);
  // SLL/SLL2 came from separate tcpdumps on "any": same IP packets behind 16/20-byte cooked headers; BSD
  // loopback (derive.ts) behind its 4-byte address family.
  for (const [file, link, hdr] of [['sll.pcap', 113, 16], ['sll2.pcap', 276, 20], ['null.pcap', 0, 4], ['loop.pcap', 108, 4]] as const) {
    const got = readAll(join(FORMATS, file));
    t.is(got.length, 24);
    got.forEach((p, i) => {
      t.is(p.linkType, link);
      t.deepEqual(p.data.subarray(hdr), base[i]!.data.subarray(14), `${file} #${p.number}`);
    });
  }
});

test('pcapng interfaces and resolutions are reported; editcap -a comment lands on frame 3 only', (t) => {
  const us = openCapture(join(FORMATS, 'eth-us.pcapng'));
  t.is(us.format, 'pcapng');
  t.is(us.interfaces.length, 1);
  t.is(us.interfaces[0]!.linkType, 1);
  t.is(us.interfaces[0]!.tsresol, 6);
  us.close();
  const ns = openCapture(join(FORMATS, 'eth-ns.pcapng'));
  t.is(ns.interfaces[0]!.tsresol, 9);
  ns.close();
  const commented = readAll(join(FORMATS, 'eth-comment.pcapng')).filter((p) => p.comment !== undefined);
  t.deepEqual(commented.map((p) => [p.number, p.comment]), [[3, 'third frame, commented by editcap -a']]);
  const pcap = openCapture(join(FORMATS, 'sll2.pcap'));
  t.is(pcap.format, 'pcap');
  t.deepEqual(pcap.interfaces.map((i) => i.linkType), [276]);
  pcap.close();
});

// pcap-parser (CommonJS, event-based, µs classic pcap only) is the independent reader we must agree with.
type PcapParserPacket = { header: { timestampSeconds: number; timestampMicroseconds: number; capturedLength: number; originalLength: number }; data: Uint8Array };
const pcapParser = createRequire(import.meta.url)('pcap-parser') as { parse(path: string): NodeJS.EventEmitter };
function viaPcapParser(path: string): Promise<PcapParserPacket[]> {
  return new Promise((resolve, reject) => {
    const out: PcapParserPacket[] = [];
    const p = pcapParser.parse(path);
    p.on('packet', (pkt: PcapParserPacket) => out.push(pkt));
    p.on('error', reject);
    p.on('end', () => resolve(out));
  });
}

const US_PCAPS = [
  ...['eth-us.pcap', 'eth-us-be.pcap', 'sll.pcap', 'sll2.pcap', 'raw101.pcap', 'raw12.pcap', 'null.pcap', 'loop.pcap'].map((f) => join(FORMATS, f)),
  ...['tls12-aes128-v4.pcap', 'tls12-aes256-v6.pcap', 'tls12-chacha-v4.pcap', 'tls12-many-v4.pcap', 'tls13-aes128-v4.pcap', 'tls13-aes256-v6.pcap'].map((f) => join(CAPTURES, f)),
];

for (const file of US_PCAPS) {
  test(`pcap-parser reads ${file.split('/').slice(-2).join('/')} exactly as we do`, async (t) => {
    const theirs = await viaPcapParser(file);
    const ours = readAll(file, { chunkSize: 4096 }); // small chunks: exercise the window compaction too
    t.true(ours.length > 0);
    t.is(ours.length, theirs.length);
    ours.forEach((p, i) => {
      const h = theirs[i]!.header;
      t.is(p.tsNs, BigInt(h.timestampSeconds) * 1_000_000_000n + BigInt(h.timestampMicroseconds) * 1000n);
      t.is(p.data.length, h.capturedLength);
      t.is(p.origLen, h.originalLength);
      t.true(Buffer.from(p.data).equals(theirs[i]!.data as Buffer), `packet ${p.number} data`);
    });
  });
}

test('tshark agrees on frame times and lengths of the nanosecond pcapng TLS capture', (t) => {
  if (!hasTshark) {
    t.log('tshark not installed: skipped (CI installs it)');
    t.pass();
    return;
  }
  const file = join(CAPTURES, 'tls12-aes128-v4-ns.pcapng');
  const rows = tshark(['-r', file, '-T', 'fields', '-e', 'frame.number', '-e', 'frame.time_epoch', '-e', 'frame.len', '-e', 'frame.cap_len'])
    .trim().split('\n').map((l) => l.split('\t'));
  const ours = readAll(file);
  t.is(ours.length, rows.length);
  ours.forEach((p, i) => {
    const [num, epoch, len, caplen] = rows[i]!;
    const [s, frac = ''] = epoch!.split('.');
    t.is(p.number, Number(num));
    t.is(p.tsNs, BigInt(s!) * 1_000_000_000n + BigInt(frac.padEnd(9, '0').slice(0, 9)));
    t.is(p.origLen, Number(len));
    t.is(p.data.length, Number(caplen));
  });
});

test('PcapWriter and PcapngWriter round-trip every fixture, in memory and to a file, both byte orders', (t) => {
  const dir = tmp();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const src of [join(FORMATS, 'eth-ns.pcap'), join(FORMATS, 'sll2.pcap'), join(CAPTURES, 'tls12-aes128-v4-ns.pcapng')]) {
    const pkts = readAll(src);
    const link = pkts[0]!.linkType;
    const writers: Array<[string, () => PcapWriter | PcapngWriter, (ns: bigint) => bigint]> = [
      ['pcap-us-le', () => new PcapWriter(null, { linkType: link }), usOf],
      ['pcap-ns-be', () => new PcapWriter(null, { linkType: link, resolution: 'ns', bigEndian: true }), (ns) => ns],
      ['pcapng-le', () => new PcapngWriter(null, { linkType: link }), (ns) => ns],
      ['pcapng-be-us', () => new PcapngWriter(null, { linkType: link, bigEndian: true, tsresol: 6 }), usOf],
      // 2^-30 s units: ns -> units floors, units -> ns floors; never more than 1 ns off.
      ['pcapng-2^-30', () => new PcapngWriter(null, { linkType: link, tsresol: 0x80 | 30 }), (ns) => ns],
    ];
    for (const [name, make, ts] of writers) {
      const w = make();
      for (const p of pkts) w.write({ data: p.data, tsNs: p.tsNs, origLen: p.origLen, ...(p.number % 5 === 0 ? { comment: `n${p.number}` } : {}) });
      const bytes = w.bytes();
      w.close();
      const path = join(dir, `${name}.out`);
      writeFileSync(path, bytes);
      for (const back of [[...readCaptureBytes(bytes)], readAll(path)]) {
        t.is(back.length, pkts.length, name);
        back.forEach((p, i) => {
          const o = pkts[i]!;
          t.deepEqual(p.data, o.data);
          t.is(p.origLen, o.origLen);
          t.is(p.linkType, link);
          if (name === 'pcapng-2^-30') t.true(o.tsNs - p.tsNs >= 0n && o.tsNs - p.tsNs <= 1n, `${name} ts`);
          else t.is(p.tsNs, ts(o.tsNs), `${name} ts`);
          if (name.startsWith('pcapng')) t.is(p.comment, p.number % 5 === 0 ? `n${p.number}` : undefined);
        });
      }
    }
    // The file-path writer produces the same bytes as the in-memory one.
    const path = join(dir, 'direct.pcapng');
    const fw = new PcapngWriter(path, { linkType: link });
    const mw = new PcapngWriter(null, { linkType: link });
    for (const p of pkts) for (const w of [fw, mw]) w.write({ data: p.data, tsNs: p.tsNs, comment: 'c' });
    fw.close();
    t.deepEqual(new Uint8Array(readFileSync(path)), mw.bytes());
  }
});

test('PcapngWriter gives each new link type its own IDB; the reader maps packets back to them', (t) => {
  const w = new PcapngWriter();
  const eth = readAll(join(FORMATS, 'eth-us.pcap'));
  const sll2 = readAll(join(FORMATS, 'sll2.pcap'));
  for (let i = 0; i < 4; i++) {
    w.write({ data: eth[i]!.data, tsNs: eth[i]!.tsNs });
    w.write({ data: sll2[i]!.data, tsNs: sll2[i]!.tsNs, linkType: 276 });
  }
  const r = readCaptureBytes(w.bytes());
  const got = [...r];
  t.deepEqual(r.interfaces.map((i) => i.linkType), [1, 276]);
  t.deepEqual(got.map((p) => [p.interfaceId, p.linkType]), [0, 1, 2, 3].flatMap(() => [[0, 1], [1, 276]]));
  t.deepEqual(got[7]!.data, sll2[3]!.data);
});

test('writer output is accepted by tshark: same frame count, times and lengths', (t) => {
  if (!hasTshark) {
    t.log('tshark not installed: skipped (CI installs it)');
    t.pass();
    return;
  }
  const dir = tmp();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pkts = readAll(join(FORMATS, 'eth-ns.pcap'));
  const files: Array<[string, PcapWriter | PcapngWriter]> = [
    ['us.pcap', new PcapWriter(join(dir, 'us.pcap'))],
    ['ns-be.pcap', new PcapWriter(join(dir, 'ns-be.pcap'), { resolution: 'ns', bigEndian: true })],
    ['raw.pcap', new PcapWriter(join(dir, 'raw.pcap'), { linkType: 101 })],
    ['le.pcapng', new PcapngWriter(join(dir, 'le.pcapng'))],
    ['be.pcapng', new PcapngWriter(join(dir, 'be.pcapng'), { bigEndian: true })],
  ];
  for (const [name, w] of files) {
    for (const p of pkts) w.write({ data: name === 'raw.pcap' ? p.data.subarray(14) : p.data, tsNs: p.tsNs, comment: `frame ${p.number}` });
    w.close();
    const out = tshark(['-r', join(dir, name), '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'frame.len', '-e', 'ip.src', '-e', 'frame.comment']).trim().split('\n');
    t.is(out.length, pkts.length, name);
    const [epoch, len, src, comment] = out[2]!.split('\t');
    const ns = name === 'us.pcap' || name === 'raw.pcap' ? usOf(pkts[2]!.tsNs) : pkts[2]!.tsNs;
    t.is(epoch, `${ns / 1_000_000_000n}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}`, name);
    t.is(Number(len), pkts[2]!.data.length - (name === 'raw.pcap' ? 14 : 0), name);
    t.is(src, '127.0.0.1', name);
    t.is(comment, name.endsWith('pcapng') ? 'frame 3' : '', name);
  }
});

test('a key log embedded in a DSB comes back from the reader and lets tshark decrypt the TLS 1.2 Finished', (t) => {
  const keylog = readFileSync(join(CAPTURES, 'tls12-aes128-v4.keylog'), 'utf8');
  const dir = tmp();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'with-keys.pcapng');
  const w = new PcapngWriter(path, { keyLog: keylog });
  for (const p of openCapture(join(CAPTURES, 'tls12-aes128-v4.pcap'))) w.write({ data: p.data, tsNs: p.tsNs, origLen: p.origLen });
  w.close();
  const r = openCapture(path);
  t.is([...r].length, 233);
  t.deepEqual(r.decryptionSecrets, [keylog]);
  if (!hasTshark) {
    t.log('tshark not installed: decryption check skipped (CI installs it)');
    return;
  }
  const finished = (f: string) => tshark(['-r', f, '-Y', 'tls.handshake.type == 20']).trim().split('\n').filter(Boolean).length;
  t.is(finished(join(CAPTURES, 'tls12-aes128-v4.pcap')), 0, 'without keys the Finished messages stay encrypted');
  t.is(finished(path), 2, 'with the DSB tshark decrypts both Finished messages');
});

test('small read chunks: records larger than the chunk grow the window and still read right; copy: true keeps data', (t) => {
  const file = join(CAPTURES, 'tls12-aes128-v4.pcap');
  const whole = [...readCaptureBytes(new Uint8Array(readFileSync(file)))].map((p) => ({ ...p, data: p.data.slice() }));
  const tiny = readAll(file, { chunkSize: 64 });
  t.deepEqual(tiny, whole);
  // copy: true hands out data that survives the window moving on (collected without slicing).
  const kept = [...openCapture(file, { chunkSize: 4096, copy: true })];
  t.deepEqual(kept.map((p) => p.data), whole.map((p) => p.data));
});
