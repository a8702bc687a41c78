// Wire codecs on real bytes: frames captured by tcpdump (fixtures/captures: a real TLS stack on veth with
// checksum offload off; fixtures/formats: one loopback capture in five link types), RFC 5952 address
// vectors, seq arithmetic against a BigInt reference, and every malformed header as a WireError with a place.
import test from 'ava';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { WireError } from '../emulator/errors.ts';
import {
  DLT_RAW,
  LINKTYPE_ETHERNET,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_LINUX_SLL2,
  LINKTYPE_LOOP,
  LINKTYPE_NULL,
  LINKTYPE_RAW,
  TcpHeader,
  TcpSegmentView,
  buildTcpFrame,
  checksumReplace32,
  formatIp,
  internetChecksum,
  linkL3,
  parseIp,
  parseTcpOptions,
  readU32,
  seqAdd,
  seqDiff,
  seqGeq,
  seqGt,
  seqInRange,
  seqLeq,
  seqLt,
  seqMax,
  seqMin,
  writeU32,
} from '../emulator/wire/index.ts';

// --- a few lines of classic pcap reading (24-byte file header, 16-byte record headers), both byte orders ---
type Capture = { linkType: number; frames: Uint8Array[] };
function readPcap(path: string): Capture {
  const b = new Uint8Array(readFileSync(path));
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const magic = dv.getUint32(0, true);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && dv.getUint32(0, false) !== 0xa1b2c3d4 && dv.getUint32(0, false) !== 0xa1b23c4d) throw new Error(`${path}: not a classic pcap`);
  const linkType = dv.getUint32(20, le) & 0x0fffffff;
  const frames: Uint8Array[] = [];
  for (let off = 24; off + 16 <= b.length; ) {
    const incl = dv.getUint32(off + 8, le);
    frames.push(b.slice(off + 16, off + 16 + incl));
    off += 16 + incl;
  }
  return { linkType, frames };
}

const CAPTURES = ['tls12-aes128-v4', 'tls12-chacha-v4', 'tls13-aes128-v4', 'tls12-aes256-v6', 'tls13-aes256-v6', 'tls12-many-v4'];

function hex(s: string): Uint8Array {
  return Uint8Array.from(s.replace(/\s+/g, '').match(/../g)!.map((h) => parseInt(h, 16)));
}

// Frame 1 of fixtures/captures/tls12-aes128-v4.pcap (client SYN), as `tshark -x` prints it. tshark: IP
// checksum 0x4f60, TCP checksum 0x0bc3, MSS 1460, SACK_PERM, TSval 783195709, WS 10 (shift).
const SYN_V4 = hex(`
  4a 88 b5 b4 f2 a0 ea d9 09 86 7c aa 08 00 45 00  00 3c d6 bf 40 00 40 06 4f 60 0a 4d 00 02 0a 4d
  00 01 b0 ae 12 c0 50 c3 4b 8f 00 00 00 00 a0 02  fa f0 0b c3 00 00 02 04 05 b4 04 02 08 0a 2e ae
  9e 3d 00 00 00 00 01 03 03 0a`);

// Frame 1 of fixtures/captures/tls13-aes256-v6.pcap: Linux SLL2 (link type 276), IPv6 SYN fd77::2 -> fd77::1,
// TCP checksum 0x75c9 per tshark.
const SYN_V6_SLL2 = hex(`
  86 dd 00 00 00 00 00 02 00 01 00 06 a2 a1 40 ad  56 c6 00 00 60 04 63 79 00 28 06 40 fd 77 00 00
  00 00 00 00 00 00 00 00 00 00 00 02 fd 77 00 00  00 00 00 00 00 00 00 00 00 00 00 01 e3 2c 12 03
  17 c9 fe 55 00 00 00 00 a0 02 fd 20 75 c9 00 00  02 04 05 a0 04 02 08 0a 5e 68 70 7d 00 00 00 00
  01 03 03 0a`);

test('a captured IPv4 SYN parses to the fields and checksums tshark shows', (t) => {
  const v = new TcpSegmentView();
  const frame = SYN_V4.slice();
  t.is(v.parse(frame), 'tcp');
  t.is(v.l3Offset, 14);
  t.is(v.ipVersion, 4);
  t.is(v.l4Offset, 34);
  t.is(v.payloadOffset, 74);
  t.is(v.payloadLength, 0);
  t.is(v.srcIp(), '10.77.0.2');
  t.is(v.dstIp(), '10.77.0.1');
  t.is(v.srcPort, 0xb0ae);
  t.is(v.dstPort, 0x12c0);
  t.is(v.seq, 0x50c34b8f);
  t.is(v.ack, 0);
  t.true(v.syn);
  t.false(v.ackFlag || v.fin || v.rst || v.psh);
  t.is(v.window, 64240);
  t.true(v.verifyTcpChecksum());
  t.true(v.verifyIpChecksum());
  // Recompute both from zero: the exact bytes on the wire.
  frame[14 + 10] = frame[14 + 11] = 0;
  t.is(internetChecksum(frame, 14, 20), 0x4f60);
  frame[34 + 16] = frame[34 + 17] = 0;
  t.false(v.verifyTcpChecksum());
  v.updateTcpChecksum();
  t.is((frame[50]! << 8) | frame[51]!, 0x0bc3);
  t.deepEqual(parseTcpOptions(v.tcp), { mss: 1460, sackPermitted: true, sack: [], timestamp: { tsval: 783195709, tsecr: 0 }, wscale: 10, unknown: [] });
});

test('a captured IPv6 SYN in a Linux SLL2 frame parses and its checksum recomputes to the captured one', (t) => {
  const v = new TcpSegmentView();
  const frame = SYN_V6_SLL2.slice();
  t.is(v.parse(frame, LINKTYPE_LINUX_SLL2), 'tcp');
  t.is(v.l3Offset, 20);
  t.is(v.ipVersion, 6);
  t.is(v.addrLength, 16);
  t.is(v.l4Offset, 60);
  t.is(v.srcIp(), 'fd77::2');
  t.is(v.dstIp(), 'fd77::1');
  t.is(v.dstPort, 4611);
  t.true(v.verifyTcpChecksum());
  frame[76] = frame[77] = 0;
  v.updateTcpChecksum();
  t.is((frame[76]! << 8) | frame[77]!, 0x75c9);
  t.is(parseTcpOptions(v.tcp).mss, 1440);
});

test('every frame of every TLS capture parses, checksums verify, and TCP bytes add up per direction', (t) => {
  const v = new TcpSegmentView();
  for (const name of CAPTURES) {
    const cap = readPcap(`fixtures/captures/${name}.pcap`);
    const manifest = JSON.parse(readFileSync(`fixtures/captures/${name}.json`, 'utf8')) as { connections: { client: string; server: string }[] };
    const endpoints = new Set(manifest.connections.flatMap((c) => [c.client, c.server]));
    // Per direction: ISN from the SYN, bytes seen, highest seq reached.
    const dirs = new Map<string, { isn: number; bytes: number; top: number }>();
    cap.frames.forEach((frame, i) => {
      if (v.parse(frame, cap.linkType) !== 'tcp') return t.fail(`${name} packet ${i + 1} is not TCP`);
      if (!v.verifyTcpChecksum()) t.fail(`${name} packet ${i + 1}: TCP checksum`);
      if (!v.verifyIpChecksum()) t.fail(`${name} packet ${i + 1}: IP checksum`);
      const ep = (ip: string, port: number) => (v.ipVersion === 6 ? `[${ip}]:${port}` : `${ip}:${port}`);
      const src = ep(v.srcIp(), v.srcPort);
      if (!endpoints.has(src) || !endpoints.has(ep(v.dstIp(), v.dstPort))) t.fail(`${name} packet ${i + 1}: ${src} not in the manifest`);
      const key = `${src}>${v.dstPort}`;
      if (v.syn) dirs.set(key, { isn: v.seq, bytes: 0, top: seqAdd(v.seq, 1) });
      const d = dirs.get(key);
      if (!d) return;
      d.bytes += v.payloadLength;
      // Only data moves the top: a pure ACK after our FIN carries seq FIN+1.
      if (v.payloadLength > 0) d.top = seqMax(d.top, seqAdd(v.seq, v.payloadLength));
    });
    t.true(dirs.size >= 2 * manifest.connections.length, name);
    for (const [key, d] of dirs) t.is(seqDiff(d.top, d.isn) - 1, d.bytes, `${name} ${key}: no retransmissions, so seq span = payload bytes`);
  }
});

test('one loopback capture in seven link types gives the same segments', (t) => {
  const files: Array<[string, number, number]> = [
    ['eth-us.pcap', LINKTYPE_ETHERNET, 14],
    ['sll.pcap', LINKTYPE_LINUX_SLL, 16],
    ['sll2.pcap', LINKTYPE_LINUX_SLL2, 20],
    ['raw101.pcap', LINKTYPE_RAW, 0],
    ['raw12.pcap', DLT_RAW, 0],
    ['null.pcap', LINKTYPE_NULL, 4],
    ['loop.pcap', LINKTYPE_LOOP, 4],
  ];
  const v = new TcpSegmentView();
  const digest = (file: string, linkType: number, l3: number) => {
    const cap = readPcap(`fixtures/formats/${file}`);
    t.is(cap.linkType, linkType, file);
    return cap.frames.map((f) => {
      t.is(v.parse(f, cap.linkType), 'tcp', file);
      t.is(v.l3Offset, l3, file);
      return `${v.srcIp()}:${v.srcPort}>${v.dstIp()}:${v.dstPort} ${v.seq}/${v.ack} ${v.flags} ${v.window} ${Buffer.from(v.payload()).toString('hex')}`;
    });
  };
  const ref = digest(...files[0]!);
  t.is(ref.length, 24);
  t.true(ref.some((s) => s.includes('474554202f')), 'an HTTP GET payload is among them');
  for (const f of files.slice(1)) t.deepEqual(digest(...f), ref, f[0]);
});

test('a corrupted payload byte fails the checksum; recomputing or an RFC 1624 update repairs it', (t) => {
  const cap = readPcap('fixtures/captures/tls12-aes128-v4.pcap');
  const v = new TcpSegmentView();
  const frame = cap.frames.find((f) => v.parse(f) === 'tcp' && v.payloadLength > 1000)!.slice();
  v.parse(frame);
  frame[v.payloadOffset + 500]! ^= 0x40;
  t.false(v.verifyTcpChecksum());
  v.updateTcpChecksum();
  t.true(v.verifyTcpChecksum());
  // Incremental seq rewrite (csum_replace4()) equals a full recompute.
  const c = v.l4Offset + 16;
  const old = v.seq;
  const next = seqAdd(old, 0x89abcdef);
  const inc = checksumReplace32((frame[c]! << 8) | frame[c + 1]!, old, next);
  v.seq = next;
  v.updateTcpChecksum();
  t.is(inc, (frame[c]! << 8) | frame[c + 1]!);
});

test('Ethernet padding after a short IP packet is not payload', (t) => {
  const bare = buildTcpFrame({ family: 4, srcIp: '10.0.0.1', dstIp: '10.0.0.2', srcPort: 1, dstPort: 2, seq: 5, ack: 6, flags: 0x10, payload: Uint8Array.of(0xaa) });
  t.is(bare.length, 55);
  const padded = new Uint8Array(60); // minimum Ethernet frame without FCS
  padded.set(bare);
  padded.fill(0xee, 55);
  const v = new TcpSegmentView();
  t.is(v.parse(padded), 'tcp');
  t.is(v.payloadLength, 1);
  t.deepEqual([...v.payload()], [0xaa]);
  t.is(v.ipEnd, 55);
  t.true(v.verifyTcpChecksum());
  const v6 = buildTcpFrame({ family: 6, srcIp: '::1', dstIp: '::2', srcPort: 1, dstPort: 2, seq: 5, ack: 6, flags: 0x10 });
  const p6 = new Uint8Array(v6.length + 7);
  p6.set(v6);
  p6.fill(0xee, v6.length);
  t.is(v.parse(p6), 'tcp');
  t.is(v.payloadLength, 0);
  t.true(v.verifyTcpChecksum());
});

test('IP fragments are not TCP segments; other protocols and ethertypes are not-tcp', (t) => {
  const v = new TcpSegmentView();
  const f = buildTcpFrame({ family: 4, srcIp: '1.2.3.4', dstIp: '5.6.7.8', srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: 0x10, payload: new Uint8Array(64) });
  const mf = f.slice();
  mf[20] = 0x20; // MF
  t.is(v.parse(mf), 'fragment');
  const later = f.slice();
  later[21] = 0x08; // offset 64 bytes, MF clear: the last fragment
  t.is(v.parse(later), 'fragment');
  const udp = f.slice();
  udp[23] = 17;
  t.is(v.parse(udp), 'not-tcp');
  const arp = f.slice();
  arp[12] = 0x08;
  arp[13] = 0x06;
  t.is(v.parse(arp), 'not-tcp');
  // IPv6: a real fragment header vs an atomic one (RFC 6946), which still carries the whole segment.
  const atomic = buildTcpFrame({ family: 6, srcIp: 'fd00::1', dstIp: 'fd00::2', srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: 0x10, ipv6Ext: [{ type: 44 }] });
  t.is(v.parse(atomic), 'tcp');
  t.true(v.verifyTcpChecksum());
  const frag = atomic.slice();
  frag[54 + 3] = 0x01; // M flag
  t.is(v.parse(frag), 'fragment');
  const esp = atomic.slice();
  esp[54] = 50; // fragment header's next header: ESP
  t.is(v.parse(esp), 'not-tcp');
});

// --- every malformed header: a WireError that says what and where ---
function throwsAt(t: import('ava').ExecutionContext, fn: () => unknown, field: string, offset?: number, text?: RegExp): void {
  const e = t.throws(fn, { instanceOf: WireError });
  if (!e) return;
  t.is(e.where.field, field, e.message);
  if (offset !== undefined) t.is(e.where.offset, offset, e.message);
  if (text) t.regex(e.message, text);
  t.regex(e.message, /\(at .*field /, 'the message carries its place');
}

test('malformed link, IPv4 and TCP headers throw WireError naming field and offset', (t) => {
  const v = new TcpSegmentView();
  const base = SYN_V4;
  const mut = (f: (b: Uint8Array) => void, len = base.length) => {
    const b = base.slice(0, len);
    f(b);
    return b;
  };
  throwsAt(t, () => v.parse(base, 42), 'linktype', undefined, /link type 42/);
  throwsAt(t, () => v.parse(base.slice(0, 13)), 'eth', 0, /13 bytes/);
  throwsAt(t, () => v.parse(mut((b) => { b[12] = 0x81; b[13] = 0; }, 16)), 'eth.vlan', 12);
  throwsAt(t, () => v.parse(Uint8Array.of(0x55, 0, 0), LINKTYPE_RAW), 'ip.version', 0, /version 5/);
  throwsAt(t, () => v.parse(new Uint8Array(0), LINKTYPE_RAW), 'ip.version', 0);
  throwsAt(t, () => v.parse(new Uint8Array(15), LINKTYPE_LINUX_SLL), 'sll', 0);
  throwsAt(t, () => v.parse(new Uint8Array(19), LINKTYPE_LINUX_SLL2), 'sll2', 0);
  throwsAt(t, () => v.parse(Uint8Array.of(2, 0, 0), LINKTYPE_NULL), 'null.family', 0, /4 bytes, have 3/);
  throwsAt(t, () => v.parse(new Uint8Array(0), LINKTYPE_LOOP), 'loop.family', 0);
  throwsAt(t, () => v.parse(base.slice(0, 30)), 'ip', 14, /20 bytes, 16 left/);
  throwsAt(t, () => v.parse(mut((b) => { b[14] = 0x65; })), 'ip.version', 14, /version 6/);
  throwsAt(t, () => v.parse(mut((b) => { b[14] = 0x44; })), 'ip.ihl', 14, /IHL 4/);
  throwsAt(t, () => v.parse(mut((b) => { b[17] = 19; })), 'ip.len', 16, /shorter than its header/);
  throwsAt(t, () => v.parse(mut((b) => { b[17] = 0x3d; })), 'ip.len', 16, /runs past the frame/);
  throwsAt(t, () => v.parse(mut((b) => { b[17] = 39; })), 'tcp', 34, /19 left/);
  throwsAt(t, () => v.parse(mut((b) => { b[46] = 0x40; })), 'tcp.doff', 46, /below 5/);
  throwsAt(t, () => v.parse(mut((b) => { b[46] = 0xb0; })), 'tcp.doff', 46, /runs past the segment/);
  // A TCP header that fits the frame but not the IP packet (total length cut; the rest is "padding").
  throwsAt(t, () => v.parse(mut((b) => { b[17] = 0x30; })), 'tcp.doff', 46);
});

test('malformed IPv6 headers and extension headers throw WireError naming field and offset', (t) => {
  const v = new TcpSegmentView();
  const f = buildTcpFrame({ family: 6, srcIp: 'fd00::1', dstIp: 'fd00::2', srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: 0x10, ipv6Ext: [{ type: 0, length: 16 }, { type: 51, length: 16 }, { type: 44 }] });
  t.is(v.parse(f), 'tcp');
  t.is(v.l4Offset, 14 + 40 + 16 + 16 + 8);
  t.true(v.verifyTcpChecksum());
  const mut = (g: (b: Uint8Array) => void) => {
    const b = f.slice();
    g(b);
    return b;
  };
  throwsAt(t, () => v.parse(f.slice(0, 50)), 'ipv6', 14, /40 bytes, 36 left/);
  throwsAt(t, () => v.parse(mut((b) => { b[14] = 0x40; })), 'ip.version', 14);
  throwsAt(t, () => v.parse(mut((b) => { b[19] += 1; })), 'ipv6.plen', 18);
  throwsAt(t, () => v.parse(mut((b) => { b[55] = 200; })), 'ipv6.ext', 54, /hop|0/);
  throwsAt(t, () => v.parse(mut((b) => { b[71] = 200; })), 'ipv6.ext', 70);
  // Cut the packet inside the fragment header (payload length says 36: hop 16 + AH 16 + 4).
  throwsAt(t, () => v.parse(mut((b) => { b[18] = 0; b[19] = 36; })), 'ipv6.frag', 86);
  throwsAt(t, () => v.parse(mut((b) => { b[18] = 0; b[19] = 20; })), 'ipv6.ah', 70);
  throwsAt(t, () => v.parse(mut((b) => { b[18] = 0; b[19] = 44; })), 'tcp', 94);
});

test('malformed TCP options throw WireError at the option', (t) => {
  const withOpts = (opts: number[]) => {
    const f = buildTcpFrame({ family: 4, srcIp: '1.1.1.1', dstIp: '2.2.2.2', srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: 2, options: Uint8Array.from(opts) });
    return TcpHeader.checked(f, 34);
  };
  const o = 34 + 20;
  throwsAt(t, () => parseTcpOptions(withOpts([1, 1, 1, 2])), 'tcp.options', o + 3, /no length byte/);
  throwsAt(t, () => parseTcpOptions(withOpts([2, 1, 0, 0])), 'tcp.options', o + 1, /length 1/);
  throwsAt(t, () => parseTcpOptions(withOpts([30, 9, 0, 0])), 'tcp.options', o + 1, /runs past the header/);
  throwsAt(t, () => parseTcpOptions(withOpts([2, 3, 5, 0])), 'tcp.options.mss', o + 1, /must be 4/);
  throwsAt(t, () => parseTcpOptions(withOpts([3, 4, 7, 0])), 'tcp.options.wscale', o + 1);
  throwsAt(t, () => parseTcpOptions(withOpts([4, 3, 0, 0])), 'tcp.options.sack_perm', o + 1);
  throwsAt(t, () => parseTcpOptions(withOpts([5, 6, 0, 0, 0, 0, 0, 0])), 'tcp.options.sack', o + 1);
  throwsAt(t, () => parseTcpOptions(withOpts([8, 8, 0, 0, 0, 0, 0, 0])), 'tcp.options.timestamp', o + 1);
  // EOL ends the list: bytes after it are not options (RFC 9293 3.2).
  t.deepEqual(parseTcpOptions(withOpts([0, 2, 1, 0])), { sackPermitted: false, sack: [], unknown: [] });
  t.deepEqual(parseTcpOptions(withOpts([1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 3, 77, 2])).sack, [
    [1, 2],
    [0xffffffff, 3],
  ]);
  t.deepEqual(parseTcpOptions(withOpts([77, 2, 1, 1])).unknown, [77]);
});

test('bad addresses, builder input and TSO input throw WireError', (t) => {
  for (const bad of ['1.2.3.256', '1.2.3', '1::2::3', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '::g', '12345::', 'fe80::1%eth0', '', '1.2.3.4::']) {
    throwsAt(t, () => parseIp(bad), 'address');
  }
  const ok = { family: 4 as const, srcIp: '1.1.1.1', dstIp: '2.2.2.2', srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: 0 };
  throwsAt(t, () => buildTcpFrame({ ...ok, dstIp: '::1' }), 'address');
  throwsAt(t, () => buildTcpFrame({ ...ok, vlan: [4096] }), 'eth.vlan');
  throwsAt(t, () => buildTcpFrame({ ...ok, options: new Uint8Array(41) }), 'tcp.options');
  throwsAt(t, () => buildTcpFrame({ ...ok, payload: new Uint8Array(65536) }), 'ip.len');
  throwsAt(t, () => formatIp(new Uint8Array(16), 0, 5), 'address');
  const e = t.throws(() => linkL3(7, new Uint8Array(20), { offset: 0, ethertype: 0 }), { instanceOf: WireError });
  t.regex(e!.message, /link type 7/);
});

test('IP text follows RFC 5952 and round-trips', (t) => {
  const cases: Array<[string, string]> = [
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // 4.2.3: the first of equal runs
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // 4.2.2: a single zero group stays
    ['2001:DB8::AAAA', '2001:db8::aaaa'], // 4.3: lowercase
    ['2001:db8:0:0:1:0:0:0', '2001:db8:0:0:1::'], // longest run wins
    ['0:0:0:0:0:0:0:0', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'], // section 5: IPv4-mapped keeps the dotted quad
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ['192.168.0.1', '192.168.0.1'],
  ];
  for (const [input, want] of cases) {
    const b = parseIp(input);
    t.is(formatIp(b, 0, b.length), want, input);
  }
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean(), (raw, sparse) => {
      const b = sparse ? raw.map((x, i) => ((i >> 1) % 3 === 0 ? 0 : x)) : raw;
      const text = formatIp(b, 0, 16);
      return Buffer.from(parseIp(text)).equals(Buffer.from(b)) && text === text.toLowerCase() && !/(^|:)0[0-9a-f]/.test(text);
    }),
    { seed: 5952, numRuns: 2000 },
  );
});

test('seq arithmetic agrees with a BigInt reference across the 2^32 wrap', (t) => {
  const M = 2n ** 32n;
  const refDiff = (a: number, b: number) => {
    let d = (BigInt(a) - BigInt(b)) % M;
    if (d < 0n) d += M;
    return Number(d >= 2n ** 31n ? d - M : d);
  };
  // Bias toward the wrap: values near 0 and near 2^32.
  const seq = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0xffffff00, max: 0xffffffff }), fc.integer({ min: 0, max: 0xff }));
  fc.assert(
    fc.property(seq, seq, fc.integer({ min: -(2 ** 32), max: 2 ** 32 }), (a, b, n) => {
      const sum = seqAdd(a, n);
      if (sum !== Number((((BigInt(a) + BigInt(n)) % M) + M) % M)) return false;
      const d = refDiff(a, b);
      if (seqDiff(a, b) !== d) return false;
      if (seqLt(a, b) !== d < 0 || seqLeq(a, b) !== d <= 0 || seqGt(a, b) !== d > 0 || seqGeq(a, b) !== d >= 0) return false;
      if (seqMax(a, b) !== (d >= 0 ? a : b) || seqMin(a, b) !== (d <= 0 ? a : b)) return false;
      return true;
    }),
    { seed: 793, numRuns: 20000 },
  );
  fc.assert(
    fc.property(seq, fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: -(2 ** 31) + 1, max: 2 ** 31 - 1 }), (start, width, off) => {
      const end = seqAdd(start, width);
      const x = seqAdd(start, off);
      return seqInRange(x, start, end) === (off >= 0 && off < width);
    }),
    { seed: 1982, numRuns: 20000 },
  );
  t.is(seqAdd(0xffffffff, 1), 0);
  t.is(seqDiff(0, 0xffffffff), 1);
  t.is(seqDiff(0x80000000, 0), -(2 ** 31)); // the ambiguous half-way point is "before" (RFC 1982 undefined)
  t.true(seqLt(0xfffffff0, 0x10));
  t.true(seqInRange(0, 0xfffffffe, 2));
  t.false(seqInRange(2, 0xfffffffe, 2));
});

test('readU32/writeU32 round-trip the full range', (t) => {
  const b = new Uint8Array(6);
  for (const x of [0, 1, 0x7fffffff, 0x80000000, 0xdeadbeef, 0xffffffff]) {
    writeU32(b, 1, x);
    t.is(readU32(b, 1), x);
  }
});

test.serial('parse of an Ethernet/IPv4/TCP frame allocates nothing: a million parses run no young-generation GC', async (t) => {
  // Not timed (this host's speed moves 2-3x): one small object per packet over a million parses is tens of
  // MB, more than V8's young generation holds, so it shows as scavenges (four when parse kept a one-field
  // object, tried). The control loop allocates one small array per frame and must show them, or the
  // instrument is blind here. Serial: no other test of this file allocates while the entries are awaited.
  const cap = readPcap('fixtures/captures/tls12-aes128-v4.pcap');
  const frames = cap.frames.slice(0, 64);
  const v = new TcpSegmentView();
  const parse = (n: number): number => {
    let acc = 0;
    for (let i = 0; i < n; i++) {
      v.parse(frames[i & 63]!);
      acc = (acc + v.payloadLength + v.seq) | 0;
    }
    return acc;
  };
  const keep: unknown[] = new Array(8).fill(null); // the control's arrays escape, so no compiler can drop them
  const control = (n: number): number => {
    let acc = 0;
    for (let i = 0; i < n; i++) {
      const pair = [v.parse(frames[i & 63]!), i];
      keep[i & 7] = pair;
      acc = (acc + v.payloadLength + (pair[1] as number)) | 0;
    }
    return acc;
  };
  const scavenges = async (f: (n: number) => number): Promise<number> => {
    f(200_000); // warm up the JIT
    await new Promise((r) => setImmediate(r));
    let count = 0;
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number } })[]) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) count++;
    });
    obs.observe({ entryTypes: ['gc'] });
    const acc = f(1_000_000);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    obs.disconnect();
    keep[0] = acc;
    return count;
  };
  const c = await scavenges(control);
  t.log(`scavenges in the control loop: ${c}`);
  t.true(c > 0, 'the control loop allocated and no scavenge was seen');
  t.is(await scavenges(parse), 0);
});
