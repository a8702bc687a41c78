// Issue 3: TX out of order through the real stack model, a reference driver and the emulated NIC.
// mlx5 rebuilds the crypto state (tls_get_record + resync params + DUMP, mlx5e_ktls_tx_handle_ooo);
// nfp falls back to software for the segment (tls_encrypt_skb) and syncs the device on the next record
// (tls_offload_tx_resync_request -> tls_device_resync_tx -> tls_dev_resync(TX), nfp_net_tls_tx).
// Every test compares each wire segment with software TLS of the same records at the same seq (built here
// with sealRecord, independently of the stack) and asserts the ethtool counters and driver calls.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { nodeBackend } from '../emulator/crypto/index.ts';
import { Nic } from '../emulator/nic/nic.ts';
import type { EthtoolCounters } from '../emulator/nic/counters.ts';
import { TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_256, recSeqToBigInt, type CryptoInfo } from '../emulator/tls/crypto-info.ts';
import { sealRecord } from '../emulator/tls/record-crypto.ts';
import { CONTENT_APPLICATION_DATA } from '../emulator/tls/record.ts';
import { TcpSegmentView } from '../emulator/wire/packet.ts';
import { seqAdd, seqDiff } from '../emulator/wire/seq.ts';
import { concatBytes } from '../emulator/bytes.ts';
import { mlx5Driver, nfpDriver, type DriverModule } from '../driver-api/drivers/index.ts';
import type { NetDevice, SkBuff } from '../driver-api/ops.ts';
import { TAG_PLACEHOLDER, TlsStack, type TlsSocket } from '../driver-api/stack/index.ts';
import { ReplaySock } from '../cli/replay/replay-sock.ts';
import { TUPLE, txFrame } from './helpers/nic-bench.ts';
import { Prng } from './helpers/prng.ts';
import { randomInfo } from './helpers/records.ts';

const backend = nodeBackend;
const TLS_OVERHEAD = 29; // TLS 1.2 GCM: header 5 + explicit nonce 8 + tag 16

/** ReplaySock that also remembers where the stack put an end-of-record fence (skbs never cross one). */
class FencedSock extends ReplaySock {
  readonly fenceSeqs: number[] = [];
  override fence(): void {
    super.fence();
    this.fenceSeqs.push(this.writeSeq >>> 0);
  }
}

type Frame = { seq: number; payload: Uint8Array; checksumOk: boolean };

/** One connection: NIC + driver probed with a real TlsStack's helpers + a socket with TLS TX offloaded. */
class Bench {
  readonly nic: Nic;
  readonly stack = new TlsStack({ backend });
  readonly netdev: NetDevice;
  readonly sock: FencedSock;
  readonly tls: TlsSocket;
  readonly info: CryptoInfo;
  readonly isn: number;
  /** Stream offset where offload starts (bytes before it are the handshake, sent as plain TCP). */
  readonly startOff: number;
  readonly firstRecSn: bigint;
  /** What software TLS puts on the wire for the whole stream (handshake, then sealed records). */
  private parts: Uint8Array[] = [];
  private expectCache: Uint8Array | null = null;
  /** Record starts (stream offsets) and numbers, in order. */
  readonly records: Array<{ off: number; len: number; rcdSn: bigint }> = [];
  readonly wire: Frame[] = [];
  readonly swFallback = { calls: 0, bytes: 0 };
  readonly rng: Prng;
  private readonly view = new TcpSegmentView();
  private nextRecSn: bigint;

  constructor(readonly driver: DriverModule, opts: { tso: boolean; seed: number; handshake?: number; hsSeg?: number; isn?: number; cipher256?: boolean }) {
    const rng = new Prng(opts.seed);
    this.nic = new Nic({ backend, profile: { tso: opts.tso } });
    const kernel = this.stack.kernelHelpers(() => {});
    // Count what the driver hands to the software fallback (tls_encrypt_skb) and the payload bytes in it.
    const encryptSkb = kernel.tlsEncryptSkb;
    kernel.tlsEncryptSkb = (skb) => {
      this.swFallback.calls++;
      if (this.view.parse(skb.data) === 'tcp') this.swFallback.bytes += this.view.payloadLength;
      return encryptSkb(skb);
    };
    this.netdev = driver.probe(this.nic, kernel, {});
    this.nic.attachWire((f) => {
      const v = this.view;
      if (v.parse(f) !== 'tcp') throw new Error('non-TCP frame on the wire');
      this.wire.push({ seq: v.seq, payload: v.payload().slice(), checksumOk: v.verifyTcpChecksum() });
    });
    this.isn = (opts.isn ?? rng.u32()) >>> 0;
    this.sock = new FencedSock(TUPLE, this.netdev);
    this.sock.writeSeq = this.isn;
    this.sock.sndUna = this.isn;
    this.tls = this.stack.attach(this.sock);
    const hello = rng.bytes(opts.handshake ?? 700);
    if (hello.length) {
      this.tls.send(hello);
      this.parts.push(hello);
    }
    this.startOff = hello.length;
    this.rng = rng;
    // The handshake goes out as plain TCP before TLS_TX is set (no offload state exists yet).
    this.xmitRange(0, hello.length, opts.hsSeg ?? 1000);
    this.info = randomInfo({ version: TLS_1_2_VERSION, cipherType: opts.cipher256 ? TLS_CIPHER_AES_GCM_256 : TLS_CIPHER_AES_GCM_128, label: '' }, rng, BigInt(rng.int(0, 1 << 20)));
    this.firstRecSn = recSeqToBigInt(this.info.recSeq);
    this.nextRecSn = this.firstRecSn;
    this.tls.setCryptoInfo('tx', this.info);
  }

  get mode(): string | null {
    return this.tls.txMode;
  }

  /** Stream offset of the next byte the stack will queue. */
  get writeOff(): number {
    return seqDiff(this.sock.writeSeq, this.isn);
  }

  /** sendmsg() of one record's worth of plaintext; the expected wire bytes are sealed here, independently. */
  send(plaintext: Uint8Array): void {
    if (plaintext.length > 16384) throw new Error('one record per send in these tests');
    const off = this.writeOff;
    this.tls.send(plaintext);
    const sealed = sealRecord(backend, this.info, this.nextRecSn, CONTENT_APPLICATION_DATA, plaintext);
    this.records.push({ off, len: sealed.length, rcdSn: this.nextRecSn });
    this.nextRecSn++;
    this.parts.push(sealed);
    this.expectCache = null;
    if (this.writeOff !== off + sealed.length) throw new Error('stack framed a record of an unexpected length');
  }

  sendSizes(sizes: readonly number[]): void {
    for (const n of sizes) this.send(this.rng.bytes(n));
  }

  get expect(): Uint8Array {
    return (this.expectCache ??= concatBytes(this.parts));
  }

  seqAt(off: number): number {
    return seqAdd(this.isn, off);
  }

  /** The skb TCP would hand dev_queue_xmit for stream bytes [off, off+len) (its offload mark included). */
  skb(off: number, len: number, gsoSize = 0): SkBuff {
    const q = this.sock.queued(this.seqAt(off), len);
    if (!q) throw new Error(`bytes ${off}+${len} not queued or of mixed offload marks`);
    return { data: txFrame(this.seqAt(off), q.data), sk: this.tls.sk, decrypted: q.offloaded, gsoSize };
  }

  /** dev_queue_xmit: validate_xmit_skb (the ULP's sk_validate_xmit_skb) first, then ndo_start_xmit. */
  xmitSkb(skb: SkBuff): void {
    const s = this.sock.validateXmit(skb);
    if (s) this.netdev.startXmit(s);
  }

  xmit(off: number, len: number, gsoSize = 0): void {
    this.xmitSkb(this.skb(off, len, gsoSize));
  }

  /** Transmit [from, to) cut into `seg`-byte segments (never across a fence: a new skb starts there). */
  xmitRange(from: number, to: number, seg: number, gsoSize = 0): void {
    const fences = this.fenceOffs();
    let off = from;
    while (off < to) {
      let end = Math.min(to, off + seg);
      for (const f of fences) if (f > off && f < end) end = f;
      this.xmit(off, end - off, gsoSize);
      off = end;
    }
  }

  fenceOffs(): number[] {
    return this.sock.fenceSeqs.map((s) => seqDiff(s, this.isn));
  }

  ack(off: number): void {
    this.sock.ack(this.seqAt(off));
  }

  wireFrom(i: number): Frame[] {
    return this.wire.slice(i);
  }

  /** Every wire frame: checksum right, payload equal to software TLS at its seq, no tag placeholder. */
  checkWire(t: ExecutionContext, frames: readonly Frame[] = this.wire): boolean {
    const exp = this.expect;
    for (const [i, f] of frames.entries()) {
      if (!f.checksumOk) {
        t.fail(`frame ${i} (seq ${f.seq}): bad TCP checksum`);
        return false;
      }
      const off = seqDiff(f.seq, this.isn);
      if (off < 0 || off + f.payload.length > exp.length) {
        t.fail(`frame ${i}: stream offset ${off}+${f.payload.length} outside the stream`);
        return false;
      }
      for (let j = 0; j < f.payload.length; j++) {
        if (f.payload[j] !== exp[off + j]) {
          t.fail(`frame ${i}: wire byte at stream offset ${off + j} is ${f.payload[j]}, software TLS has ${exp[off + j]}`);
          return false;
        }
      }
      if (hasPlaceholder(f.payload)) {
        t.fail(`frame ${i}: tag placeholder on the wire`);
        return false;
      }
    }
    return true;
  }

  /** [offset, length] of each frame, relative to the stream start. */
  layout(frames: readonly Frame[]): Array<[number, number]> {
    return frames.map((f) => [seqDiff(f.seq, this.isn), f.payload.length]);
  }

  counters(): Partial<EthtoolCounters> {
    return txCounters(this.nic.counters);
  }

  txResyncs() {
    return this.stack.callLog.filter((c) => c.op === 'tls_dev_resync');
  }
}

function hasPlaceholder(p: Uint8Array): boolean {
  outer: for (let j = 0; j + 16 <= p.length; j++) {
    for (let k = 0; k < 16; k++) if (p[j + k] !== TAG_PLACEHOLDER[k]) continue outer;
    return true;
  }
  return false;
}

const TX_COUNTERS = [
  'tx_tls_encrypted_packets', 'tx_tls_encrypted_bytes', 'tx_tls_ooo', 'tx_tls_dump_packets', 'tx_tls_dump_bytes',
  'tx_tls_resync_bytes', 'tx_tls_skip_no_sync_data', 'tx_tls_drop_no_sync_data', 'tx_tls_drop_bypass_req',
] as const;

function txCounters(c: EthtoolCounters): Partial<EthtoolCounters> {
  const out: Partial<EthtoolCounters> = {};
  for (const k of TX_COUNTERS) out[k] = c[k];
  return out;
}

/** Counters with every TX one zero except those given. */
function expectCounters(c: Partial<EthtoolCounters>): Partial<EthtoolCounters> {
  const out: Partial<EthtoolCounters> = {};
  for (const k of TX_COUNTERS) out[k] = c[k] ?? 0;
  return out;
}

const REC = 3000; // plaintext per record in the directed tests: 3029 bytes on the wire
const R = REC + TLS_OVERHEAD;
const HS = 700; // handshake bytes before offload

/** Records 0..n-1 laid out after the handshake: record i spans [HS + i*R, HS + (i+1)*R). */
const recOff = (i: number) => HS + i * R;

// ---- 1. retransmit in the middle of a record ----

test('mlx5: retransmit mid-record -> DUMP of the record prefix (not on the wire), right ciphertext, new segments continue', (t) => {
  const b = new Bench(mlx5Driver, { tso: false, seed: 1 });
  t.is(b.mode, 'hw');
  b.sendSizes([REC, REC, REC]);
  b.xmitRange(HS, recOff(3), 1000);
  const before = b.wire.length;
  t.deepEqual(b.counters(), expectCounters({ tx_tls_encrypted_packets: 10, tx_tls_encrypted_bytes: 3 * R }));
  // Retransmit 1000 bytes starting 2000 bytes into record 1: 2000 - 0 bytes of prefix to dump (chunks of 1500).
  const rtx = recOff(1) + 2000;
  b.xmit(rtx, 1000);
  t.deepEqual(b.layout(b.wireFrom(before)), [[rtx, 1000]], 'only the retransmitted segment leaves: the DUMP is not sent');
  t.deepEqual(b.counters(), expectCounters({
    tx_tls_encrypted_packets: 11, tx_tls_encrypted_bytes: 3 * R + 1000, tx_tls_ooo: 1,
    tx_tls_dump_packets: 2, tx_tls_dump_bytes: 2000,
  }));
  // New records: the driver expects rtx+1000 so the first new segment is out of order again, but at a record
  // start: resync params only, no DUMP.
  b.sendSizes([REC, REC]);
  b.xmitRange(recOff(3), recOff(5), 1000);
  t.deepEqual(b.counters(), expectCounters({
    tx_tls_encrypted_packets: 11 + 7, tx_tls_encrypted_bytes: 5 * R + 1000, tx_tls_ooo: 2,
    tx_tls_dump_packets: 2, tx_tls_dump_bytes: 2000,
  }));
  t.true(b.checkWire(t));
  t.is(b.wire.length, 1 + 10 + 1 + 7);
  t.is(b.txResyncs().length, 0, 'mlx5 never asks the stack for a TX resync');
  t.is(b.nic.stats.txViolations, 0);
});

test('mlx5: retransmit mid-record then continue the same record -> only the retransmit and the jump are out of order', (t) => {
  const b = new Bench(mlx5Driver, { tso: false, seed: 2, handshake: 0 });
  b.sendSizes([REC, REC]);
  b.xmitRange(0, 4000, 1000); // record 0 and 971 bytes of record 1
  b.xmit(1000, 1000); // retransmit inside record 0
  b.xmitRange(4000, 2 * R, 1000); // the rest: first one is out of order (expected 2000), 971 bytes into record 1
  t.deepEqual(b.counters(), expectCounters({
    tx_tls_encrypted_packets: 4 + 1 + 3, tx_tls_encrypted_bytes: 2 * R + 1000, tx_tls_ooo: 2,
    tx_tls_dump_packets: 1 + 1, tx_tls_dump_bytes: 1000 + (4000 - R),
  }));
  t.true(b.checkWire(t));
});

test('nfp: retransmit mid-record -> tls_encrypt_skb in software, right ciphertext, no resync (behind), HW continues', (t) => {
  const b = new Bench(nfpDriver, { tso: false, seed: 3 });
  b.sendSizes([REC, REC, REC]);
  b.xmitRange(HS, recOff(3), 1000);
  const rtx = recOff(1) + 2000;
  b.xmit(rtx, 1000);
  t.deepEqual(b.counters(), expectCounters({ tx_tls_encrypted_packets: 10, tx_tls_encrypted_bytes: 3 * R, tx_tls_ooo: 1 }));
  t.false(b.stack.tlsOffloadTxResyncPending(b.tls.sk), 'a retransmit (seq behind) asks for no resync');
  b.sendSizes([REC, REC]);
  b.xmitRange(recOff(3), recOff(5), 1000);
  t.deepEqual(b.counters(), expectCounters({ tx_tls_encrypted_packets: 17, tx_tls_encrypted_bytes: 5 * R, tx_tls_ooo: 1 }));
  t.is(b.txResyncs().length, 0);
  t.is(b.wire.length, 1 + 10 + 1 + 7);
  t.true(b.checkWire(t));
});

test('nfp: local drop -> the device is ahead: software for the rest of the record, tls_dev_resync(TX) at the next record start', (t) => {
  const b = new Bench(nfpDriver, { tso: false, seed: 4 });
  b.sendSizes([REC, REC]);
  // Segments of 1000 from HS; the one at recOff(0)+1000 is lost in the qdisc (never reaches the driver).
  const lost = recOff(0) + 1000;
  b.xmitRange(HS, lost, 1000);
  b.xmitRange(lost + 1000, recOff(2), 1000);
  // First segment after the hole: ahead -> software + resync request; the rest: resync pending -> software.
  t.true(b.stack.tlsOffloadTxResyncPending(b.tls.sk));
  t.deepEqual(b.counters(), expectCounters({ tx_tls_encrypted_packets: 1, tx_tls_encrypted_bytes: 1000, tx_tls_ooo: 5 }));
  t.deepEqual(b.txResyncs(), [], 'no resync before the next record is pushed');
  // Next record: the stack fences and calls tls_dev_resync(TX, record start, its number).
  b.sendSizes([REC]);
  const rs = b.txResyncs();
  t.is(rs.length, 1);
  t.like(rs[0], { dir: 'tx', seq: b.seqAt(recOff(2)), rcdSn: b.firstRecSn + 2n, result: 0 });
  t.false(b.stack.tlsOffloadTxResyncPending(b.tls.sk));
  t.true(b.fenceOffs().includes(recOff(2)), 'tls_device_resync_tx marks end of record before the synced record');
  // Retransmit of the lost segment: behind the synced point -> software, no new request.
  b.xmit(lost, 1000);
  b.xmitRange(recOff(2), recOff(3), 1000);
  t.deepEqual(b.counters(), expectCounters({ tx_tls_encrypted_packets: 1 + 4, tx_tls_encrypted_bytes: 1000 + R, tx_tls_ooo: 6 }));
  t.is(b.txResyncs().length, 1);
  t.true(b.checkWire(t));
  // Every stream byte reached the wire exactly as software TLS has it.
  t.is(b.wire.reduce((n, f) => n + f.payload.length, 0), recOff(3));
});

// ---- 2. record boundary, spanning two records, TSO ----

test('mlx5: retransmit starting exactly at a record start -> resync params, no DUMP', (t) => {
  const b = new Bench(mlx5Driver, { tso: false, seed: 5 });
  b.sendSizes([REC, REC, REC]);
  b.xmitRange(HS, recOff(3), 1000);
  b.xmit(recOff(1), 1000);
  t.deepEqual(b.counters(), expectCounters({ tx_tls_encrypted_packets: 11, tx_tls_encrypted_bytes: 3 * R + 1000, tx_tls_ooo: 1 }));
  t.deepEqual(b.layout(b.wire.slice(-1)), [[recOff(1), 1000]]);
  t.true(b.checkWire(t));
});

test('mlx5: retransmit spanning two records -> DUMP of the first record\'s prefix, the device crosses the boundary', (t) => {
  const b = new Bench(mlx5Driver, { tso: false, seed: 6 });
  b.sendSizes([REC, REC, REC]);
  b.xmitRange(HS, recOff(3), 1000);
  const rtx = recOff(1) + R - 500; // 500 bytes of record 1's tail, 1000 of record 2's head
  b.xmit(rtx, 1500);
  t.deepEqual(b.counters(), expectCounters({
    tx_tls_encrypted_packets: 11, tx_tls_encrypted_bytes: 3 * R + 1500, tx_tls_ooo: 1,
    tx_tls_dump_packets: 2, tx_tls_dump_bytes: R - 500,
  }));
  t.deepEqual(b.layout(b.wire.slice(-1)), [[rtx, 1500]]);
  t.true(b.checkWire(t));
});

test('nfp: retransmit at a record start and spanning two records -> software, right ciphertext', (t) => {
  const b = new Bench(nfpDriver, { tso: false, seed: 7 });
  b.sendSizes([REC, REC, REC]);
  b.xmitRange(HS, recOff(3), 1000);
  b.xmit(recOff(1), 1000);
  b.xmit(recOff(1) + R - 500, 1500);
  t.deepEqual(b.counters(), expectCounters({ tx_tls_encrypted_packets: 10, tx_tls_encrypted_bytes: 3 * R, tx_tls_ooo: 2 }));
  t.deepEqual(b.layout(b.wire.slice(-2)), [[recOff(1), 1000], [recOff(1) + R - 500, 1500]]);
  t.true(b.checkWire(t));
  t.is(b.txResyncs().length, 0);
});

for (const driver of [mlx5Driver, nfpDriver]) {
  test(`${driver.name} TSO: a retransmitted super-segment spanning records is cut by the device, every segment right`, (t) => {
    const b = new Bench(driver, { tso: true, seed: 8 });
    b.sendSizes([REC, REC, REC, REC]);
    // In order as 4000-byte super-segments of MSS 1000 (fences cut the first one at HS only).
    b.xmitRange(HS, recOff(4), 4000, 1000);
    const first = b.wire.length;
    t.is(first, 1 + Math.ceil(4 * R / 1000));
    // Retransmit a super-segment of 4500 bytes from 1200 into record 1 (crossing into record 2), MSS 1000.
    const rtx = recOff(1) + 1200;
    b.xmit(rtx, 4500, 1000);
    t.deepEqual(b.layout(b.wireFrom(first)), [[rtx, 1000], [rtx + 1000, 1000], [rtx + 2000, 1000], [rtx + 3000, 1000], [rtx + 4000, 500]]);
    const inOrder = { tx_tls_encrypted_packets: Math.ceil(4 * R / 1000), tx_tls_encrypted_bytes: 4 * R };
    if (driver === mlx5Driver) {
      t.deepEqual(b.counters(), expectCounters({
        tx_tls_encrypted_packets: inOrder.tx_tls_encrypted_packets + 5, tx_tls_encrypted_bytes: inOrder.tx_tls_encrypted_bytes + 4500,
        tx_tls_ooo: 1, tx_tls_dump_packets: 1, tx_tls_dump_bytes: 1200,
      }));
    } else {
      t.deepEqual(b.counters(), expectCounters({ ...inOrder, tx_tls_ooo: 1 }));
    }
    // New data continues right after the super-segment retransmit.
    b.sendSizes([REC]);
    b.xmitRange(recOff(4), recOff(5), 4000, 1000);
    t.true(b.checkWire(t));
    t.is(b.wire.reduce((n, f) => n + f.payload.length, 0), recOff(5) + 4500);
    t.is(b.nic.stats.txViolations, 0);
  });
}

// ---- 3. pre-offload bytes retransmitted ----

for (const driver of [mlx5Driver, nfpDriver]) {
  test(`${driver.name}: retransmit wholly before the start marker -> sent as is (handshake bytes), offload state untouched`, (t) => {
    const b = new Bench(driver, { tso: false, seed: 9, hsSeg: 400 });
    b.sendSizes([REC, REC]);
    b.xmitRange(HS, recOff(1), 1000);
    const before = b.wire.length;
    b.xmit(400, 300); // the handshake's tail, ends exactly at the start marker
    b.xmit(0, 400);
    t.deepEqual(b.layout(b.wireFrom(before)), [[400, 300], [0, 400]]);
    t.true(b.checkWire(t));
    // The handshake bytes leave exactly as they were queued (they were never TLS records).
    t.deepEqual(b.wire.at(-1)!.payload, b.expect.subarray(0, 400));
    const base = { tx_tls_encrypted_packets: 4, tx_tls_encrypted_bytes: R };
    if (driver === mlx5Driver) t.deepEqual(b.counters(), expectCounters({ ...base, tx_tls_ooo: 2, tx_tls_skip_no_sync_data: 2 }));
    else t.deepEqual(b.counters(), expectCounters({ ...base, tx_tls_ooo: 2 }));
    // The device still expects the next byte of record 1: in order, no more out-of-order events.
    b.xmitRange(recOff(1), recOff(2), 1000);
    t.is(b.nic.counters.tx_tls_ooo, 2);
    t.is(b.nic.counters.tx_tls_encrypted_packets, 8);
    t.true(b.checkWire(t));
    t.is(b.txResyncs().length, 0);
  });
}

test('mlx5: a pre-offload retransmit marked decrypted (for the device) is dropped, counted only as skip_no_sync_data', (t) => {
  const b = new Bench(mlx5Driver, { tso: false, seed: 10, hsSeg: 700 });
  b.sendSizes([REC]);
  b.xmitRange(HS, recOff(1), 1000);
  const n = b.wire.length;
  const skb = b.skb(0, 700);
  skb.decrypted = true; // mlx5e_ktls_handle_tx_skb: SKIP_NO_DATA with skb->decrypted -> WARN, drop
  b.xmitSkb(skb);
  t.is(b.wire.length, n);
  // No tx_tls_drop_bypass_req: mlx5 stopped counting it in 5.6 ("Fix corner-case checks in TX resync flow").
  t.deepEqual(b.counters(), expectCounters({
    tx_tls_encrypted_packets: 4, tx_tls_encrypted_bytes: R, tx_tls_ooo: 1, tx_tls_skip_no_sync_data: 1,
  }));
});

// ---- 4. record gone (ACKed) or segment straddling the start marker: dropped ----

for (const driver of [mlx5Driver, nfpDriver]) {
  test(`${driver.name}: retransmit of an ACKed, cleaned record -> dropped, tx_tls_drop_no_sync_data, nothing leaves`, (t) => {
    const b = new Bench(driver, { tso: false, seed: 11 });
    b.sendSizes([REC, REC, REC]);
    b.xmitRange(HS, recOff(3), 1000);
    const stale = b.skb(recOff(0) + 1000, 1000); // built while still queued: TCP's view before the ACK
    const staleHs = b.skb(0, HS);
    b.ack(recOff(2)); // records 0 and 1 (and the start marker) fully ACKed: tls_icsk_clean_acked frees them
    t.is(b.stack.tlsGetRecord(b.tls.sk, b.seqAt(recOff(0) + 1000)), null);
    const n = b.wire.length;
    b.xmitSkb(stale);
    b.xmitSkb(staleHs); // pre-offload bytes after the start marker was cleaned: no record either
    t.is(b.wire.length, n, 'nothing of a segment with no record leaves (no plaintext)');
    t.deepEqual(b.counters(), expectCounters({
      tx_tls_encrypted_packets: 10, tx_tls_encrypted_bytes: 3 * R, tx_tls_ooo: 2, tx_tls_drop_no_sync_data: 2,
    }));
    // Unacked record 2 still retransmits right.
    b.xmit(recOff(2) + 500, 1000);
    t.is(b.wire.length, n + 1);
    t.true(b.checkWire(t));
    t.is(b.nic.counters.tx_tls_drop_no_sync_data, 2);
  });
}

/** A segment TCP never builds (eor at the start marker and the decrypted mark keep them apart): 200 handshake
 * bytes and 300 record bytes in one skb. */
function straddler(b: Bench): SkBuff {
  const hs = b.sock.queued(b.seqAt(HS - 200), 200)!;
  const rec = b.sock.queued(b.seqAt(HS), 300)!;
  return { data: txFrame(b.seqAt(HS - 200), concatBytes([hs.data, rec.data])), sk: b.tls.sk, decrypted: true, gsoSize: 0 };
}

test('mlx5: segment straddling the start marker -> dropped, tx_tls_drop_no_sync_data, no plaintext leaves', (t) => {
  const b = new Bench(mlx5Driver, { tso: false, seed: 12 });
  b.sendSizes([REC]);
  b.xmitRange(HS, recOff(1), 1000);
  const n = b.wire.length;
  b.xmitSkb(straddler(b));
  t.is(b.wire.length, n);
  t.deepEqual(b.counters(), expectCounters({ tx_tls_encrypted_packets: 4, tx_tls_encrypted_bytes: R, tx_tls_ooo: 1, tx_tls_drop_no_sync_data: 1 }));
  t.true(b.checkWire(t));
});

// Kernel tls_sw_fallback(): fill_sg_in() finds the start marker for a seq before it and returns -EINVAL with a
// negative sync_size; the skb is passed through only when payload_len <= -sync_size (wholly pre-offload),
// otherwise tls_encrypt_skb() returns NULL and nfp_net_tls_tx() drops it (tls_tx_no_fallback).
test('nfp: segment straddling the start marker -> tls_encrypt_skb returns NULL, dropped', (t) => {
  const b = new Bench(nfpDriver, { tso: false, seed: 13 });
  b.sendSizes([REC]);
  b.xmitRange(HS, recOff(1), 1000);
  const n = b.wire.length;
  b.xmitSkb(straddler(b));
  t.true(b.checkWire(t), 'whatever leaves is never plaintext');
  t.is(b.wire.length, n);
  t.deepEqual(b.counters(), expectCounters({ tx_tls_encrypted_packets: 4, tx_tls_encrypted_bytes: R, tx_tls_ooo: 1, tx_tls_drop_no_sync_data: 1 }));
});

// ---- 5. property: random interleavings of new segments, retransmits, local drops and ACKs ----

type RunStats = { wireBytes: number; offloadedWireBytes: number; offloadedWireFrames: number; preOffloadRtx: number; txResyncs: number };

/**
 * One seeded run. The host only retransmits unacknowledged bytes and the peer only ACKs bytes it got, as TCP
 * does; segments never cross an end-of-record fence nor mix offload marks. Checks: every frame on the wire
 * is software TLS at its seq (so no plaintext, no placeholder), nothing the host handed over is dropped,
 * every stream byte reaches the wire in the end, and the driver's counters and calls add up.
 */
function propertyRun(t: ExecutionContext, driver: DriverModule, seed: number): RunStats | null {
  const rng = new Prng(seed * 7919 + driver.name.length);
  const tso = rng.chance(0.5);
  const isn = rng.chance(0.3) ? (2 ** 32 - rng.int(0, 30000)) >>> 0 : rng.u32();
  const cipher256 = rng.chance(0.5);
  const b = new Bench(driver, { tso, seed: rng.u32(), handshake: rng.pick([0, 1, 300, 1200, 2500]), hsSeg: rng.int(100, 1460), isn, cipher256 });
  if (b.mode !== 'hw') {
    t.fail(`seed ${seed}: TX not offloaded`);
    return null;
  }
  const where = `${driver.name} seed ${seed} (tso ${tso}, isn ${isn}, AES-GCM-${cipher256 ? 256 : 128})`;
  let nxt = b.startOff; // snd_nxt as a stream offset
  let una = 0;
  let sentBytes = 0; // bytes in skbs handed to dev_queue_xmit
  let preOffloadRtx = 0;
  let preOffloadRtxBytes = 0;
  const lost: Array<[number, number]> = [];
  const covered: boolean[] = [];
  let seen = 0; // wire frames folded into `covered`
  const prefix = () => {
    for (; seen < b.wire.length; seen++) {
      const f = b.wire[seen]!;
      const off = seqDiff(f.seq, b.isn);
      for (let j = 0; j < f.payload.length; j++) covered[off + j] = true;
    }
    let p = una;
    while (covered[p]) p++;
    return p;
  };
  const send = (a: number, e: number) => {
    // One skb; under TSO a super-segment with a random MSS.
    const fences = b.fenceOffs();
    for (const f of fences) if (f > a && f < e) e = f;
    const gso = tso && e - a > 1 && rng.chance(0.6) ? rng.int(200, 1460) : 0;
    b.xmit(a, e - a, gso);
    sentBytes += e - a;
    if (a < b.startOff) {
      preOffloadRtx++;
      preOffloadRtxBytes += e - a;
    }
    return e;
  };
  const steps = rng.int(20, 60);
  for (let s = 0; s < steps; s++) {
    const r = rng.u32() % 100;
    if (r < 25 && b.records.length < 24) {
      b.send(b.rng.bytes(rng.chance(0.1) ? rng.int(5000, 16384) : rng.int(1, 4000)));
    } else if (r < 65 && nxt < b.writeOff) {
      const want = rng.int(1, tso ? 6000 : 1460);
      const fences = b.fenceOffs();
      let e = Math.min(b.writeOff, nxt + want);
      for (const f of fences) if (f > nxt && f < e) e = f;
      if (rng.chance(0.1)) lost.push([nxt, e]); // dropped in the qdisc: the driver never sees it
      else send(nxt, e);
      nxt = e;
    } else if (r < 90 && nxt > una) {
      const a = rng.int(una, nxt - 1);
      send(a, Math.min(nxt, a + rng.int(1, tso ? 6000 : 1460)));
    } else {
      const p = prefix();
      if (p > una && rng.chance(0.7)) {
        una = rng.int(una + 1, p);
        b.ack(una);
      }
    }
  }
  // Finish: send what is left, then retransmit every hole (TCP's RTO would).
  while (nxt < b.writeOff) nxt = send(nxt, Math.min(b.writeOff, nxt + 1460));
  for (const [a, e] of lost) for (let x = Math.max(a, una); x < e; ) x = send(x, e);
  prefix();

  if (!b.checkWire(t, b.wire)) {
    t.log(where);
    return null;
  }
  const wireBytes = b.wire.reduce((n, f) => n + f.payload.length, 0);
  const hsBytes = b.startOff; // the handshake transmit in the constructor (before TLS_TX)
  if (wireBytes !== hsBytes + sentBytes) {
    t.fail(`${where}: ${hsBytes + sentBytes} bytes handed to the driver, ${wireBytes} on the wire (something was dropped)`);
    return null;
  }
  for (let i = 0; i < b.writeOff; i++) {
    if (!covered[i]) {
      t.fail(`${where}: stream byte ${i} of ${b.writeOff} never reached the wire`);
      return null;
    }
  }
  let offloadedWireBytes = 0;
  let offloadedWireFrames = 0;
  for (const f of b.wire) {
    if (seqDiff(f.seq, b.isn) >= b.startOff) {
      offloadedWireBytes += f.payload.length;
      offloadedWireFrames++;
    }
  }
  const c = b.nic.counters;
  const bad: string[] = [];
  const eq = (name: string, got: number, want: number) => got !== want && bad.push(`${name} ${got} != ${want}`);
  eq('tx_tls_drop_no_sync_data', c.tx_tls_drop_no_sync_data, 0);
  eq('tx_tls_drop_bypass_req', c.tx_tls_drop_bypass_req, 0);
  eq('txViolations', b.nic.stats.txViolations, 0);
  if (driver === mlx5Driver) {
    // Crypto state rebuilding: every offloaded byte is encrypted by the device, every pre-offload retransmit
    // skips it; DUMPs feed exactly the prefixes the driver resynced over.
    eq('tx_tls_encrypted_bytes', c.tx_tls_encrypted_bytes, offloadedWireBytes);
    eq('tx_tls_encrypted_packets', c.tx_tls_encrypted_packets, offloadedWireFrames);
    eq('tx_tls_skip_no_sync_data', c.tx_tls_skip_no_sync_data, preOffloadRtx);
    eq('tx_tls_resync_bytes', c.tx_tls_resync_bytes, 0); // mlx5's kTLS path never counts it
    if (c.tx_tls_dump_packets < Math.ceil(c.tx_tls_dump_bytes / 1522)) bad.push('fewer DUMP packets than 1522-byte chunks (hw MTU)');
    eq('tls_dev_resync calls', b.txResyncs().length, 0);
  } else {
    // Next record sync: the device encrypts what it is in sync for, software the rest; no DUMP, no skip.
    eq('tx_tls_dump_packets', c.tx_tls_dump_packets, 0);
    eq('tx_tls_resync_bytes', c.tx_tls_resync_bytes, 0);
    eq('tx_tls_skip_no_sync_data', c.tx_tls_skip_no_sync_data, 0);
    // Each out-of-order skb goes to tls_encrypt_skb; pre-offload ones come back as they were.
    eq('tx_tls_ooo', c.tx_tls_ooo, b.swFallback.calls);
    eq('device + software bytes', c.tx_tls_encrypted_bytes + b.swFallback.bytes - preOffloadRtxBytes, offloadedWireBytes);
    for (const call of b.txResyncs()) {
      const rec = b.records.find((x) => b.seqAt(x.off) === call.seq);
      if (!rec || call.dir !== 'tx' || call.rcdSn !== rec.rcdSn || call.result !== 0) {
        bad.push(`tls_dev_resync ${call.dir} seq ${call.seq} rcd_sn ${call.rcdSn}: not a record start with its number`);
      }
    }
  }
  if (bad.length) {
    t.fail(`${where}: ${bad.join('; ')}`);
    return null;
  }
  return { wireBytes, offloadedWireBytes, offloadedWireFrames, preOffloadRtx, txResyncs: b.txResyncs().length };
}

for (const driver of [mlx5Driver, nfpDriver]) {
  test(`property ${driver.name}: random new/retransmitted/lost segments and ACKs -> the wire is always software TLS`, (t) => {
    const runs = 150;
    let txResyncs = 0;
    let preOffloadRtx = 0;
    for (let seed = 1; seed <= runs; seed++) {
      const st = propertyRun(t, driver, seed);
      if (!st) return;
      txResyncs += st.txResyncs;
      preOffloadRtx += st.preOffloadRtx;
    }
    // The runs did exercise the paths under test.
    t.true(preOffloadRtx > 0, 'no pre-offload retransmit generated');
    if (driver === nfpDriver) t.true(txResyncs > 0, 'no next-record TX resync happened');
    t.pass();
  });
}

test('nfp: a failed tls_dev_resync(TX) keeps the request pending: software until the next record resyncs', (t) => {
  const b = new Bench(nfpDriver, { tso: false, seed: 14 });
  const ops = b.netdev.tlsdevOps!;
  const resync = ops.tlsDevResync.bind(ops);
  let failNext = 1;
  ops.tlsDevResync = (netdev, sk, seq, rcdSn, dir) => (failNext-- > 0 ? -16 /* EBUSY */ : resync(netdev, sk, seq, rcdSn, dir));
  b.sendSizes([REC, REC]);
  b.xmitRange(HS, recOff(0) + 1000, 1000);
  b.xmitRange(recOff(0) + 2000, recOff(1), 1000); // 1000 bytes lost locally: ahead -> resync requested
  b.sendSizes([REC]); // tls_device_resync_tx fails: TLS_TX_SYNC_SCHED stays set
  t.like(b.txResyncs()[0], { dir: 'tx', seq: b.seqAt(recOff(2)), result: -16 });
  t.true(b.stack.tlsOffloadTxResyncPending(b.tls.sk));
  b.xmitRange(recOff(1), recOff(3), 1000); // all software while pending
  t.is(b.nic.counters.tx_tls_encrypted_packets, 1);
  b.sendSizes([REC]); // next record: the retry succeeds
  const rs = b.txResyncs();
  t.is(rs.length, 2);
  t.like(rs[1], { dir: 'tx', seq: b.seqAt(recOff(3)), rcdSn: b.firstRecSn + 3n, result: 0 });
  t.false(b.stack.tlsOffloadTxResyncPending(b.tls.sk));
  b.xmit(recOff(0) + 1000, 1000); // the lost segment, retransmitted: software
  b.xmitRange(recOff(3), recOff(4), 1000); // in sync again: the device encrypts
  t.deepEqual(b.counters(), expectCounters({
    tx_tls_encrypted_packets: 1 + 4, tx_tls_encrypted_bytes: 1000 + R,
    tx_tls_ooo: Math.ceil((R - 2000) / 1000) + 2 * Math.ceil(R / 1000) + 1,
  }));
  t.true(b.checkWire(t));
  t.is(b.wire.reduce((n, f) => n + f.payload.length, 0), recOff(4));
});

test('mlx5: local drop -> the next segment rebuilds the state (DUMP), the late retransmit too; no stack resync involved', (t) => {
  const b = new Bench(mlx5Driver, { tso: false, seed: 15 });
  b.sendSizes([REC, REC]);
  const lost = recOff(0) + 1000;
  b.xmitRange(HS, lost, 1000);
  b.xmitRange(lost + 1000, recOff(2), 1000); // ahead by 1000: DUMP 2000 bytes of record 0 (1500 + 500)
  b.xmit(lost, 1000); // behind: DUMP 1000 bytes
  b.sendSizes([REC]);
  b.xmitRange(recOff(2), recOff(3), 1000); // expected is lost+1000: out of order at a record start, no DUMP
  t.deepEqual(b.counters(), expectCounters({
    tx_tls_encrypted_packets: 1 + 5 + 1 + 4, tx_tls_encrypted_bytes: 1000 + (2 * R - 2000) + 1000 + R, tx_tls_ooo: 3,
    tx_tls_dump_packets: 3, tx_tls_dump_bytes: 3000,
  }));
  t.deepEqual(b.txResyncs(), []);
  t.false(b.stack.tlsOffloadTxResyncPending(b.tls.sk));
  t.true(b.checkWire(t));
  t.is(b.wire.reduce((n, f) => n + f.payload.length, 0), recOff(3));
});
