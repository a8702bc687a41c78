// The kernel TLS stack model against a fake TCP socket and a fake driver (no NIC): offload decisions,
// TX framing and the records list, the software fallback, RX with device-decrypted segments, the three RX
// resync types, device down, /proc/net/tls_stat. SPEC sections 2, 4-8.
import test from 'ava';
import { nodeBackend } from '../emulator/crypto/index.ts';
import { ConfigError, ContractError } from '../emulator/errors.ts';
import { EBADMSG, EINVAL, EMSGSIZE, ENOSPC } from '../emulator/errno.ts';
import {
  TLS_1_2_VERSION, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_256, TLS_CIPHER_CHACHA20_POLY1305,
  bigIntToRecSeq, recSeqToBigInt, type CryptoInfo,
} from '../emulator/tls/crypto-info.ts';
import { explicitNonceFor, sealRecord } from '../emulator/tls/record-crypto.ts';
import { CONTENT_ALERT, CONTENT_APPLICATION_DATA } from '../emulator/tls/record.ts';
import { buildTcpFrame, FLAG_ACK } from '../emulator/wire/builder.ts';
import { TcpSegmentView } from '../emulator/wire/packet.ts';
import { seqAdd } from '../emulator/wire/seq.ts';
import type { FourTuple, NetDevFeatures, NetDevice, SkBuff, Sock, TlsContext, TlsDevOps, TlsOffloadCtxDir } from '../driver-api/ops.ts';
import type { RxChunk, TcpSock, TcpUlp } from '../driver-api/tcp.ts';
import { TAG_PLACEHOLDER, TlsStack, formatTlsStat, type TlsSocket } from '../driver-api/stack/index.ts';
import { RxResync } from '../driver-api/stack/rx-resync.ts';
import { Prng } from './helpers/prng.ts';
import { makeRecordStream } from './helpers/records.ts';
import { concatBytes } from '../emulator/bytes.ts';

const backend = nodeBackend;
const TUPLE: FourTuple = { family: 4, saddr: '10.0.0.1', sport: 443, daddr: '10.0.0.2', dport: 50000 };

// ---- fakes ----

type Queued = { seq: number; data: Uint8Array; offloaded: boolean };

class FakeTcp implements TcpSock {
  static nextId = 1;
  readonly id = FakeTcp.nextId++;
  readonly tuple = TUPLE;
  sndUna: number;
  writeSeq: number;
  copiedSeq: number;
  ulp: TcpUlp | null = null;
  queued: Queued[] = [];
  /** write_seq at each fence. */
  fences: number[] = [];
  closed = false;
  constructor(readonly netdev: NetDevice, writeSeq = 1000, copiedSeq = 5000) {
    this.writeSeq = writeSeq >>> 0;
    this.sndUna = writeSeq >>> 0;
    this.copiedSeq = copiedSeq >>> 0;
  }
  setUlp(ulp: TcpUlp): void {
    this.ulp = ulp;
  }
  queue(data: Uint8Array, offloaded: boolean): void {
    this.queued.push({ seq: this.writeSeq, data: Uint8Array.from(data), offloaded });
    this.writeSeq = seqAdd(this.writeSeq, data.length);
  }
  fence(): void {
    this.fences.push(this.writeSeq);
  }
  push(): void {}
  close(): void {
    this.closed = true;
    this.ulp?.onDestroy?.();
  }
  ack(seq: number): void {
    this.sndUna = seq;
    this.ulp!.onAck(seq);
  }
  /** Feed RX bytes from copiedSeq on, cut into pieces with per-piece decrypted flags. */
  feed(pieces: Array<{ data: Uint8Array; decrypted: boolean }>, seq: number): number {
    const chunks: RxChunk[] = [];
    for (const p of pieces) {
      chunks.push({ seq, data: p.data, decrypted: p.decrypted });
      seq = seqAdd(seq, p.data.length);
    }
    this.ulp!.onReceive(chunks);
    return seq;
  }
}

type DriverBehaviour = {
  add?: (dir: TlsOffloadCtxDir) => number;
  resync?: (dir: TlsOffloadCtxDir) => number;
  onAdd?: (sk: Sock, dir: TlsOffloadCtxDir) => void;
};

function fakeNetdev(b: DriverBehaviour = {}, features: Partial<NetDevFeatures> = {}, withOps = true): NetDevice & { up: boolean; dels: string[] } {
  const dels: string[] = [];
  const ops: TlsDevOps = {
    tlsDevAdd(_nd, sk, dir) {
      const r = b.add ? b.add(dir) : 0;
      if (r === 0) b.onAdd?.(sk, dir);
      return r;
    },
    tlsDevDel(_nd, _ctx: TlsContext, dir) {
      dels.push(dir);
    },
    tlsDevResync(_nd, _sk, _seq, _rcd, dir) {
      return b.resync ? b.resync(dir) : 0;
    },
  };
  const nd = {
    name: 'fake0',
    features: { tlsHwTxOffload: true, tlsHwRxOffload: true, txChecksumOffload: true, rxChecksumOffload: true, ...features },
    tlsdevOps: withOps ? ops : null,
    up: true,
    dels,
    isUp() {
      return nd.up;
    },
    startXmit(_skb: SkBuff) {},
  };
  return nd;
}

function info(version: CryptoInfo['version'] = TLS_1_2_VERSION, cipherType: CryptoInfo['cipherType'] = TLS_CIPHER_AES_GCM_128, recSeq = 7n, seed = 1): CryptoInfo {
  const rng = new Prng(seed);
  const keySize = cipherType === TLS_CIPHER_AES_GCM_128 ? 16 : 32;
  const chacha = cipherType === TLS_CIPHER_CHACHA20_POLY1305;
  return {
    version, cipherType, key: rng.bytes(keySize), iv: rng.bytes(chacha ? 12 : 8), salt: rng.bytes(chacha ? 0 : 4),
    recSeq: bigIntToRecSeq(recSeq),
  };
}

function setup(opts: { behaviour?: DriverBehaviour; features?: Partial<NetDevFeatures>; tls13?: boolean; writeSeq?: number; copiedSeq?: number } = {}) {
  const netdev = fakeNetdev(opts.behaviour, opts.features);
  const stack = new TlsStack({ backend, tls13Offload: opts.tls13 ?? false });
  const tcp = new FakeTcp(netdev, opts.writeSeq, opts.copiedSeq);
  const tls = stack.attach(tcp);
  const got: Array<{ data: Uint8Array; type: number | undefined }> = [];
  tls.onData((data, type) => got.push({ data: Uint8Array.from(data), type }));
  return { netdev, stack, tcp, tls, got };
}

function eq(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

function frame(seq: number, payload: Uint8Array): Uint8Array {
  return buildTcpFrame({ family: 4, srcIp: TUPLE.saddr, dstIp: TUPLE.daddr, srcPort: TUPLE.sport, dstPort: TUPLE.dport, seq, ack: 1, flags: FLAG_ACK, payload });
}

// ---- offload decision ----

const decisions: Array<[string, Parameters<typeof setup>[0], CryptoInfo, RegExp | null]> = [
  ['offloads TLS 1.2 AES-GCM-128', {}, info(), null],
  ['offloads TLS 1.2 AES-GCM-256', {}, info(TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_256), null],
  ['TX/RX feature off', { features: { tlsHwTxOffload: false, tlsHwRxOffload: false } }, info(), /feature tls-hw-(tx|rx)-offload off/],
  ['table full: tls_dev_add -ENOSPC', { behaviour: { add: () => -ENOSPC } }, info(), /^driver tls_dev_add returned -ENOSPC$/],
  ['driver throws', { behaviour: { add: () => { throw new Error('firmware on fire'); } } }, info(), /^driver tls_dev_add threw Error: firmware on fire$/],
  ['ChaCha20 is not offloadable', {}, info(TLS_1_2_VERSION, TLS_CIPHER_CHACHA20_POLY1305), /chacha20-poly1305 is not offloadable/],
  ['TLS 1.3 without opt-in', {}, info(TLS_1_3_VERSION), /TLS 1\.3 device offload not enabled/],
  ['TLS 1.3 with opt-in', { tls13: true }, info(TLS_1_3_VERSION), null],
];
for (const [name, opts, ci, reason] of decisions) {
  test(`offload decision: ${name}`, (t) => {
    const { tls, stack } = setup(opts);
    tls.setCryptoInfo('tx', ci);
    tls.setCryptoInfo('rx', ci);
    const want = reason ? 'sw' : 'hw';
    t.is(tls.txMode, want);
    t.is(tls.rxMode, want);
    if (reason) {
      t.regex(tls.txReason!, reason);
      t.regex(tls.rxReason!, reason);
      t.is(stack.tlsStat.TlsTxSw, 1);
      t.is(stack.tlsStat.TlsCurrRxSw, 1);
    } else {
      t.is(tls.txReason, null);
      t.is(stack.tlsStat.TlsTxDevice, 1);
      t.is(stack.tlsStat.TlsCurrRxDevice, 1);
    }
  });
}

test('offload decision: TX checksum offload off turns only TLS TX off; device down and no tlsdev_ops give SW', (t) => {
  const a = setup({ features: { txChecksumOffload: false } });
  a.tls.setCryptoInfo('tx', info());
  a.tls.setCryptoInfo('rx', info());
  t.is(a.tls.txMode, 'sw');
  t.regex(a.tls.txReason!, /checksum/);
  t.is(a.tls.rxMode, 'hw');

  const b = setup();
  b.netdev.up = false;
  b.tls.setCryptoInfo('tx', info());
  t.is(b.tls.txMode, 'sw');
  t.regex(b.tls.txReason!, /is down/);
  t.is(b.stack.callLog.length, 0);

  const nd = fakeNetdev({}, {}, false);
  const stack = new TlsStack({ backend });
  const tls = stack.attach(new FakeTcp(nd));
  tls.setCryptoInfo('rx', info());
  t.is(tls.rxMode, 'sw');
  t.regex(tls.rxReason!, /no tlsdev_ops/);
});

test('offload decision: tls_dev_add gets write_seq after a fence (TX) and copied_seq (RX)', (t) => {
  const { tls, tcp, stack } = setup({ writeSeq: 1234, copiedSeq: 98765 });
  t.is(tls.txMode, null);
  tls.setCryptoInfo('tx', info());
  tls.setCryptoInfo('rx', info(TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128, 99n));
  t.deepEqual(tcp.fences, [1234]);
  t.deepEqual(stack.callLog.map((c) => [c.op, c.dir, c.seq, c.rcdSn, c.result]), [
    ['tls_dev_add', 'tx', 1234, 7n, 0],
    ['tls_dev_add', 'rx', 98765, 99n, 0],
  ]);
});

test('setsockopt validation: ConfigError naming the field path', (t) => {
  const { tls } = setup();
  const bad = { ...info(), key: new Uint8Array(15) };
  const e1 = t.throws(() => tls.setCryptoInfo('tx', bad), { instanceOf: ConfigError });
  t.is(e1.where.field, 'tx.key');
  const e2 = t.throws(() => tls.setCryptoInfo('rx', { ...info(), cipherType: 99 }), { instanceOf: ConfigError });
  t.is(e2.where.field, 'rx.cipherType');
  const e3 = t.throws(() => tls.setCryptoInfo('rx', { ...info(), version: 0x0302 }), { instanceOf: ConfigError });
  t.is(e3.where.field, 'rx.version');
  const e4 = t.throws(() => tls.setCryptoInfo('tx', { ...info(), recSeq: new Uint8Array(4) }), { instanceOf: ConfigError });
  t.is(e4.where.field, 'tx.recSeq');
  t.is(tls.txMode, null);
});

// do_tls_setsockopt_conf(): keys already set on a TLS 1.2 direction: -EBUSY before the new value is read, and
// (6.14 rekey series) a rekey error counted for that direction; the first keys stay in use.
test('setsockopt TLS_TX/TLS_RX twice on TLS 1.2: -EBUSY, TlsTxRekeyError/TlsRxRekeyError, the first keys kept', (t) => {
  const { tls, stack } = setup();
  const first = info();
  tls.setCryptoInfo('tx', first);
  tls.setCryptoInfo('rx', first);
  const other = { ...info(), key: new Uint8Array(16).fill(9) };
  const e = t.throws(() => tls.setCryptoInfo('tx', other), { instanceOf: ContractError });
  t.regex(e.message, /TLS_TX already set .*-EBUSY/);
  t.throws(() => tls.setCryptoInfo('rx', { garbage: true }), { instanceOf: ContractError, message: /TLS_RX already set .*-EBUSY/ });
  t.throws(() => tls.setCryptoInfo('rx', other), { instanceOf: ContractError });
  t.is(stack.tlsStat.TlsTxRekeyError, 1);
  t.is(stack.tlsStat.TlsRxRekeyError, 2);
  t.is(stack.tlsStat.TlsTxRekeyOk + stack.tlsStat.TlsRxRekeyOk, 0);
  t.deepEqual(tls.txInfo!.key, first.key);
  t.deepEqual(tls.rxInfo!.key, first.key);
  t.notDeepEqual(first.key, other.key);
});

// ---- TX ----

test('TX HW: one record per write, a 20000-byte write is two records; header, explicit nonce, plaintext, placeholder tag', (t) => {
  const { tls, tcp, stack } = setup();
  const ci = info();
  tls.setCryptoInfo('tx', ci);
  const rng = new Prng(5);
  const a = rng.bytes(100);
  const b = rng.bytes(20000);
  tls.send(a);
  tls.send(b, CONTENT_ALERT);
  t.is(tcp.queued.length, 3);
  t.true(tcp.queued.every((q) => q.offloaded));
  const lens = [100, 16384, 3616];
  const pts = [a, b.subarray(0, 16384), b.subarray(16384)];
  for (let i = 0; i < 3; i++) {
    const r = tcp.queued[i]!.data;
    t.is(r.length, 5 + 8 + lens[i]! + 16);
    t.is(r[0], i === 0 ? CONTENT_APPLICATION_DATA : CONTENT_ALERT);
    t.is((r[3]! << 8) | r[4]!, 8 + lens[i]! + 16);
    t.deepEqual(r.subarray(5, 13), explicitNonceFor(ci, 7n + BigInt(i)));
    t.deepEqual(r.subarray(13, 13 + lens[i]!), pts[i]);
    t.deepEqual(r.subarray(r.length - 16), TAG_PLACEHOLDER);
  }
  t.true(TAG_PLACEHOLDER.some((x) => x !== 0));
  t.is(tls.txRecordSeq, 10n);
  // tls_get_record: every byte maps to its record and number, the start marker answers pre-offload bytes.
  const r1 = stack.tlsGetRecord(tls.sk, 1000 + 129 + 5)!;
  t.is(r1.record.startSeq, 1000 + 129);
  t.is(r1.rcdSn, 8n);
  const pre = stack.tlsGetRecord(tls.sk, 999)!;
  t.is(pre.record.data.length, 0);
  t.is(pre.record.startSeq, 1000);
  t.is(stack.tlsGetRecord(tls.sk, 1000)!.rcdSn, 7n);
  t.is(stack.tlsGetRecord(tls.sk, tcp.writeSeq), null);
});

test('TX HW: ACK cleanup drops whole records only; acknowledged seqs are not found; hint survives', (t) => {
  const { tls, tcp, stack } = setup();
  tls.setCryptoInfo('tx', info());
  for (let i = 0; i < 5; i++) tls.send(new Uint8Array(100 + i));
  const starts = tcp.queued.map((q) => q.seq);
  // Walk backwards and forwards to exercise the retransmit hint.
  t.is(stack.tlsGetRecord(tls.sk, starts[3]! + 1)!.rcdSn, 10n);
  t.is(stack.tlsGetRecord(tls.sk, starts[1]!)!.rcdSn, 8n);
  t.is(stack.tlsGetRecord(tls.sk, starts[4]! + 50)!.rcdSn, 11n);
  tcp.ack(starts[2]! + 3); // records 7 and 8 and the start marker fully acked, record 9 partly
  t.is(stack.tlsGetRecord(tls.sk, starts[1]!), null);
  t.is(stack.tlsGetRecord(tls.sk, 999), null); // start marker gone: pre-offload bytes are no longer known
  const r = stack.tlsGetRecord(tls.sk, starts[2]! + 5)!;
  t.is(r.rcdSn, 9n);
  t.is(r.record.startSeq, starts[2]!);
  t.is(stack.tlsGetRecord(tls.sk, starts[4]! + 1)!.rcdSn, 11n);
  tcp.ack(tcp.writeSeq);
  t.is(stack.tlsGetRecord(tls.sk, starts[4]!), null);
});

test('TX SW: records equal sealRecord and are queued not offloaded', (t) => {
  const { tls, tcp } = setup({ features: { tlsHwTxOffload: false } });
  const ci = info(TLS_1_3_VERSION);
  tls.setCryptoInfo('tx', ci);
  const rng = new Prng(9);
  const a = rng.bytes(3000);
  tls.send(a);
  tls.send(new Uint8Array(0), 22);
  t.is(tcp.queued.length, 2);
  t.false(tcp.queued[0]!.offloaded);
  t.deepEqual(tcp.queued[0]!.data, sealRecord(backend, ci, 7n, CONTENT_APPLICATION_DATA, a));
  t.deepEqual(tcp.queued[1]!.data, sealRecord(backend, ci, 8n, 22, new Uint8Array(0)));
});

for (const version of [TLS_1_2_VERSION, TLS_1_3_VERSION] as const) {
  test(`tls_encrypt_skb (TLS ${version === TLS_1_2_VERSION ? '1.2' : '1.3'}): any skb cut equals the sealed stream, checksum fixed, placeholder never leaks`, (t) => {
    const { tls, tcp, stack } = setup({ tls13: true, writeSeq: 0xffff_f000 });
    const ci = info(version, TLS_CIPHER_AES_GCM_256);
    tcp.queue(Uint8Array.of(22, 3, 3, 0, 1, 9), false); // handshake bytes before offload
    tls.setCryptoInfo('tx', ci);
    t.is(tls.txMode, 'hw');
    const rng = new Prng(version);
    const pts = [rng.bytes(1), rng.bytes(5000), rng.bytes(16384), rng.bytes(77)];
    for (const p of pts) tls.send(p);
    const wire = concatBytes([Uint8Array.of(22, 3, 3, 0, 1, 9), ...pts.map((p, i) => sealRecord(backend, ci, 7n + BigInt(i), CONTENT_APPLICATION_DATA, p))]);
    const plain = concatBytes(tcp.queued.map((q) => q.data));
    const base = tcp.queued[0]!.seq;
    const view = new TcpSegmentView();
    for (let run = 0; run < 40; run++) {
      const from = rng.int(0, plain.length - 1);
      const to = Math.min(plain.length, from + rng.int(1, 9000));
      const skb: SkBuff = { data: frame(seqAdd(base, from), plain.subarray(from, to)), sk: tls.sk, decrypted: true, gsoSize: 0 };
      const out = stack.tlsEncryptSkb(skb)!;
      t.not(out, null);
      t.is(view.parse(out.data), 'tcp');
      if (!eq(view.payload(), wire.subarray(from, to))) return t.fail(`bytes ${from}..${to} differ from sealRecord output`);
      t.true(view.verifyTcpChecksum());
      t.false(contains(out.data, TAG_PLACEHOLDER));
      t.false(out.decrypted);
    }
    // Acknowledged data: not found, drop.
    tcp.ack(seqAdd(base, 6 + 5000));
    t.is(stack.tlsEncryptSkb({ data: frame(seqAdd(base, 10), plain.subarray(10, 20)), sk: tls.sk, decrypted: true, gsoSize: 0 }), null);
    return undefined;
  });
}

test('validate_xmit: an skb leaving through another device is encrypted in software', (t) => {
  const { tls, tcp } = setup();
  const ci = info();
  tls.setCryptoInfo('tx', ci);
  const p = new Prng(3).bytes(500);
  tls.send(p);
  const q = tcp.queued[0]!;
  const skb: SkBuff = { data: frame(q.seq, q.data), sk: tls.sk, decrypted: true, gsoSize: 0 };
  t.is(tls.validateXmit(skb, tcp.netdev), skb);
  const other = fakeNetdev();
  const out = tls.validateXmit(skb, other)!;
  const v = new TcpSegmentView();
  v.parse(out.data);
  t.deepEqual(v.payload(), sealRecord(backend, ci, 7n, CONTENT_APPLICATION_DATA, p));
});

test('TX next-record resync: pending until the next record, fence + tls_dev_resync(TX, record start, rec_seq); failure stays pending', (t) => {
  let fail = true;
  const { tls, tcp, stack } = setup({ behaviour: { resync: () => (fail ? -ENOSPC : 0) } });
  tls.setCryptoInfo('tx', info());
  tls.send(new Uint8Array(10));
  t.false(stack.tlsOffloadTxResyncPending(tls.sk));
  stack.tlsOffloadTxResyncRequest(tls.sk, 2000, 1000);
  t.true(stack.tlsOffloadTxResyncPending(tls.sk));
  const s1 = tcp.writeSeq;
  tls.send(new Uint8Array(10));
  t.true(stack.tlsOffloadTxResyncPending(tls.sk));
  fail = false;
  const s2 = tcp.writeSeq;
  tls.send(new Uint8Array(10));
  t.false(stack.tlsOffloadTxResyncPending(tls.sk));
  tls.send(new Uint8Array(10));
  const resyncs = stack.callLog.filter((c) => c.op === 'tls_dev_resync').map((c) => [c.dir, c.seq, c.rcdSn, c.result]);
  t.deepEqual(resyncs, [['tx', s1, 8n, -ENOSPC], ['tx', s2, 9n, 0]]);
  t.deepEqual(tcp.fences, [1000, s1, s2]);
});

// ---- RX ----

function rxStream(ci: CryptoInfo, sizes: number[], seed = 11) {
  const s = makeRecordStream(backend, ci, sizes, new Prng(seed));
  return s;
}

/** Pieces of the stream [cuts], decrypted where `dec(i)`: taking bytes from `opened` for those. */
function pieces(s: ReturnType<typeof rxStream>, cuts: number[], dec: (i: number) => boolean) {
  const out: Array<{ data: Uint8Array; decrypted: boolean }> = [];
  let off = 0;
  cuts.forEach((n, i) => {
    const d = dec(i);
    out.push({ data: (d ? s.opened : s.sealed).subarray(off, off + n), decrypted: d });
    off += n;
  });
  if (off !== s.sealed.length) throw new Error('cuts do not cover the stream');
  return out;
}

function cutsOf(total: number, rng: Prng, max = 1500): number[] {
  const c: number[] = [];
  for (let d = 0; d < total; ) {
    const n = Math.min(total - d, rng.int(1, max));
    c.push(n);
    d += n;
  }
  return c;
}

for (const version of [TLS_1_2_VERSION, TLS_1_3_VERSION] as const) {
  for (const kind of ['all decrypted', 'none decrypted', 'mixed'] as const) {
    test(`RX ${version === TLS_1_2_VERSION ? '1.2' : '1.3'} ${kind}: plaintext delivered per record, headers/tags split across chunks`, (t) => {
      for (let seed = 1; seed <= 20; seed++) {
        const { tls, tcp, got, stack } = setup({ tls13: true });
        const ci = info(version, TLS_CIPHER_AES_GCM_128, 7n, seed);
        tls.setCryptoInfo('rx', ci);
        const rng = new Prng(seed * 31);
        const s = rxStream(ci, [rng.int(0, 3000), 16384, rng.int(0, 40), rng.int(1, 5000)], seed);
        const cuts = cutsOf(s.sealed.length, rng);
        const dec = kind === 'all decrypted' ? () => true : kind === 'none decrypted' ? () => false : () => rng.chance(0.5);
        let seq = tcp.copiedSeq;
        // Deliver in a few batches, as TCP would.
        const ps = pieces(s, cuts, dec);
        for (let i = 0; i < ps.length; i += 3) seq = tcp.feed(ps.slice(i, i + 3), seq);
        if (tls.error !== null) return t.fail(`seed ${seed}: error ${tls.error} ${tls.errorDetail?.message}`);
        t.is(got.length, s.records.length);
        for (let i = 0; i < s.records.length; i++) {
          if (!eq(got[i]!.data, s.records[i]!.plaintext)) return t.fail(`seed ${seed}: record ${i} plaintext differs`);
          t.is(got[i]!.type, CONTENT_APPLICATION_DATA);
        }
        t.is(tls.rxRecordSeq, 7n + BigInt(s.records.length));
        t.is(stack.tlsStat.TlsDecryptError, 0);
      }
      return undefined;
    });
  }
}

test('RX record memory shared by a stack\'s sockets: a data callback that makes another socket read keeps its own bytes', (t) => {
  const { tls, tcp, stack } = setup();
  const tcp2 = new FakeTcp(tcp.netdev);
  const tls2 = stack.attach(tcp2);
  const ci = info(TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128, 7n, 1);
  const ci2 = info(TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128, 7n, 2);
  tls.setCryptoInfo('rx', ci);
  tls2.setCryptoInfo('rx', ci2);
  const s1 = rxStream(ci, [5000, 3000], 21);
  const s2 = rxStream(ci2, [4000, 2000], 22);
  const got1: Uint8Array[] = [];
  const got2: Uint8Array[] = [];
  let seq2 = tcp2.copiedSeq;
  let fed = false;
  tls.onData((d) => {
    const before = Uint8Array.from(d);
    if (!fed) {
      fed = true; // the first record read makes the other socket read both of its records
      seq2 = tcp2.feed(pieces(s2, [s2.sealed.length], () => true), seq2);
    }
    t.true(eq(d, before), 'the bytes handed to this callback did not change under it');
    got1.push(before);
  });
  tls2.onData((d) => got2.push(Uint8Array.from(d)));
  tcp.feed(pieces(s1, [s1.sealed.length], () => true), tcp.copiedSeq);
  t.is(tls.error, null);
  t.is(tls2.error, null);
  t.deepEqual(got1, s1.records.map((r) => r.plaintext));
  t.deepEqual(got2, s2.records.map((r) => r.plaintext));
  t.false(stack.rxRecord.busy, 'the record memory is free again');
});

// tls_rx_msg_size() checks the length first (too long: EMSGSIZE, too short: EBADMSG), then the version (EINVAL).
test('RX malformed headers: the socket error tls_rx_msg_size() gives, in its order', (t) => {
  for (const [hdr, errno] of [
    [[23, 3, 1, 0xff, 0xff], EMSGSIZE], // bad version and too long: the length is checked first
    [[23, 3, 1, 0, 5], EBADMSG], // bad version and shorter than the tag and explicit nonce
    [[23, 3, 1, 0, 40], EINVAL], // a plausible length, bad version
    [[23, 3, 3, 0x48, 0x30], EMSGSIZE],
  ] as const) {
    const { tls, tcp, stack } = setup();
    tls.setCryptoInfo('rx', info());
    tcp.feed([{ data: Uint8Array.from([...hdr, ...new Uint8Array(40)]), decrypted: false }], tcp.copiedSeq);
    t.is(tls.error, errno, `${hdr.join(' ')}: ${tls.errorDetail?.message}`);
    t.is(stack.tlsStat.TlsDecryptError, 0);
  }
});

test('RX bad tag: TlsDecryptError, EBADMSG, nothing delivered after; a decrypted record with a bad tag is trusted', (t) => {
  const { tls, tcp, got, stack } = setup();
  const ci = info();
  tls.setCryptoInfo('rx', ci);
  const s = rxStream(ci, [100, 200, 300]);
  const bad = Uint8Array.from(s.sealed);
  const r1 = s.records[1]!;
  bad[r1.offset + r1.sealed.length - 1]! ^= 1;
  tcp.feed([{ data: bad, decrypted: false }], tcp.copiedSeq);
  t.is(got.length, 1);
  t.is(tls.error, EBADMSG);
  t.is(stack.tlsStat.TlsDecryptError, 1);
  tcp.feed([{ data: new Uint8Array(10), decrypted: false }], seqAdd(tcp.copiedSeq, bad.length));
  t.is(got.length, 1);

  // The device authenticated decrypted records: the stack does not look at their tag bytes.
  const b = setup();
  b.tls.setCryptoInfo('rx', ci);
  const opened = Uint8Array.from(s.opened);
  opened[r1.offset + r1.sealed.length - 1]! ^= 1;
  b.tcp.feed([{ data: opened, decrypted: true }], b.tcp.copiedSeq);
  t.is(b.got.length, 3);
  t.is(b.tls.error, null);
});

test('RX mixed record with a flipped ciphertext bit fails authentication (reencrypt then SW check)', (t) => {
  const { tls, tcp, stack } = setup();
  const ci = info();
  tls.setCryptoInfo('rx', ci);
  const s = rxStream(ci, [1000]);
  const enc = Uint8Array.from(s.sealed);
  enc[900]! ^= 0x40;
  tcp.feed([{ data: s.opened.subarray(0, 500), decrypted: true }, { data: enc.subarray(500), decrypted: false }], tcp.copiedSeq);
  t.is(tls.error, EBADMSG);
  t.is(stack.tlsStat.TlsDecryptError, 1);
});

test('RX TLS 1.3 padded records: inner type and zero padding stripped, decrypted or not; all-zero inner is EBADMSG, not a decrypt error', (t) => {
  const ci = info(TLS_1_3_VERSION);
  const pt = new Prng(4).bytes(300);
  const inner = new Uint8Array(300 + 1 + 50);
  inner.set(pt);
  inner[300] = CONTENT_ALERT;
  const seal = (rs: bigint, body: Uint8Array) => {
    const len = body.length + 16;
    const hdr = Uint8Array.of(23, 3, 3, len >> 8, len & 0xff);
    const nonce = Uint8Array.from([...ci.salt, ...ci.iv]);
    const seq = bigIntToRecSeq(rs);
    for (let i = 0; i < 8; i++) nonce[4 + i]! ^= seq[i]!;
    return concatBytes([hdr, backend.seal('aes-gcm-128', ci.key, nonce, hdr, body)]);
  };
  for (const decrypted of [false, true]) {
    const { tls, tcp, got, stack } = setup({ tls13: true });
    tls.setCryptoInfo('rx', ci);
    const rec = seal(7n, inner);
    const wire = decrypted ? concatBytes([rec.subarray(0, 5), inner, rec.subarray(rec.length - 16)]) : rec;
    tcp.feed([{ data: wire, decrypted }], tcp.copiedSeq);
    t.is(got.length, 1);
    t.deepEqual(got[0]!.data, pt);
    t.is(got[0]!.type, CONTENT_ALERT);
    // Padding alone, no content type: EBADMSG from tls_padding_length(), which tls_decrypt_sw() does not count
    // as a decrypt error (the tag authenticated), in software or decrypted by the device.
    const zeros = new Uint8Array(20);
    const zero = seal(8n, zeros);
    const zeroWire = decrypted ? concatBytes([zero.subarray(0, 5), zeros, zero.subarray(zero.length - 16)]) : zero;
    tcp.feed([{ data: zeroWire, decrypted }], seqAdd(tcp.copiedSeq, wire.length));
    t.is(tls.error, EBADMSG);
    t.regex(tls.errorDetail!.message, /record 8 holds padding alone: no content type/);
    t.is(stack.tlsStat.TlsDecryptError, 0);
  }
});

test('a driver whose tls_dev_del throws is logged, not fatal; kernelHelpers binds every helper', (t) => {
  const { tls, stack, netdev } = setup();
  (netdev.tlsdevOps as TlsDevOps).tlsDevDel = () => {
    throw new Error('boom');
  };
  tls.setCryptoInfo('rx', info());
  tls.close();
  const del = stack.callLog.at(-1)!;
  t.is(del.op, 'tls_dev_del');
  t.regex(del.threw!, /boom/);
  const h = stack.kernelHelpers(() => {});
  t.is(Object.keys(h).length, 10);
  t.false(h.tlsOffloadTxResyncPending(tls.sk));
});

test('RX malformed header: socket error with the record seq, no crash', (t) => {
  const { tls, tcp, got } = setup();
  tls.setCryptoInfo('rx', info());
  tcp.feed([{ data: Uint8Array.of(23, 3, 1, 0, 40, ...new Uint8Array(40)), decrypted: false }], tcp.copiedSeq);
  t.not(tls.error, null);
  t.regex(tls.errorDetail!.message, /version 3\.1.*record at seq 5000/);
  t.is(got.length, 0);
});

// ---- RX resync ----

/** A scripted RX flow: records of the given sizes, fed one record per call, all encrypted. */
function rxFlow(type: 'driver_req' | 'driver_req_async' | 'core_next_hint', sizes: number[]) {
  const env = setup({ behaviour: { onAdd: (sk, dir) => { if (dir === 'rx') env.stack.tlsOffloadRxResyncSetType(sk, type); } } });
  const ci = info();
  env.tls.setCryptoInfo('rx', ci);
  const s = rxStream(ci, sizes);
  const base = env.tcp.copiedSeq;
  let seq = base;
  const feedRecord = (i: number, decrypted = false) => {
    const r = s.records[i]!;
    seq = env.tcp.feed([{ data: (decrypted ? s.opened : s.sealed).subarray(r.offset, r.offset + r.sealed.length), decrypted }], seq);
  };
  const startOf = (i: number) => seqAdd(base, s.records[i]!.offset);
  const resyncs = () => env.stack.callLog.filter((c) => c.op === 'tls_dev_resync').map((c) => [c.dir, c.seq, c.rcdSn]);
  return { ...env, s, feedRecord, startOf, resyncs };
}

// tls_device_rx_resync_new_rec(): `seq += TLS_HEADER_SIZE - 1`, compared with the request, then passed to
// tls_device_resync_rx(): the driver gets back the seq it asked about, the header's last byte.
test('RX resync DRIVER_REQ: answered when the header whose last byte is at the requested seq is parsed, with that seq', (t) => {
  const f = rxFlow('driver_req', [100, 100, 100, 100]);
  f.feedRecord(0);
  f.stack.tlsOffloadRxResyncRequest(f.tls.sk, f.startOf(2)); // wrong guess: record start, not header end
  f.feedRecord(1);
  f.feedRecord(2);
  t.deepEqual(f.resyncs(), []);
  f.stack.tlsOffloadRxResyncRequest(f.tls.sk, seqAdd(f.startOf(3), 4));
  f.feedRecord(3);
  t.deepEqual(f.resyncs(), [['rx', seqAdd(f.startOf(3), 4), 10n]]);
  t.is(f.stack.tlsStat.TlsRxDeviceResync, 1);
});

test('RX resync DRIVER_REQ_ASYNC: end arriving after more headers were logged resyncs with the matched record number', (t) => {
  const f = rxFlow('driver_req_async', [100, 100, 100, 100, 100, 100]);
  f.feedRecord(0);
  f.stack.tlsOffloadRxResyncAsyncRequestStart(f.tls.sk, f.startOf(1), 300);
  f.feedRecord(1); // logged i=0
  f.feedRecord(2); // logged i=1
  f.feedRecord(3); // logged i=2
  f.stack.tlsOffloadRxResyncAsyncRequestEnd(f.tls.sk, f.startOf(2));
  t.deepEqual(f.resyncs(), []); // checked when the next header is parsed
  f.feedRecord(4);
  t.deepEqual(f.resyncs(), [['rx', f.startOf(2), 9n]]);
  f.feedRecord(5);
  t.is(f.resyncs().length, 1);
  // Cancel: nothing happens.
  f.stack.tlsOffloadRxResyncAsyncRequestStart(f.tls.sk, f.startOf(5), 10);
  f.stack.tlsOffloadRxResyncAsyncRequestCancel(f.tls.sk);
  t.is(f.stack.tlsStat.TlsRxDeviceResync, 1);
});

test('RX resync DRIVER_REQ_ASYNC: log holds 13 headers; an unlogged seq matches a later header directly', (t) => {
  const f = rxFlow('driver_req_async', Array.from({ length: 20 }, () => 50));
  f.stack.tlsOffloadRxResyncAsyncRequestStart(f.tls.sk, f.startOf(0), 0xffff);
  for (let i = 0; i < 15; i++) f.feedRecord(i); // 13 logged, 15 counted
  f.stack.tlsOffloadRxResyncAsyncRequestEnd(f.tls.sk, f.startOf(12));
  f.feedRecord(15);
  t.deepEqual(f.resyncs(), [['rx', f.startOf(12), 7n + 12n]]);
  f.stack.tlsOffloadRxResyncAsyncRequestStart(f.tls.sk, f.startOf(16), 0xffff);
  f.stack.tlsOffloadRxResyncAsyncRequestEnd(f.tls.sk, f.startOf(18)); // no log: matched when 18 is parsed
  f.feedRecord(16);
  f.feedRecord(17);
  t.is(f.resyncs().length, 1);
  f.feedRecord(18);
  t.deepEqual(f.resyncs()[1], ['rx', f.startOf(18), 7n + 18n]);
});

// tls_offload_rx_resync_async_request_end() only sets the request word: mlx5 posts a GET_PSV per resync CQE, so a
// second answer comes after the first was matched (or cancelled) and arms a new sync stage; no violation.
test('RX resync DRIVER_REQ_ASYNC: an _end with no request open (matched, or cancelled) arms a new one, as the kernel does', (t) => {
  const f = rxFlow('driver_req_async', Array.from({ length: 10 }, () => 100));
  f.stack.tlsOffloadRxResyncAsyncRequestStart(f.tls.sk, f.startOf(0), 300);
  f.feedRecord(0);
  f.feedRecord(1);
  f.stack.tlsOffloadRxResyncAsyncRequestEnd(f.tls.sk, f.startOf(1));
  f.feedRecord(2);
  t.deepEqual(f.resyncs(), [['rx', f.startOf(1), 8n]]);
  // A second GET_PSV's answer, the request already matched: the header at that seq resyncs when parsed.
  f.stack.tlsOffloadRxResyncAsyncRequestEnd(f.tls.sk, f.startOf(4));
  f.feedRecord(3);
  t.is(f.resyncs().length, 1);
  f.feedRecord(4);
  t.deepEqual(f.resyncs()[1], ['rx', f.startOf(4), 11n]);
  // After a cancel (the first GET_PSV failed), the other one's answer still counts.
  f.stack.tlsOffloadRxResyncAsyncRequestStart(f.tls.sk, f.startOf(5), 300);
  f.stack.tlsOffloadRxResyncAsyncRequestCancel(f.tls.sk);
  f.stack.tlsOffloadRxResyncAsyncRequestEnd(f.tls.sk, f.startOf(6));
  f.feedRecord(5);
  f.feedRecord(6);
  t.deepEqual(f.resyncs()[2], ['rx', f.startOf(6), 13n]);
  t.is(f.stack.violations.length, 0);
  t.is(f.stack.tlsStat.TlsRxDeviceResync, 3);
});

test('RX resync CORE_NEXT_HINT: backoff 2, 4, 8 .. 128 then +128 encrypted records; decrypted records reset it', (t) => {
  const n = 700;
  const f = rxFlow('core_next_hint', Array.from({ length: n }, () => 1));
  const at: number[] = [];
  for (let i = 0; i < n; i++) {
    const before = f.resyncs().length;
    f.feedRecord(i);
    if (f.resyncs().length > before) {
      at.push(i);
      t.deepEqual(f.resyncs().at(-1), ['rx', f.startOf(i + 1) ?? 0, 7n + BigInt(i) + 1n]);
    }
  }
  // Encrypted record k (1-based) triggers when k > target: 3, 5, 9, 17, 33, 65, 129, 257, 385, 513, 641.
  t.deepEqual(at.map((i) => i + 1), [3, 5, 9, 17, 33, 65, 129, 257, 385, 513, 641]);

  const g = rxFlow('core_next_hint', Array.from({ length: 12 }, () => 1));
  for (let i = 0; i < 4; i++) g.feedRecord(i); // resync at record 3
  g.feedRecord(4, true); // decrypted: reset
  for (let i = 5; i < 12; i++) g.feedRecord(i); // encrypted 1, 2, 3 -> resync at the 3rd (record 7), then 5th (record 9)
  t.deepEqual(g.resyncs().map((r) => r[2]), [7n + 3n, 7n + 8n, 7n + 10n]);
});

test('RX resync CORE_NEXT_HINT: waits until the socket drained to the current record', (t) => {
  const f = rxFlow('core_next_hint', [30, 30, 30, 30, 30, 30]);
  f.feedRecord(0);
  f.feedRecord(1);
  // Records 2, 3, 4 arrive together: the resync due at record 2 is deferred (nh_do_now) until a header is
  // parsed with nothing queued past its record: record 4's.
  const r = f.s.records;
  const seq = f.tcp.feed([{ data: f.s.sealed.subarray(r[2]!.offset, r[5]!.offset), decrypted: false }], f.startOf(2));
  t.deepEqual(f.resyncs(), [['rx', f.startOf(5), 12n]]);
  // Record 3 was not counted while the resync was scheduled; record 4 counts 4 (<= 4), record 5 is the
  // 5th encrypted one: target 4 passed, nothing queued past it, so it resyncs at once.
  f.tcp.feed([{ data: f.s.sealed.subarray(r[5]!.offset), decrypted: false }], seq);
  t.deepEqual(f.resyncs()[1], ['rx', seqAdd(f.startOf(5), r[5]!.sealed.length), 13n]);
  t.is(f.resyncs().length, 2);
});

// ---- device down, close ----

test('device down: tls_dev_del once per direction, TX through the fallback, RX degraded (mixed ok), no resync after', (t) => {
  const f = rxFlow('driver_req', [100, 100, 100, 100]);
  const ci = info(TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_256, 3n);
  f.tls.setCryptoInfo('tx', ci);
  f.feedRecord(0, true);
  f.stack.tlsOffloadRxResyncRequest(f.tls.sk, seqAdd(f.startOf(2), 4));
  f.stack.netdevDown(f.netdev);
  f.stack.netdevDown(f.netdev);
  t.deepEqual(f.netdev.dels, ['tx', 'rx']);
  t.is(f.tls.tlsCtx.netdev, null);
  // RX: a record half decrypted (the device was mid-record) and the rest encrypted still reads right.
  const r1 = f.s.records[1]!;
  f.tcp.feed([
    { data: f.s.opened.subarray(r1.offset, r1.offset + 60), decrypted: true },
    { data: f.s.sealed.subarray(r1.offset + 60, f.s.records[3]!.offset + 100 + 29), decrypted: false },
  ], f.startOf(1));
  t.is(f.got.length, 4);
  t.is(f.tls.error, null);
  t.deepEqual(f.resyncs(), []);
  // TX: records still framed for the device, and the xmit hook encrypts them in software.
  const p = new Prng(1).bytes(64);
  f.tls.send(p);
  const q = f.tcp.queued.at(-1)!;
  t.true(q.offloaded);
  const out = f.tls.validateXmit({ data: frame(q.seq, q.data), sk: f.tls.sk, decrypted: true, gsoSize: 0 }, f.netdev)!;
  const v = new TcpSegmentView();
  v.parse(out.data);
  t.deepEqual(v.payload(), sealRecord(backend, ci, 3n, CONTENT_APPLICATION_DATA, p));
  // TX resync after down: cleared without calling the driver.
  f.stack.tlsOffloadTxResyncRequest(f.tls.sk, 1, 2);
  f.tls.send(p);
  t.false(f.stack.tlsOffloadTxResyncPending(f.tls.sk));
  f.tls.close();
  t.deepEqual(f.netdev.dels, ['tx', 'rx']);
  t.is(f.stack.callLog.filter((c) => c.op === 'tls_dev_resync').length, 0);
  t.is(f.stack.tlsStat.TlsCurrTxDevice, 0);
  t.is(f.stack.tlsStat.TlsCurrRxDevice, 0);
});

test('close: tls_dev_del once per added direction (RX then TX), none for a SW direction', (t) => {
  const { tls, netdev, tcp, stack } = setup({ behaviour: { add: (d) => (d === 'tx' ? -ENOSPC : 0) } });
  tls.setCryptoInfo('tx', info());
  tls.setCryptoInfo('rx', info());
  tls.close();
  tls.close();
  t.deepEqual(netdev.dels, ['rx']);
  t.true(tcp.closed);
  t.deepEqual(
    { ...stack.tlsStat },
    { ...stack.tlsStat, TlsCurrTxSw: 0, TlsCurrRxDevice: 0, TlsTxSw: 1, TlsRxDevice: 1 },
  );
});

// tls_device_rx_resync_async(): after USHRT_MAX records in the async stage the request is cancelled ("net: tls:
// Cancel RX async resync request on rcd_delta overflow"): an _end that comes later finds nothing to match.
test('RX resync DRIVER_REQ_ASYNC: a window open for USHRT_MAX records is cancelled; a late _end resyncs nothing', (t) => {
  const r = new RxResync();
  r.type = 'driver_req_async';
  r.asyncStart(1000, 200);
  let seq = 1000;
  for (let i = 0; i < 0xffff; i++, seq += 100) t.is(r.newRecord(100, seq, BigInt(i), 100), null);
  t.is(r.async.stage, 'async');
  t.is(r.newRecord(100, seq, 0xffffn, 100), null); // the overflow: cancelled
  t.is(r.async.stage, 'idle');
  r.asyncEnd(1000); // a header the window had logged
  t.is(r.newRecord(100, seq + 100, 0x10000n, 100), null);
  // Below the limit the same _end matches its logged header.
  const ok = new RxResync();
  ok.type = 'driver_req_async';
  ok.asyncStart(1000, 200);
  for (let i = 0, q = 1000; i < 5; i++, q += 100) ok.newRecord(100, q, BigInt(i), 100);
  ok.asyncEnd(1000);
  t.deepEqual(ok.newRecord(100, 1500, 5n, 100), { seq: 1000, rcdSn: 0n });
});

test('/proc/net/tls_stat text in tls_proc.c layout', (t) => {
  const { tls, stack } = setup();
  tls.setCryptoInfo('tx', info());
  tls.setCryptoInfo('rx', info(TLS_1_2_VERSION, TLS_CIPHER_CHACHA20_POLY1305));
  const text = stack.formatTlsStat();
  t.is(text, formatTlsStat(stack.tlsStat));
  t.is(text, [
    'TlsCurrTxSw                     \t0',
    'TlsCurrRxSw                     \t1',
    'TlsCurrTxDevice                 \t1',
    'TlsCurrRxDevice                 \t0',
    'TlsTxSw                         \t0',
    'TlsRxSw                         \t1',
    'TlsTxDevice                     \t1',
    'TlsRxDevice                     \t0',
    'TlsDecryptError                 \t0',
    'TlsRxDeviceResync               \t0',
    'TlsDecryptRetry                 \t0',
    'TlsRxNoPadViolation             \t0',
    'TlsRxRekeyOk                    \t0',
    'TlsRxRekeyError                 \t0',
    'TlsTxRekeyOk                    \t0',
    'TlsTxRekeyError                 \t0',
    'TlsRxRekeyReceived              \t0',
    '',
  ].join('\n'));
  t.deepEqual(Object.keys(stack.tlsStat).length, 17);
});

test('before TLS_RX the stream passes through untouched; recSeq helpers agree', (t) => {
  const { tcp, got } = setup();
  tcp.feed([{ data: Uint8Array.of(22, 3, 3, 0, 0), decrypted: false }], 5000);
  t.is(got.length, 1);
  t.is(got[0]!.type, undefined);
  t.is(recSeqToBigInt(bigIntToRecSeq(0x0102030405060708n)), 0x0102030405060708n);
});

export type { TlsSocket };
