// RSS: the Toeplitz hash on the Microsoft "Verifying the RSS hash calculation" vectors (IPv4 and IPv6,
// with and without ports, key RSS_DEFAULT_KEY), read both from a byte string and in place from real frames;
// then the replay's canonical mode (both directions on one queue) and the spread over queues.
import test from 'ava';
import fc from 'fast-check';
import { ConfigError } from '../emulator/errors.ts';
import { Rss, RSS_DEFAULT_KEY, Toeplitz, rssIndirDefault } from '../emulator/nic/rss.ts';
import { parseIp } from '../emulator/wire/addr.ts';
import { FLAG_ACK, TcpSegmentView, buildTcpFrame } from '../emulator/wire/index.ts';

type Vector = { src: string; dst: string; sport: number; dport: number; l3: number; l4: number };

// Source first, as the spec's input order (the page's table lists destination first).
const V4: Vector[] = [
  { src: '66.9.149.187', dst: '161.142.100.80', sport: 2794, dport: 1766, l3: 0x323e8fc2, l4: 0x51ccc178 },
  { src: '199.92.111.2', dst: '65.69.140.83', sport: 14230, dport: 4739, l3: 0xd718262a, l4: 0xc626b0ea },
  { src: '24.19.198.95', dst: '12.22.207.184', sport: 12898, dport: 38024, l3: 0xd2d0a5de, l4: 0x5c2b394a },
  { src: '38.27.205.30', dst: '209.142.163.6', sport: 48228, dport: 2217, l3: 0x82989176, l4: 0xafc7327f },
  { src: '153.39.163.191', dst: '202.188.127.2', sport: 44251, dport: 1303, l3: 0x5d1809c5, l4: 0x10e828a2 },
];
const V6: Vector[] = [
  { src: '3ffe:2501:200:1fff::7', dst: '3ffe:2501:200:3::1', sport: 2794, dport: 1766, l3: 0x2cc18cd5, l4: 0x40207d3d },
  { src: '3ffe:501:8::260:97ff:fe40:efab', dst: 'ff02::1', sport: 14230, dport: 4739, l3: 0x0f0c461c, l4: 0xdde51bbf },
  { src: '3ffe:1900:4545:3:200:f8ff:fe21:67cf', dst: 'fe80::200:f8ff:fe21:67cf', sport: 44251, dport: 38024, l3: 0x4b61e985, l4: 0x02d1feef },
];

function input(v: Vector, ports: boolean): Uint8Array {
  const s = parseIp(v.src);
  const d = parseIp(v.dst);
  const out = new Uint8Array(s.length * 2 + (ports ? 4 : 0));
  out.set(s, 0);
  out.set(d, s.length);
  if (ports) out.set([v.sport >> 8, v.sport & 0xff, v.dport >> 8, v.dport & 0xff], s.length * 2);
  return out;
}

function frameOf(family: 4 | 6, src: string, dst: string, sport: number, dport: number): Uint8Array {
  return buildTcpFrame({ family, srcIp: src, dstIp: dst, srcPort: sport, dstPort: dport, seq: 1, ack: 1, flags: FLAG_ACK, payload: new Uint8Array(10) });
}

const toeplitz = new Toeplitz();
const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;

for (const [name, vectors] of [['IPv4', V4], ['IPv6', V6]] as const) {
  test(`Toeplitz: Microsoft verification vectors, ${name} without ports (NDIS_HASH_IPV${name.at(-1)})`, (t) => {
    for (const v of vectors) t.is(hex(toeplitz.hash(input(v, false))), hex(v.l3), `${v.src} -> ${v.dst}`);
  });
  test(`Toeplitz: Microsoft verification vectors, ${name} with TCP ports (NDIS_HASH_TCP_IPV${name.at(-1)})`, (t) => {
    for (const v of vectors) t.is(hex(toeplitz.hash(input(v, true))), hex(v.l4), `${v.src}:${v.sport} -> ${v.dst}:${v.dport}`);
  });
  test(`Rss.hashSegment reads the ${name} 4-tuple in place from a frame and gives the vector's hash`, (t) => {
    const rss = new Rss({ queues: 4 });
    const view = new TcpSegmentView();
    for (const v of vectors) {
      t.is(view.parse(frameOf(name === 'IPv4' ? 4 : 6, v.src, v.dst, v.sport, v.dport)), 'tcp');
      t.is(hex(rss.hashSegment(view, false)), hex(v.l4));
      t.is(rss.queueOfSegment(view, false), rss.indir[v.l4 % 128]);
    }
  });
}

test('Toeplitz: the per-byte tables equal the bit-serial ComputeHash of the spec on random inputs', (t) => {
  // The spec's pseudocode, one bit at a time, as the reference for the table-driven version.
  const serial = (data: Uint8Array) => {
    let result = 0;
    const k = RSS_DEFAULT_KEY;
    const bitOfKey = (p: number) => (k[p >> 3]! >> (7 - (p & 7))) & 1;
    let window = ((k[0]! << 24) | (k[1]! << 16) | (k[2]! << 8) | k[3]!) >>> 0;
    for (let p = 0; p < data.length * 8; p++) {
      if ((data[p >> 3]! >> (7 - (p & 7))) & 1) result ^= window;
      window = ((window << 1) | bitOfKey(p + 32)) >>> 0;
    }
    return result >>> 0;
  };
  t.notThrows(() => fc.assert(fc.property(fc.uint8Array({ maxLength: 36 }), (d) => toeplitz.hash(d) === serial(d)), { numRuns: 500 }));
  t.is(hex(serial(input(V4[0]!, true))), hex(0x51ccc178));
});

test('indirection table: ethtool_rxfh_indir_default round robin, 128 entries', (t) => {
  const rss = new Rss({ queues: 3 });
  t.is(rss.indir.length, 128);
  t.deepEqual([...rss.indir.subarray(0, 7)], [0, 1, 2, 0, 1, 2, 0]);
  t.deepEqual([...rssIndirDefault(4, 2)], [0, 1, 0, 1]);
  t.is(rss.queueOfHash(0x51ccc178), 0x51ccc178 % 128 % 3);
});

const addr4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
const addr6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map((w) => w.map((x) => x.toString(16)).join(':'));
const port = fc.integer({ min: 1, max: 65535 });

test('canonical mode: both directions of a connection hash alike and land on one queue (IPv4 and IPv6)', (t) => {
  const rss = new Rss({ queues: 3 });
  const a = new TcpSegmentView();
  const b = new TcpSegmentView();
  let differentRaw = 0;
  fc.assert(
    fc.property(fc.boolean(), addr4, addr4, addr6, addr6, port, port, (v6, s4, d4, s6, d6, sp, dp) => {
      const [src, dst] = v6 ? [s6, d6] : [s4, d4];
      a.parse(frameOf(v6 ? 6 : 4, src, dst, sp, dp));
      b.parse(frameOf(v6 ? 6 : 4, dst, src, dp, sp));
      if (rss.hashSegment(a, false) !== rss.hashSegment(b, false)) differentRaw++;
      return rss.hashSegment(a, true) === rss.hashSegment(b, true) && rss.queueOfSegment(a, true) === rss.queueOfSegment(b, true);
    }),
    { numRuns: 2000 },
  );
  // The NIC's own (non-canonical) hash is direction dependent: that is why replay sorts the endpoints.
  t.true(differentRaw > 1900, `raw hashes differed for only ${differentRaw} of 2000 reversed tuples`);
});

test('canonical mode equals the plain hash of the sorted tuple', (t) => {
  const rss = new Rss({ queues: 2 });
  const view = new TcpSegmentView();
  // 161.142.100.80 > 66.9.149.187: from the server side, the sorted tuple is the vector's order.
  view.parse(frameOf(4, '161.142.100.80', '66.9.149.187', 1766, 2794));
  t.is(hex(rss.hashSegment(view, true)), hex(0x51ccc178));
  t.not(hex(rss.hashSegment(view, false)), hex(0x51ccc178));
  // Same address both ends: the port decides the order.
  view.parse(frameOf(4, '10.0.0.1', '10.0.0.1', 443, 80));
  const h = rss.hashSegment(view, true);
  view.parse(frameOf(4, '10.0.0.1', '10.0.0.1', 80, 443));
  t.is(rss.hashSegment(view, true), h);
  t.is(rss.hashSegment(view, false), h);
});

test('spread: 20000 random IPv4 client tuples to one server fill 2, 3 and 4 queues within 5% of even', (t) => {
  const view = new TcpSegmentView();
  const frames: Uint8Array[] = [];
  fc.sample(fc.tuple(addr4, port), { numRuns: 20000, seed: 7 }).forEach(([ip, p]) => frames.push(frameOf(4, ip, '10.1.0.1', p, 443)));
  for (const queues of [2, 3, 4]) {
    const rss = new Rss({ queues });
    const counts = new Array<number>(queues).fill(0);
    for (const f of frames) {
      view.parse(f);
      counts[rss.queueOfSegment(view, true)]!++;
    }
    const even = frames.length / queues;
    for (const c of counts) t.true(Math.abs(c - even) / even < 0.05, `${queues} queues: ${counts.join(' / ')}`);
  }
});

test('bad RSS configuration is a ConfigError naming the field', (t) => {
  t.is(t.throws(() => new Rss({ queues: 0 }), { instanceOf: ConfigError })?.where.field, 'rss.queues');
  t.is(t.throws(() => new Rss({ queues: 2, indirSize: 0 }), { instanceOf: ConfigError })?.where.field, 'rss.indirSize');
  t.is(t.throws(() => new Toeplitz(new Uint8Array(16)), { instanceOf: ConfigError })?.where.field, 'rss.key');
  t.is(t.throws(() => toeplitz.hash(new Uint8Array(37)), { instanceOf: ConfigError })?.where.field, 'rss.input');
});
