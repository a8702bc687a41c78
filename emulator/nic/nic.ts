// The emulated NIC: what the silicon of a kTLS-offload-capable card does (SPEC sections 4, 5, 7).
// It holds the context table, encrypts TX records inline, decrypts and authenticates RX records inline,
// and tracks/scans RX record framing for resync. Out-of-order policy belongs to the driver (as on mlx5
// and nfp); the device offers the primitives a driver needs: set state at a record boundary, dump a
// record prefix, answer a resync, report what it tracks.
import type { AeadBackend } from '../crypto/aead.ts';
import { EEXIST, ENOSPC, EOPNOTSUPP } from '../errno.ts';
import { ConfigError, WireError } from '../errors.ts';
import { CIPHER_DESC, TLS_1_3_VERSION, recSeqToBigInt, type CryptoInfo } from '../tls/crypto-info.ts';
import { TLS_HEADER_SIZE } from '../tls/record.ts';
import { parseIp } from '../wire/addr.ts';
import { fillTcpChecksum } from '../wire/checksum.ts';
import { packetMemory } from '../wire/simd-sum.ts';
import { TcpSegmentView } from '../wire/packet.ts';
import { seqAdd, seqDiff, seqGeq, seqGt } from '../wire/seq.ts';
import { LINKTYPE_ETHERNET } from '../wire/link.ts';
import { tsoSegment } from '../wire/tso.ts';
import { newEthtoolCounters, type EthtoolCounters } from './counters.ts';
import { FlowTable, MAX_TABLE_CAPACITY, type FlowDirection } from './flow-table.ts';
import { RecordTracker, RxPacketResult, headerProblem } from './record-tracker.ts';
import {
  DEFAULT_PROFILE,
  type AddContextParams,
  type FlowTuple,
  type NicEvent,
  type NicProfile,
  type RxCompletion,
  type RxResyncMode,
  type RxResyncRequest,
  type RxResyncResult,
  type RxTrackingState,
} from './types.ts';

/** Explicit RX sync states (STYLE principle 5): one switch per event. */
type RxState =
  | { kind: 'sync' }
  /** Sync lost at `lostAt`; bytes before `scanFrom` are not looked at. */
  | { kind: 'lost'; lostAt: number; scanFrom: number }
  /** Looking for a `type 03 03 len` pattern; `win` carries up to 4 bytes across segments. */
  | { kind: 'scan' }
  /** A candidate header chains by length; tracker frames blind. */
  | { kind: 'chain'; matched: number; requests: number; sinceRequest: number; requestedSeq: number }
  /** The stack said the record at `seq` has number `recSeq`; start there when the stream reaches it. */
  | { kind: 'armed'; seq: number; recSeq: bigint };

const HEADER_RING = 64;

type TxContext = {
  dir: 'tx';
  handle: number;
  tuple: FlowTuple;
  info: CryptoInfo;
  startSeq: number;
  tracker: RecordTracker;
  /** Set after the stack handed bytes that do not frame as records; cleared by a state reset. */
  broken: string | null;
};

type RxContext = {
  dir: 'rx';
  handle: number;
  tuple: FlowTuple;
  info: CryptoInfo;
  startSeq: number;
  tracker: RecordTracker;
  resync: RxResyncMode;
  state: RxState;
  /** Highest stream position seen (end of the furthest payload). */
  pos: number;
  /** Recent record headers: start seq and the tracker's record number for it, for resync answers. */
  ringSeq: Int32Array;
  ringRec: BigInt64Array;
  ringCount: number;
  /**
   * Ring index of the current chain's first header. Headers before it were numbered in another era (an
   * earlier sync or chain, whose record numbers mean nothing to this chain's count from 0): a resync answer
   * naming one of them must not renumber this chain.
   */
  ringChainStart: number;
  /** Scan window: last bytes seen while scanning, and the seq of win[0]. */
  win: Uint8Array;
  winLen: number;
  winSeq: number;
};

type Context = TxContext | RxContext;

export type NicOptions = {
  profile?: Partial<NicProfile>;
  backend: AeadBackend;
};

export type TxDescriptor = {
  frame: Uint8Array;
  /** TX context handle: encrypt this packet's TLS payload inline. -1 or absent: send as is. */
  ctx?: number;
  /** TSO: cut the payload into segments of this size. */
  mss?: number;
};

export class Nic {
  readonly profile: NicProfile;
  readonly counters: EthtoolCounters = newEthtoolCounters();
  /** Device-level tallies that are not ethtool TLS statistics. */
  readonly stats = { rxFrames: 0, txFrames: 0, rxDroppedLinkDown: 0, txDroppedLinkDown: 0, rxBadChecksum: 0, rxMalformed: 0, txViolations: 0 };
  private linkUp = true;
  private readonly table: FlowTable<Context>;
  private readonly backend: AeadBackend;
  private readonly view = new TcpSegmentView();
  private readonly txView = new TcpSegmentView();
  private readonly rxResult = new RxPacketResult();
  private wire: ((frame: Uint8Array) => void) | null = null;
  private rxHandler: ((cqe: RxCompletion) => void) | null = null;
  private eventSink: ((ev: NicEvent) => void) | null = null;

  constructor(opts: NicOptions) {
    this.profile = { ...DEFAULT_PROFILE, ...opts.profile };
    this.backend = opts.backend;
    const cap = this.profile.maxContexts;
    if (!Number.isInteger(cap) || cap < 0 || cap > MAX_TABLE_CAPACITY) {
      throw new ConfigError(`NIC profile maxContexts ${cap} must be an integer from 0 to ${MAX_TABLE_CAPACITY}`, { field: 'maxContexts' });
    }
    this.table = new FlowTable<Context>(cap);
  }

  // ---- plumbing ----------------------------------------------------------------------------------

  /** Frames the device puts on the wire go here; each is valid until the callback returns (copy to keep it). */
  attachWire(send: (frame: Uint8Array) => void): void {
    this.wire = send;
  }

  /** The driver's RX completion handler (its NAPI poll). */
  onReceive(handler: (cqe: RxCompletion) => void): void {
    this.rxHandler = handler;
  }

  onEvent(sink: ((ev: NicEvent) => void) | null): void {
    this.eventSink = sink;
  }

  setLink(up: boolean): void {
    this.linkUp = up;
  }

  isLinkUp(): boolean {
    return this.linkUp;
  }

  get contextCount(): number {
    return this.table.size;
  }

  // ---- context table -----------------------------------------------------------------------------

  /** Program a context. Returns its handle (>= 0) or a negative errno, like a firmware command. */
  addContext(dir: FlowDirection, p: AddContextParams): number {
    const desc = CIPHER_DESC[p.info.cipherType];
    if (!desc || !desc.offloadable) return -EOPNOTSUPP;
    if (p.info.version === TLS_1_3_VERSION && !this.profile.tls13) return -EOPNOTSUPP;
    const family = p.tuple.family;
    const local = parseIp(p.tuple.saddr);
    const remote = parseIp(p.tuple.daddr);
    // Packet order: TX packets go local -> remote, RX packets come remote -> local.
    const key = dir === 'tx'
      ? { dir, family, src: local, dst: remote, sport: p.tuple.sport, dport: p.tuple.dport }
      : { dir, family, src: remote, dst: local, sport: p.tuple.dport, dport: p.tuple.sport };
    if (this.table.lookupKey(key) >= 0) return -EEXIST;
    const info = copyInfo(p.info);
    const recSeq = recSeqToBigInt(info.recSeq);
    const tracker = new RecordTracker(dir, info, this.backend, p.startSeq >>> 0, recSeq, true);
    const base = { handle: -1, tuple: { ...p.tuple }, info, startSeq: p.startSeq >>> 0, tracker };
    const ctx: Context = dir === 'tx'
      ? { ...base, dir: 'tx', broken: null }
      : {
        ...base, dir: 'rx', resync: p.rxResync ?? 'scan', state: { kind: 'sync' }, pos: p.startSeq >>> 0,
        ringSeq: new Int32Array(HEADER_RING), ringRec: new BigInt64Array(HEADER_RING), ringCount: 0, ringChainStart: 0,
        win: new Uint8Array(TLS_HEADER_SIZE), winLen: 0, winSeq: 0,
      };
    const handle = this.table.add(key, ctx);
    if (handle < 0) return -ENOSPC;
    ctx.handle = handle;
    this.counters[dir === 'tx' ? 'tx_tls_ctx' : 'rx_tls_ctx']++;
    this.emit({ kind: 'ctx-add', ctx: handle, dir, tuple: ctx.tuple, startSeq: ctx.startSeq });
    return handle;
  }

  /** Remove a context. Returns false when the handle is not live (a driver bug the caller reports). */
  delContext(handle: number): boolean {
    const ctx = this.table.remove(handle);
    if (!ctx) return false;
    this.counters[ctx.dir === 'tx' ? 'tx_tls_del' : 'rx_tls_del']++;
    this.emit({ kind: 'ctx-del', ctx: handle, dir: ctx.dir });
    return true;
  }

  hasContext(handle: number): boolean {
    return this.table.get(handle) !== undefined;
  }

  /** Find the context of a flow (local view) and direction; -1 if none. */
  findContext(dir: FlowDirection, tuple: FlowTuple): number {
    const local = parseIp(tuple.saddr);
    const remote = parseIp(tuple.daddr);
    return this.table.lookupKey(dir === 'tx'
      ? { dir, family: tuple.family, src: local, dst: remote, sport: tuple.sport, dport: tuple.dport }
      : { dir, family: tuple.family, src: remote, dst: local, sport: tuple.dport, dport: tuple.sport });
  }

  /** The table as text, like netdevsim's debugfs ipsec file: one line per context, stable order. */
  dumpTable(): string {
    const lines: string[] = [];
    for (const [h, c] of this.table.entries()) {
      const t = c.tuple;
      const v = c.info.version === TLS_1_3_VERSION ? '1.3' : '1.2';
      const common = `ctx=${h} dir=${c.dir} ${fmtEp(t.family, t.saddr, t.sport)}<->${fmtEp(t.family, t.daddr, t.dport)} ` +
        `tls=${v} cipher=${CIPHER_DESC[c.info.cipherType].aead} start_sn=${c.startSeq}`;
      if (c.dir === 'tx') {
        lines.push(`${common} expected_sn=${c.tracker.seq} rec_seq=${c.tracker.recSeq}${c.broken ? ' broken' : ''}`);
      } else {
        lines.push(`${common} state=${c.state.kind} resync=${c.resync} expected_sn=${c.tracker.seq} rec_seq=${c.tracker.recSeq}`);
      }
    }
    return lines.join('\n') + (lines.length ? '\n' : '');
  }

  // ---- TX ----------------------------------------------------------------------------------------

  /** TCP seq the TX context expects next (its progress state). */
  txExpectedSeq(handle: number): number {
    return this.txCtx(handle).tracker.seq;
  }

  /** Static params: the record starting at `seq` is number `recSeq` (mlx5 post_static_params, nfp resync). */
  txSetState(handle: number, seq: number, recSeq: bigint): void {
    const ctx = this.txCtx(handle);
    ctx.tracker.resetAt(seq >>> 0, recSeq, true);
    ctx.broken = null;
    this.emit({ kind: 'tx-resync', ctx: handle, seq: seq >>> 0, recSeq });
  }

  /**
   * A DUMP: feed record bytes through the crypto state without sending them (mlx5 tx_post_resync_dump).
   * `bytes` continue the stream at txExpectedSeq(handle).
   */
  txDump(handle: number, bytes: Uint8Array): void {
    const ctx = this.txCtx(handle);
    const seq = ctx.tracker.seq;
    const st = ctx.tracker.feed(bytes.slice(), 0, bytes.length, null);
    if (!st.ok) this.txBreak(ctx, `dump bytes do not frame as TLS records at seq ${st.badHeaderAt}: ${st.reason}`);
    this.counters.tx_tls_dump_packets++;
    this.counters.tx_tls_dump_bytes += bytes.length;
    this.emit({ kind: 'tx-dump', ctx: handle, seq, len: bytes.length });
  }

  /** Transmit one packet (or a TSO super-segment). The device reads the frame (DMA) and never modifies it. */
  transmit(desc: TxDescriptor): void {
    if (!this.linkUp) {
      this.stats.txDroppedLinkDown++;
      return;
    }
    const ctxHandle = desc.ctx ?? -1;
    const mss = desc.mss ?? 0;
    // TSO cuts the super-segment into new frames of the device's own; a single frame is read from the
    // host's buffer and written to device memory as it is encrypted, so its payload is copied once.
    let segments: Uint8Array[] | null = null;
    if (mss > 0) {
      try {
        // With a TLS context txEncrypt() computes each segment's TCP checksum over the ciphertext.
        const segs = tsoSegment(desc.frame, mss, LINKTYPE_ETHERNET, ctxHandle < 0);
        if (segs[0] !== desc.frame) segments = segs;
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
        this.txViolation(ctxHandle, `malformed TX frame: ${e.message}`);
        return;
      }
      if (segments && segments.length > 1 && !this.profile.tso) {
        this.txViolation(ctxHandle, 'TSO super-segment given to a device without TSO');
        return;
      }
    }
    if (!segments) {
      // txOut is taken from the moment the frame is built (txFrame) until the wire callback returns: a
      // transmit from inside an event or wire callback, on any Nic, gets memory of its own.
      const busy = txOut.busy;
      try {
        const f = ctxHandle >= 0 ? this.txEncrypt(ctxHandle, desc.frame, false) : this.txCopy(desc.frame);
        if (!f) return;
        this.stats.txFrames++;
        this.wire?.(f);
      } finally {
        txOut.busy = busy;
      }
      return;
    }
    for (const seg of segments) {
      const f = ctxHandle >= 0 ? this.txEncrypt(ctxHandle, seg, true) : seg;
      if (!f) return; // rest of a super-segment is dropped too
      this.stats.txFrames++;
      this.wire?.(f);
    }
  }

  /**
   * Encrypt the TLS payload of one wire segment: into a device copy of `frame`, or in place when `inPlace`
   * (a TSO segment the device made itself). Returns the frame to send, or null: the segment must be dropped.
   */
  private txEncrypt(handle: number, frame: Uint8Array, inPlace: boolean): Uint8Array | null {
    const ctx = this.table.get(handle);
    if (!ctx || ctx.dir !== 'tx') {
      this.txViolation(handle, `TX descriptor names context ${handle}, which is not a live TX context`);
      return null;
    }
    const v = this.txView;
    try {
      if (v.parse(frame) !== 'tcp') {
        this.txViolation(handle, 'TX descriptor with a TLS context carries no TCP segment');
        return null;
      }
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      this.txViolation(handle, `malformed TX frame: ${e.message}`);
      return null;
    }
    const len = v.payloadLength;
    if (len === 0) return inPlace ? frame : this.txCopy(frame);
    const t = ctx.tracker;
    if (ctx.broken) {
      this.txDrop(ctx, v.seq, len, `context broken: ${ctx.broken}`);
      return null;
    }
    if (v.seq !== t.seq) {
      // The driver must resync first (kernel doc: a packet that cannot be encrypted must be dropped).
      this.txViolation(handle, `TX seq ${v.seq} but the context expects ${t.seq}; the driver did not resync`);
      this.txDrop(ctx, v.seq, len, 'out of order at the device');
      return null;
    }
    const p0 = v.payloadOffset;
    const p1 = p0 + len;
    let out = frame;
    if (!inPlace) {
      out = this.txFrame(frame.length);
      for (let i = 0; i < p0; i++) out[i] = frame[i]!; // the headers: a loop, not a view per frame
      if (p1 < frame.length) out.set(frame.subarray(p1), p1); // Ethernet padding after the IP packet
    }
    const st = t.feed(frame, p0, p1, null, out);
    if (!st.ok) {
      this.txBreak(ctx, `stack bytes do not frame as TLS records at seq ${st.badHeaderAt}: ${st.reason}`);
      this.txDrop(ctx, v.seq, len, 'not TLS records');
      return null;
    }
    fillTcpChecksum(out, v.srcAddrOffset, v.dstAddrOffset, v.addrLength, v.l4Offset, v.ipEnd);
    this.counters.tx_tls_encrypted_packets++;
    this.counters.tx_tls_encrypted_bytes += len;
    if (this.eventSink) this.emit({ kind: 'tx', ctx: handle, seq: v.seq, len, encrypted: true });
    return out;
  }

  /** `n` bytes of TX output memory for the next frame (see txOut). */
  private txFrame(n: number): Uint8Array {
    if (txOut.busy || n > txOut.base.length) return alignedFrame(n);
    txOut.busy = true; // transmit() gives it back
    if (txOut.view.length !== n) txOut.view = txOut.base.subarray(0, n);
    return txOut.view;
  }

  private txCopy(frame: Uint8Array): Uint8Array {
    const out = this.txFrame(frame.length);
    out.set(frame);
    return out;
  }

  private txCtx(handle: number): TxContext {
    const ctx = this.table.get(handle);
    if (!ctx || ctx.dir !== 'tx') throw new RangeError(`no TX context ${handle}`);
    return ctx;
  }

  private txBreak(ctx: TxContext, why: string): void {
    ctx.broken = why;
    this.txViolation(ctx.handle, why);
  }

  private txDrop(ctx: TxContext, seq: number, len: number, reason: string): void {
    this.emit({ kind: 'tx-drop', ctx: ctx.handle, seq, len, reason });
  }

  private txViolation(handle: number, message: string): void {
    this.stats.txViolations++;
    this.emit({ kind: 'violation', ctx: handle, message });
  }

  // ---- RX ----------------------------------------------------------------------------------------

  /** A frame arrives from the wire. The driver's handler gets exactly one completion for it. */
  receiveFrame(frame: Uint8Array): void {
    if (!this.linkUp) {
      this.stats.rxDroppedLinkDown++;
      return;
    }
    this.stats.rxFrames++;
    const cqe: RxCompletion = { frame, decrypted: false, ctx: -1, resyncRequest: null };
    const v = this.view;
    let kind: string;
    try {
      kind = v.parse(frame);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      this.stats.rxMalformed++;
      this.rxHandler?.(cqe);
      return;
    }
    if (kind === 'tcp') {
      const h = this.table.lookup('rx', frame, v.srcAddrOffset, v.dstAddrOffset, v.addrLength as 4 | 16, v.srcPort, v.dstPort);
      if (h >= 0) {
        cqe.ctx = h;
        // A packet with a bad L4 checksum gets no TLS processing at all (kernel doc, "Error handling").
        if (!v.verifyTcpChecksum()) this.stats.rxBadChecksum++;
        else if (v.payloadLength > 0) this.rxProcess(this.table.get(h) as RxContext, v, cqe);
      }
    }
    this.rxHandler?.(cqe);
  }

  /** The stack's answer, through the driver: the record starting at TCP `seq` has number `recSeq`. */
  rxResync(handle: number, seq: number, recSeq: bigint): RxResyncResult {
    const ctx = this.rxCtx(handle);
    seq >>>= 0;
    const result = this.rxApplyResync(ctx, seq, recSeq);
    this.emit({ kind: 'rx-resync', ctx: handle, seq, recSeq, result });
    return result;
  }

  /** What the device tracks now (GET_PSV on mlx5): used by async drivers to end a request. */
  rxTracking(handle: number): RxTrackingState {
    const ctx = this.rxCtx(handle);
    return {
      state: ctx.state.kind,
      resyncTcpSn: ctx.state.kind === 'chain' && ctx.state.requests > 0 ? ctx.state.requestedSeq : -1,
    };
  }

  private rxCtx(handle: number): RxContext {
    const ctx = this.table.get(handle);
    if (!ctx || ctx.dir !== 'rx') throw new RangeError(`no RX context ${handle}`);
    return ctx;
  }

  private rxApplyResync(ctx: RxContext, seq: number, recSeq: bigint): RxResyncResult {
    const st = ctx.state;
    switch (st.kind) {
      case 'sync':
        return 'skip'; // in sync already: an answer about an old header must not renumber records
      case 'chain': {
        const i = this.ringFind(ctx, seq);
        if (i >= ctx.ringChainStart) {
          // Records counted since that header keep their distance (tls-offload.rst: the device adds the
          // number of records it has seen since the confirmed one).
          const delta = recSeq - ctx.ringRec[i % HEADER_RING]!;
          ctx.tracker.recSeq += delta;
          for (let k = 0; k < Math.min(ctx.ringCount, HEADER_RING); k++) ctx.ringRec[k] = ctx.ringRec[k]! + delta;
          ctx.tracker.cryptoOn = true; // the record in flight stays blind: resume at the next boundary
          ctx.state = { kind: 'sync' };
          return 'ok';
        }
        return seqGeq(seq, ctx.pos) ? this.rxArm(ctx, seq, recSeq) : 'skip';
      }
      case 'lost':
      case 'scan':
      case 'armed':
        return seqGeq(seq, ctx.pos) ? this.rxArm(ctx, seq, recSeq) : 'skip';
    }
  }

  private rxArm(ctx: RxContext, seq: number, recSeq: bigint): RxResyncResult {
    ctx.state = { kind: 'armed', seq, recSeq };
    return 'ok';
  }

  private ringFind(ctx: RxContext, seq: number): number {
    const n = Math.min(ctx.ringCount, HEADER_RING);
    for (let k = 0; k < n; k++) {
      const i = ctx.ringCount - 1 - k;
      if (ctx.ringSeq[i % HEADER_RING]! >>> 0 === seq) return i;
    }
    return -1;
  }

  private ringPush(ctx: RxContext, r: RxPacketResult): void {
    for (let k = 0; k < r.nHeaders; k++) {
      const i = ctx.ringCount++ % HEADER_RING;
      ctx.ringSeq[i] = r.headers[k]! | 0;
      ctx.ringRec[i] = r.headerRecs[k]!;
    }
    r.nHeaders = 0;
  }

  private rxProcess(ctx: RxContext, v: TcpSegmentView, cqe: RxCompletion): void {
    const r = this.rxResult;
    r.reset();
    const buf = v.buf;
    const p0 = v.payloadOffset;
    const end = p0 + v.payloadLength;
    const seq = v.seq;
    let off = p0;
    let touched = false; // some byte of this packet went through a crypto-on record
    let guard = 0;
    while (off < end) {
      if (++guard > 64) throw new Error('RX state machine did not advance'); // invariant, never data-driven
      const at = seqAdd(seq, off - p0);
      const st = ctx.state;
      switch (st.kind) {
        case 'sync': {
          const t = ctx.tracker;
          const rel = seqDiff(at, t.seq);
          if (rel + (end - off) <= 0) {
            r.unknown = true; // old data (retransmit or late reorder): pass up as received
            off = end;
            break;
          }
          if (rel < 0) {
            r.unknown = true; // partly old: those bytes are not ours to decrypt
            off += -rel;
            break;
          }
          if (rel > 0 && !t.skip(rel)) {
            this.rxLose(ctx, t.seq, `record header lost in the gap ${t.seq}..${at}`);
            break;
          }
          const before = t.seq;
          const fr = t.feed(buf, off, end, r);
          this.ringPush(ctx, r);
          touched = true;
          if (!fr.ok) {
            r.unknown = true;
            this.rxLose(ctx, fr.badHeaderAt, `no valid header at ${fr.badHeaderAt}: ${fr.reason}`);
            off += seqDiff(t.seq, before);
          } else {
            off = end;
          }
          break;
        }
        case 'lost': {
          r.unknown = true;
          if (ctx.resync !== 'scan') {
            off = end; // CORE_NEXT_HINT: wait for the stack to say where a record starts
            break;
          }
          const skip = seqDiff(st.scanFrom, at);
          if (skip >= end - off) {
            off = end;
            break;
          }
          off += Math.max(0, skip);
          ctx.state = { kind: 'scan' };
          ctx.winLen = 0;
          break;
        }
        case 'scan': {
          r.unknown = true;
          off = this.rxScan(ctx, buf, off, end, seqAdd(seq, off - p0));
          break;
        }
        case 'chain': {
          r.unknown = true;
          const t = ctx.tracker;
          const rel = seqDiff(at, t.seq);
          if (rel + (end - off) <= 0) {
            off = end;
            break;
          }
          if (rel < 0) {
            off += -rel;
            break;
          }
          if (rel > 0 && !t.skip(rel)) {
            ctx.state = { kind: 'scan' }; // header lost while chaining: scan again from here
            ctx.winLen = 0;
            break;
          }
          const before = t.seq;
          const fr = t.feed(buf, off, end, r);
          const headers = r.nHeaders;
          this.ringPush(ctx, r);
          if (!fr.ok) {
            ctx.state = { kind: 'scan' }; // a miss restarts the scan
            ctx.winLen = 0;
            off += seqDiff(t.seq, before);
            break;
          }
          off = end;
          this.rxChainAdvance(ctx, st, headers, cqe, seq, v.payloadLength);
          break;
        }
        case 'armed': {
          r.unknown = true;
          const d = seqDiff(st.seq, at);
          if (d >= end - off) {
            off = end; // not there yet
            break;
          }
          if (d < 0) {
            // The record the stack named started in bytes we never saw: sync is still lost.
            this.rxLose(ctx, at, `resync point ${st.seq} was never seen`);
            break;
          }
          ctx.tracker.resetAt(st.seq, st.recSeq, true);
          ctx.state = { kind: 'sync' };
          off += d;
          break;
        }
      }
    }
    const pktEnd = seqAdd(seq, v.payloadLength);
    if (seqGt(pktEnd, ctx.pos)) ctx.pos = pktEnd;

    const ok = touched && !r.unknown && r.authFailures === 0;
    if (r.authFailures > 0) this.counters.rx_tls_err++; // per packet, as mlx5e_ktls_handle_rx_skb() counts an error CQE
    if (ok) {
      r.apply(buf);
      cqe.decrypted = true;
      this.counters.rx_tls_decrypted_packets++;
      this.counters.rx_tls_decrypted_bytes += v.payloadLength;
    }
    if (this.eventSink) this.emit({ kind: 'rx', ctx: ctx.handle, seq, len: v.payloadLength, decrypted: ok,
      note: r.authFailures ? 'auth failed' : ctx.state.kind !== 'sync' ? ctx.state.kind : undefined });
  }

  /** Lose sync at `at`; scanning starts once the stream is past one maximum record (policy). */
  private rxLose(ctx: RxContext, at: number, reason: string): void {
    const skip = this.profile.scan.skipOneMaxRecord ? ctx.tracker.maxLength + TLS_HEADER_SIZE : 0;
    ctx.state = { kind: 'lost', lostAt: at, scanFrom: seqAdd(at, skip) };
    ctx.tracker.cryptoOn = false;
    this.emit({ kind: 'rx-lost', ctx: ctx.handle, seq: at, reason });
  }

  /** Byte-wise pattern search; on a plausible header, switch to chaining. Returns the new offset. */
  private rxScan(ctx: RxContext, buf: Uint8Array, off: number, end: number, at: number): number {
    const t = ctx.tracker;
    const tls13 = ctx.info.version === TLS_1_3_VERSION;
    const w = ctx.win;
    // A window carried from the previous segment must be contiguous with this one.
    if (ctx.winLen > 0 && seqAdd(ctx.winSeq, ctx.winLen) !== at) ctx.winLen = 0;
    while (off < end) {
      if (ctx.winLen === TLS_HEADER_SIZE) {
        w.copyWithin(0, 1);
        ctx.winLen--;
        ctx.winSeq = seqAdd(ctx.winSeq, 1);
      }
      if (ctx.winLen === 0) ctx.winSeq = at;
      w[ctx.winLen++] = buf[off]!;
      off++;
      at = seqAdd(at, 1);
      if (ctx.winLen === TLS_HEADER_SIZE && headerProblem(w, 0, tls13, t.minLength, t.maxLength) === null) {
        t.resetAt(ctx.winSeq, 0n, false);
        const r = new RxPacketResult();
        t.feed(w, 0, TLS_HEADER_SIZE, r);
        ctx.ringChainStart = ctx.ringCount;
        this.ringPush(ctx, r);
        ctx.state = { kind: 'chain', matched: 1, requests: 0, sinceRequest: 0, requestedSeq: -1 };
        ctx.winLen = 0;
        return off;
      }
    }
    return off;
  }

  /** After a chained packet: ask for confirmation once enough headers chained; re-ask or rescan by policy. */
  private rxChainAdvance(
    ctx: RxContext,
    st: Extract<RxState, { kind: 'chain' }>,
    headers: number,
    cqe: RxCompletion,
    pktSeq: number,
    pktLen: number,
  ): void {
    if (ctx.state !== st) return;
    const pol = this.profile.scan;
    st.matched += headers;
    if (st.requests > 0) st.sinceRequest += headers;
    const due = st.requests === 0 ? st.matched >= pol.confirmHeaders : st.sinceRequest >= pol.rerequestEveryRecords;
    if (!due || headers === 0) return; // ask about a header whose last byte is in this packet
    if (st.requests >= pol.restartScanAfterRequests) {
      ctx.state = { kind: 'scan' };
      ctx.winLen = 0;
      return;
    }
    const last = ctx.ringSeq[(ctx.ringCount - 1) % HEADER_RING]! >>> 0;
    st.requests++;
    st.sinceRequest = 0;
    st.requestedSeq = last;
    const req: RxResyncRequest = { recordSeq: last, headerEndSeq: seqAdd(last, TLS_HEADER_SIZE - 1), packetSeq: pktSeq, packetLen: pktLen };
    cqe.resyncRequest = req;
    this.counters.rx_tls_resync_req_pkt++;
    this.emit({ kind: 'rx-resync-request', ctx: ctx.handle, recordSeq: last });
  }

  private emit(ev: NicEvent): void {
    this.eventSink?.(ev);
  }
}

function copyInfo(i: CryptoInfo): CryptoInfo {
  return {
    version: i.version, cipherType: i.cipherType, key: Uint8Array.from(i.key), iv: Uint8Array.from(i.iv),
    salt: Uint8Array.from(i.salt), recSeq: Uint8Array.from(i.recSeq),
  };
}

function fmtEp(family: 4 | 6, ip: string, port: number): string {
  return family === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/**
 * The device's TX output memory: each outgoing frame is built here (encrypted from the host's skb straight
 * into it) and is valid for the duration of the wire callback, as a TX ring's buffer is reused once the frame
 * has left; a wire consumer that keeps a frame copies it (the link does). One per thread, shared by every
 * Nic: while a frame is built in it and sent (`busy`), a transmit from inside a callback, on any Nic, gets
 * memory of its own, and so does a frame over 64 KiB plus headers (only a malformed one). Packet memory, so
 * the TCP checksum is summed with SIMD where it lies (simd-sum.ts); byte 0 at NET_IP_ALIGN (2 mod 4). `view`
 * is the last view handed out: frames of one length (MSS-sized, mostly) reuse it.
 */
const txOut: { base: Uint8Array; view: Uint8Array; busy: boolean } = (() => {
  const base = packetMemory(2 + 65536 + 256).subarray(2);
  return { base, view: base, busy: false };
})();

/** A frame buffer whose byte 0 sits at 2 mod 4 (NET_IP_ALIGN): IP and TCP headers and payload 4-byte aligned. */
function alignedFrame(n: number): Uint8Array {
  return new Uint8Array(new ArrayBuffer(n + 2), 2, n);
}
