// What the host's TCP puts on the wire and hands up: segment boundaries at offload-mark changes and
// fences, TSO super-segments, retransmits keeping marks, the OFO queue keeping decrypted flags, RTO
// backoff on the virtual clock, RST on garbage, the simulator's event cap.
import test from 'ava';
import { buildTcpFrame, FLAG_ACK, FLAG_RST, FLAG_SYN } from '../emulator/wire/builder.ts';
import { TcpSegmentView } from '../emulator/wire/packet.ts';
import { seqAdd } from '../emulator/wire/seq.ts';
import { makePlainPair, type PlainPair, type PlainPairOptions } from '../driver-api/host/pair.ts';
import { Rng } from '../driver-api/host/rng.ts';
import { Sim, SimEventCapError } from '../driver-api/host/sim.ts';
import type { TcpSocket } from '../driver-api/host/tcp.ts';
import type { NetDevice, SkBuff, Sock } from '../driver-api/ops.ts';
import type { RxChunk } from '../driver-api/tcp.ts';

type TxRec = { seq: number; len: number; decrypted: boolean; gsoSize: number; sk: Sock | null; flags: number; payload: Uint8Array; t: number };

/** Wrap host A's device so every skb it is handed is recorded (what ndo_start_xmit saw). */
function recordTx(p: PlainPair): TxRec[] {
  const recs: TxRec[] = [];
  const inner = p.devA;
  const v = new TcpSegmentView();
  const dev: NetDevice = {
    name: 'rec', features: inner.features, tlsdevOps: null, isUp: () => inner.isUp(),
    startXmit(skb: SkBuff) {
      v.parse(skb.data);
      recs.push({ seq: v.seq, len: v.payloadLength, decrypted: skb.decrypted, gsoSize: skb.gsoSize, sk: skb.sk, flags: v.flags, payload: v.payload().slice(), t: p.sim.now });
      inner.startXmit(skb);
    },
  };
  p.a.attachNetdev(dev);
  return recs;
}

function connected(o: PlainPairOptions = {}): PlainPair & { c: TcpSocket; s: () => TcpSocket; rx: Uint8Array[] } {
  const p = makePlainPair(o);
  let server: TcpSocket | null = null;
  const rx: Uint8Array[] = [];
  p.b.listen(443, (s) => {
    server = s;
    s.onData((d) => rx.push(d.slice()));
  });
  const c = p.a.connect(p.b.ip, 443);
  p.sim.run();
  if (c.state !== 'established' || !server) throw new Error('handshake did not complete');
  return { ...p, c, s: () => server!, rx };
}

const data = (n: number, fill: number) => new Uint8Array(n).fill(fill);

test('mark changes and fence() start new segments; skbs carry sk and decrypted = offload mark', (t) => {
  const p = connected();
  const recs = recordTx(p);
  const sk = { id: 77 } as unknown as Sock;
  p.c.sock = sk;
  p.c.queue(data(1000, 1), false);
  p.c.queue(data(2000, 2), true);
  p.c.fence();
  p.c.queue(data(300, 3), true);
  p.c.queue(data(100, 4), false);
  p.c.push();
  p.sim.run();
  const segs = recs.filter((r) => r.len > 0).map((r) => [r.len, r.decrypted]);
  t.deepEqual(segs, [[1000, false], [1460, true], [540, true], [300, true], [100, false]]);
  t.true(recs.every((r) => r.sk === sk));
  t.is(p.rx.reduce((n, d) => n + d.length, 0), 3400);
});

test('without the fence the same marks collapse into one MSS-sized skb', (t) => {
  const p = connected();
  const recs = recordTx(p);
  p.c.queue(data(2000, 2), true);
  p.c.queue(data(300, 3), true);
  p.c.push();
  p.sim.run();
  t.deepEqual(recs.filter((r) => r.len > 0).map((r) => r.len), [1460, 840]);
});

test('TSO: super-segments with gso_size = MSS, never spanning a mark change; wire frames at MSS', (t) => {
  const p = connected({ tcpA: { tso: true }, link: { capture: true } });
  const recs = recordTx(p);
  p.c.queue(data(5000, 1), false);
  p.c.queue(data(5000, 2), true);
  p.c.push();
  p.sim.run();
  t.deepEqual(recs.filter((r) => r.len > 0).map((r) => [r.len, r.gsoSize, r.decrypted]), [[5000, 1460, false], [5000, 1460, true]]);
  const wire = p.link.log.filter((e) => e.dir === 'a>b' && e.len > 58).map((e) => e.len - 54);
  t.deepEqual(wire, [1460, 1460, 1460, 620, 1460, 1460, 1460, 620]);
  t.is(p.a.counters.OutSegs >= 8, true);
  t.is(p.rx.reduce((n, d) => n + d.length, 0), 10_000);
});

test('retransmission re-sends the same bytes with the same mark', (t) => {
  let dropped = false;
  const p = connected({
    link: { impair: (f, dir) => {
      // drop the first offloaded data frame once (payload byte 0xbb)
      if (dir === 'a>b' && !dropped && f.length > 54 && f[54] === 0xbb) { dropped = true; return 'drop'; }
      return 'pass';
    } },
  });
  const recs = recordTx(p);
  p.c.queue(data(500, 0xaa), false);
  p.c.queue(data(500, 0xbb), true);
  p.c.push();
  p.sim.run();
  const marked = recs.filter((r) => r.len > 0 && r.payload[0] === 0xbb);
  t.is(marked.length, 2);
  t.is(marked[0]!.seq, marked[1]!.seq);
  t.deepEqual(marked[0]!.payload, marked[1]!.payload);
  t.true(marked.every((r) => r.decrypted));
  t.is(p.a.counters.RetransSegs, 1);
  t.is(p.rx.reduce((n, d) => n + d.length, 0), 1000);
});

test('validateXmit runs before every startXmit; a null return drops the skb and counts it', (t) => {
  const p = connected();
  const recs = recordTx(p);
  const seen: number[] = [];
  let dropNext = true;
  p.c.setUlp({
    onReceive() {},
    onAck() {},
    validateXmit(skb, dev) {
      t.is(dev, p.a.netdev);
      seen.push(skb.data.length);
      if (dropNext && skb.decrypted) { dropNext = false; return null; }
      return skb;
    },
  });
  p.c.queue(data(100, 5), true);
  p.c.push();
  p.sim.run();
  t.is(p.a.counters.ValidateXmitDrops, 1);
  t.is(seen.length, recs.length + 1);
  t.is(p.rx.reduce((n, d) => n + d.length, 0), 100); // the RTO re-sent it
});

test('out-of-order queue keeps each piece\'s decrypted flag, trims overlaps, never delivers a byte twice', (t) => {
  const p = connected();
  const got: RxChunk[] = [];
  const srv = p.s();
  srv.setUlp({ onReceive: (cs) => got.push(...cs.map((c) => ({ ...c, data: c.data.slice() }))), onAck() {} });
  const R = srv.rcvNxtSeq;
  const stream = new Rng(1).bytes(400);
  const feed = (from: number, to: number, decrypted: boolean) => {
    const frame = buildTcpFrame({
      family: 4, srcIp: p.a.ip, dstIp: p.b.ip, srcPort: p.c.tuple.sport, dstPort: 443,
      seq: seqAdd(R, from), ack: p.c.sndUna, flags: FLAG_ACK, payload: stream.subarray(from, to),
    });
    p.b.netifReceiveSkb({ data: frame, sk: null, decrypted, gsoSize: 0 });
  };
  feed(100, 200, true);
  feed(150, 300, false); // only [200, 300) is new
  t.deepEqual(srv.ofoDump(), [{ seq: seqAdd(R, 100), len: 100, decrypted: true }, { seq: seqAdd(R, 200), len: 100, decrypted: false }]);
  t.is(got.length, 0);
  feed(0, 120, false); // fills the hole, overlaps the first queued piece
  t.deepEqual(got.map((c) => [c.seq, c.data.length, c.decrypted]), [[R, 120, false], [seqAdd(R, 120), 80, true], [seqAdd(R, 200), 100, false]]);
  feed(0, 300, true); // a full duplicate: nothing new
  feed(290, 400, true); // partial overlap on the left
  t.deepEqual(got.slice(3).map((c) => [c.seq, c.data.length, c.decrypted]), [[seqAdd(R, 300), 100, true]]);
  const all = new Uint8Array(400);
  let o = 0;
  for (const c of got) { all.set(c.data, o); o += c.data.length; }
  t.is(o, 400);
  t.deepEqual(all, stream);
  t.is(srv.copiedSeq, seqAdd(R, 400));
});

test('RTO backs off exponentially on the virtual clock (RFC 6298 5.5), then ETIMEDOUT', (t) => {
  const p = connected({ tcpA: { maxRetries: 5 }, link: { latencyUs: 100 } });
  const recs = recordTx(p);
  p.link.impair = (_f, dir) => (dir === 'a>b' ? 'drop' : 'pass');
  let err = null as string | null;
  p.c.onError((e) => (err = e));
  p.c.write(data(100, 1));
  const t0 = p.sim.now;
  p.sim.run();
  const times = recs.filter((r) => r.len > 0).map((r) => r.t - t0);
  // the handshake's RTT sample (200 µs) puts the first RTO at the 200 ms floor
  t.deepEqual(times, [0, 200_000, 600_000, 1_400_000, 3_000_000, 6_200_000]);
  t.is(p.sim.now - t0, 12_600_000);
  t.is(err, 'ETIMEDOUT');
  t.is(p.c.state, 'closed');
  t.is(p.a.counters.TCPTimeouts, 6);
  t.is(p.a.counters.RetransSegs, 5);
});

test('SYN retransmits at 1 s, 2 s, 4 s ... then ETIMEDOUT', (t) => {
  const p = makePlainPair({ tcpA: { synRetries: 3 }, link: { capture: true, impair: (_f, dir) => (dir === 'a>b' ? 'drop' : 'pass') } });
  p.b.listen(443, () => t.fail('no handshake can complete'));
  const c = p.a.connect(p.b.ip, 443);
  let err = null as string | null;
  c.onError((e) => (err = e));
  p.sim.run();
  t.deepEqual(p.link.log.map((e) => e.t), [0, 1_000_000, 3_000_000, 7_000_000]);
  t.is(err, 'ETIMEDOUT');
});

test('RST on garbage: a stray ACK and a SYN to a closed port are answered with resets; connect gets ECONNREFUSED', (t) => {
  const p = makePlainPair({ link: { capture: true } });
  const v = new TcpSegmentView();
  const stray = buildTcpFrame({ family: 4, srcIp: p.a.ip, dstIp: p.b.ip, srcPort: 1234, dstPort: 80, seq: 1000, ack: 5555, flags: FLAG_ACK, payload: data(10, 1) });
  p.b.netifReceiveSkb({ data: stray, sk: null, decrypted: false, gsoSize: 0 });
  const c = p.a.connect(p.b.ip, 81);
  let err = null as string | null;
  c.onError((e) => (err = e));
  p.sim.run();
  const rsts = p.link.log.filter((e) => e.dir === 'b>a').map((e) => { v.parse(e.frame!); return { flags: v.flags, seq: v.seq, ack: v.ack }; });
  t.deepEqual(rsts[0], { flags: FLAG_RST, seq: 5555, ack: 0 });
  t.is(rsts[1]!.flags, FLAG_RST | FLAG_ACK);
  t.is(rsts[1]!.ack, seqAdd(c.iss, 1));
  t.is(err, 'ECONNREFUSED');
  t.is(p.b.counters.OutRsts, 2);
  t.is(FLAG_SYN & rsts[1]!.flags, 0);
});

test('a bad checksum is dropped and counted, not delivered', (t) => {
  const p = connected();
  const srv = p.s();
  const frame = buildTcpFrame({
    family: 4, srcIp: p.a.ip, dstIp: p.b.ip, srcPort: p.c.tuple.sport, dstPort: 443,
    seq: srv.rcvNxtSeq, ack: p.c.sndUna, flags: FLAG_ACK, payload: data(50, 9), badChecksum: true,
  });
  p.b.netifReceiveSkb({ data: frame, sk: null, decrypted: false, gsoSize: 0 });
  t.is(p.b.counters.InCsumErrors, 1);
  t.is(p.rx.length, 0);
});

test('the simulator throws a typed error naming its event cap instead of spinning', (t) => {
  const sim = new Sim();
  const tick = () => { sim.schedule(10, tick); };
  tick();
  const e = t.throws(() => sim.run({ maxEvents: 1000 }), { instanceOf: SimEventCapError });
  t.is(e?.where.field, 'maxEvents');
  t.is(sim.now, 10_000);
  t.deepEqual(sim.run({ until: 10_500 }), { events: 50, reason: 'until' });
});

test('timers: same-time events run in scheduling order; cancelled ones never run', (t) => {
  const sim = new Sim();
  const out: string[] = [];
  sim.schedule(5, () => out.push('a'));
  const h = sim.schedule(5, () => out.push('x'));
  sim.schedule(5, () => out.push('b'));
  sim.schedule(1, () => out.push('first'));
  sim.cancel(h);
  sim.run();
  t.deepEqual(out, ['first', 'a', 'b']);
});

test('rng: seeded, forks independent of position, int and chance in range', (t) => {
  const a = new Rng(42);
  const b = new Rng(42);
  t.deepEqual(a.bytes(33), b.bytes(33));
  a.next();
  t.deepEqual(a.fork('x').bytes(16), new Rng(42).fork('x').bytes(16));
  t.notDeepEqual(a.fork('x').bytes(16), a.fork('y').bytes(16));
  let hits = 0;
  for (let i = 0; i < 10_000; i++) {
    const k = a.int(7);
    t.true(k >= 0 && k < 7);
    if (a.chance(0.25)) hits++;
  }
  t.true(hits > 2200 && hits < 2800);
});
