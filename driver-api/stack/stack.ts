// The kernel's TLS layer for one host: net/tls/tls_main.c (ULP, setsockopt, close), tls_device.c
// (offload setup, records list, resync, device down), tls_device_fallback.c (software encryption of
// offloaded skbs) and the parts of tls_sw.c / tls_strp.c that RX offload touches. SPEC sections 2, 4-8.
import type { AeadBackend } from '../../emulator/crypto/aead.ts';
import { EBADMSG, EINVAL, EIO, EKEYEXPIRED, EMSGSIZE, errnoName } from '../../emulator/errno.ts';
import { ContractError, TlsError, type TlsnicError } from '../../emulator/errors.ts';
import { CIPHER_DESC, TLS_1_2_VERSION, TLS_1_3_VERSION, recSeqToBigInt, bigIntToRecSeq, type CryptoInfo } from '../../emulator/tls/crypto-info.ts';
import { openRecord, tls13RecordAuthenticates } from '../../emulator/tls/record-crypto.ts';
import { CONTENT_APPLICATION_DATA, isKeyUpdate, TLS_HEADER_SIZE, TLS_MAX_PAYLOAD_SIZE, maxRecordLength, recordOverhead } from '../../emulator/tls/record.ts';
import { TcpSegmentView } from '../../emulator/wire/packet.ts';
import { seqAdd, seqDiff, seqGeq } from '../../emulator/wire/seq.ts';
import type {
  FourTuple, NetDevice, SkBuff, Sock, TlsConf, TlsContext, TlsKernelHelpers, TlsOffloadCtxDir, TlsOffloadSyncType,
  TlsTxRecord,
} from '../ops.ts';
import type { RxChunk, TcpSock, TcpUlp } from '../tcp.ts';
import { parseCryptoInfo } from './crypto-info-check.ts';
import { RecordPool } from './record-pool.ts';
import { bodyStart, decryptedContent, encryptFramedRecord, frameOffloadRecord, reencryptRange, rxNonce } from './record-ops.ts';
import { RxResync, type ResyncCall } from './rx-resync.ts';
import { ViolationLog, type ContractViolation, type ViolationCounts } from './violations.ts';
import { emptyTlsStat, formatTlsStat, type TlsStat } from './tls-stat.ts';
import { TxRecordsList, isStartMarker, type TxOffloadRecord } from './tx-records.ts';

/** The largest TCP window (RFC 7323 section 2.3): no device can have seen a byte further ahead than this. */
const MAX_TCP_WINDOW = 1 << 30;

/** Closed sockets remembered so a late helper call names them (a bounded ring: memory stays flat). */
const CLOSED_SOCKS_REMEMBERED = 4096;

export type { ContractViolation, ViolationCounts, ViolationKind } from './violations.ts';

/** A socket's receive buffer (TlsSocket.rxq) is kept between records up to this size. */
const RXQ_KEEP_BYTES = 256 << 10;

/** One tlsdev_ops call the stack made, in order (tests assert sequences of these). */
export type DriverCall = {
  op: 'tls_dev_add' | 'tls_dev_del' | 'tls_dev_resync';
  /** Sock id. */
  sk: number;
  dir: TlsOffloadCtxDir;
  /** start_offload_tcp_sn for add, the resync seq for resync, null for del. */
  seq: number | null;
  /** Record number for add (crypto_info rec_seq) and resync; null for del. */
  rcdSn: bigint | null;
  /** The driver's return value (0 or -errno), null for del; when the driver threw, `threw` says what. */
  result: number | null;
  threw?: string;
};

/** A tlsdev_ops call as a timeline shows it: `tls_dev_resync(rx, seq 1000, rec 7) = 0`. */
export function formatDriverCall(c: DriverCall): string {
  const args = c.op === 'tls_dev_del' ? c.dir : `${c.dir}, seq ${c.seq}, rec ${c.rcdSn}`;
  const res = c.threw !== undefined ? `threw ${c.threw}` : c.result === null ? '' : ` = ${c.result}`;
  return `${c.op}(${args})${res}`;
}

export type TlsStackEvent =
  | { kind: 'driver-call'; call: DriverCall }
  /** A resync helper the driver called (through kernelHelpers()), as `note` shows it, before the stack acts on it. */
  | { kind: 'helper-call'; sk: number; dir: TlsOffloadCtxDir; op: string; seq: number | null; note: string }
  | { kind: 'offload'; sk: number; dir: TlsOffloadCtxDir; mode: 'hw' | 'sw'; reason: string | null }
  | { kind: 'rx-error'; sk: number; errno: number; detail: string }
  /**
   * The tls_device_decrypted tracepoint (net/tls/trace.h): one per record of a TLS_HW RX socket, with
   * whether any of its bytes arrived device-decrypted and whether any arrived still encrypted (both: the
   * record was re-encrypted and opened in software).
   */
  | { kind: 'device-decrypted'; sk: number; seq: number; rcdSn: bigint; len: number; encrypted: boolean; decrypted: boolean }
  | { kind: 'device-down'; netdev: string; sockets: number }
  | { kind: 'contract-violation'; violation: ContractViolation };

export type TlsStackOptions = {
  backend: AeadBackend;
  /** Opt in to TLS 1.3 device offload (the proposed, unmerged kernel series). Default false, as mainline. */
  tls13Offload?: boolean;
  log?: (event: TlsStackEvent) => void;
  /** Keep at most this many entries of callLog (oldest dropped, counted in callLogDropped). Default 1e6. */
  callLogLimit?: number;
};

export type TlsMode = 'hw' | 'sw';

/** struct tls_context, reduced, plus what the model needs to find its socket. */
class TlsCtx implements TlsContext {
  txConf: TlsConf = 'base';
  rxConf: TlsConf = 'base';
  netdev: NetDevice | null = null;
  driverState: { tx: unknown; rx: unknown } = { tx: undefined, rx: undefined };
  constructor(readonly sk: Sock) {}
}

class TlsSock implements Sock {
  tlsCtx!: TlsCtx;
  constructor(readonly id: number, readonly tuple: FourTuple) {}
}

/**
 * Where one offloaded direction stands with the driver: inside tls_dev_add, added, or tls_dev_del called.
 * tls_dev_del is called exactly once, from 'added' (asserted), and helpers are valid only before it.
 */
export type DevState = 'adding' | 'added' | 'deleted';

/** tls_offload_context_tx, reduced. */
type TxOffload = {
  records: TxRecordsList;
  /** TLS_TX_SYNC_SCHED */
  syncSched: boolean;
  dev: DevState;
  /**
   * Send every offloaded skb through tls_encrypt_skb() before the driver sees it (as after tls_device_down):
   * set when tls_dev_add returned 0 yet the device holds no context, so no plaintext can leave unencrypted.
   */
  swFallback: boolean;
  /** The last record the fallback encrypted, reused while consecutive segments fall in it. */
  sealedFor: TxOffloadRecord | null;
  sealed: Uint8Array | null;
};

/** tls_offload_context_rx, reduced. */
type RxOffload = { resync: RxResync; dev: DevState };

/**
 * A socket with the "tls" ULP installed: setsockopt(SOL_TLS, TLS_TX/TLS_RX), sendmsg, the receive path
 * (strparser + tls_rx_one_record), close. It is also the TcpUlp the TCP socket calls back.
 */
export class TlsSocket implements TcpUlp {
  readonly sk: Sock;
  private readonly ctx: TlsCtx;
  txInfo: CryptoInfo | null = null;
  rxInfo: CryptoInfo | null = null;
  txReason: string | null = null;
  rxReason: string | null = null;
  /** sk->sk_err: EBADMSG after a record fails authentication; no more data is delivered after it. */
  error: number | null = null;
  /** What set `error`, with its place. */
  errorDetail: TlsnicError | null = null;
  closed = false;
  /** tls_ctx->tx.rec_seq / rx.rec_seq: number of the next record to send / to receive. */
  private txRecSeq = 0n;
  private rxRecSeq = 0n;
  tx: TxOffload | null = null;
  rx: RxOffload | null = null;
  /** TLS_RX_DEV_DEGRADED: set by tls_device_down(); skips RX resync logic from then on. */
  rxDegraded = false;
  /** A context the stack never added was reported already (at tls_dev_add, or when its bytes came up). */
  leakedRxContextSeen = false;
  private dataCbs: Array<(data: Uint8Array, type?: number) => void> = [];
  // Receive queue as the strparser sees it: the bytes from rxSeq on, copied in as they come (TCP's chunks are
  // the caller's until onReceive returns) into one buffer reused record after record, at rxq[rxqOff, +rxqBytes).
  private rxq: Uint8Array = new Uint8Array(0);
  private rxqOff = 0;
  /** Bytes queued from rxSeq on (tcp_inq() counted from copied_seq). */
  private rxqBytes = 0;
  /** The queued bytes' skb->decrypted flags: one run per chunk as it came, lengths and flags, from runHead on. */
  private runLen: number[] = [];
  private runDecrypted: boolean[] = [];
  private runHead = 0;
  /** tcp copied_seq as the TLS layer consumes: start of the record being parsed. */
  private rxSeq = 0;
  /** Seq just past the last received byte, null before anything arrived. */
  private rxEnd: number | null = null;
  /** Full length of the record whose header was parsed (strp->stm.full_len), 0 when none yet. */
  private rxFullLen = 0;
  private readonly hdr = new Uint8Array(TLS_HEADER_SIZE);

  constructor(
    private readonly stack: TlsStack,
    readonly tcp: TcpSock,
  ) {
    const sk = new TlsSock(tcp.id, tcp.tuple);
    this.ctx = new TlsCtx(sk);
    sk.tlsCtx = this.ctx;
    this.sk = sk;
  }

  get txMode(): TlsMode | null {
    return this.ctx.txConf === 'base' ? null : this.ctx.txConf;
  }
  get rxMode(): TlsMode | null {
    return this.ctx.rxConf === 'base' ? null : this.ctx.rxConf;
  }
  get tlsCtx(): TlsContext {
    return this.ctx;
  }

  /** setsockopt(SOL_TLS, TLS_TX | TLS_RX, crypto_info): models do_tls_setsockopt_conf(). */
  setCryptoInfo(dir: TlsOffloadCtxDir, input: unknown): void {
    if (this.closed) throw new ContractError('setsockopt(SOL_TLS) on a closed socket', { flow: flowName(this.sk), field: dir });
    const conf = dir === 'tx' ? this.ctx.txConf : this.ctx.rxConf;
    if (conf !== 'base') {
      // do_tls_setsockopt_conf(): keys already set. TLS 1.2 can never change them: -EBUSY, counted as a rekey
      // error (the 6.14 rekey series). A TLS 1.3 update (KeyUpdate) is not modelled.
      const tls13 = (dir === 'tx' ? this.txInfo : this.rxInfo)?.version === TLS_1_3_VERSION;
      if (!tls13) this.stack.tlsStat[dir === 'tx' ? 'TlsTxRekeyError' : 'TlsRxRekeyError']++;
      const why = tls13 ? 'a TLS 1.3 key update is not modelled' : '-EBUSY: TLS 1.2 keys are set once per direction';
      throw new ContractError(`TLS_${dir.toUpperCase()} already set (conf ${conf}): ${why}`, { flow: flowName(this.sk), field: dir });
    }
    const info = parseCryptoInfo(input, dir);
    if (dir === 'tx') this.stack.installTx(this, info);
    else this.stack.installRx(this, info);
  }

  /** Set by the stack once a direction's mode is decided. */
  setTx(info: CryptoInfo, conf: TlsMode, reason: string | null, tx: TxOffload | null): void {
    this.txInfo = info;
    this.txRecSeq = recSeqToBigInt(info.recSeq);
    this.txReason = reason;
    this.tx = tx;
    this.ctx.txConf = conf;
  }

  setRx(info: CryptoInfo, conf: TlsMode, reason: string | null, rx: RxOffload | null): void {
    this.rxInfo = info;
    this.rxRecSeq = recSeqToBigInt(info.recSeq);
    this.rxReason = reason;
    this.rx = rx;
    this.ctx.rxConf = conf;
    this.rxSeq = this.tcp.copiedSeq >>> 0;
    this.rxEnd = null;
  }

  /** Expose the record counters for tests and the replay's consistency checks. */
  get txRecordSeq(): bigint {
    return this.txRecSeq;
  }
  get rxRecordSeq(): bigint {
    return this.rxRecSeq;
  }

  /**
   * sendmsg(): one record per call up to 16384 plaintext bytes (tls_push_data closes the record at the end
   * of each write), several records for a longer write. Before TLS_TX is set the bytes go out as plain TCP.
   */
  send(data: Uint8Array, type: number = CONTENT_APPLICATION_DATA): void {
    if (this.closed) throw new ContractError('send on a closed TLS socket', { flow: flowName(this.sk) });
    const info = this.txInfo;
    if (!info || this.ctx.txConf === 'base') {
      this.tcp.queue(data, false);
      this.tcp.push();
      return;
    }
    let off = 0;
    do {
      const n = Math.min(TLS_MAX_PAYLOAD_SIZE, data.length - off);
      this.pushRecord(info, type, data.subarray(off, off + n));
      off += n;
    } while (off < data.length);
    this.tcp.push();
  }

  /**
   * sendfile()/splice() with TLS_TX_ZEROCOPY_RO set: the records' payload is not copied; TCP and the record
   * list reference the page cache pages. Returns those pages (one view per record, in order): writing to
   * them models the file changing while its records are unacknowledged. A retransmit then carries the new
   * bytes under the tag computed over the old ones, and the peer fails the record (EBADMSG), which is why
   * the option is "read-only" (Documentation/networking/tls.rst). In software mode tls_sw encrypts at send
   * time, so the returned views are a private copy and later writes change nothing.
   */
  sendfile(data: Uint8Array): Uint8Array[] {
    if (this.closed) throw new ContractError('sendfile on a closed TLS socket', { flow: flowName(this.sk) });
    const info = this.txInfo;
    if (!info || this.ctx.txConf === 'base') throw new ContractError('sendfile before TLS_TX is set', { flow: flowName(this.sk) });
    const pages: Uint8Array[] = [];
    const pre = bodyStart(info);
    let off = 0;
    do {
      const piece = data.subarray(off, Math.min(data.length, off + TLS_MAX_PAYLOAD_SIZE));
      const framed = this.pushRecord(info, CONTENT_APPLICATION_DATA, piece, true);
      pages.push(framed ? framed.subarray(pre, pre + piece.length) : piece.slice());
      off += piece.length;
    } while (off < data.length);
    this.tcp.push();
    return pages;
  }

  /**
   * models tls_push_record() (device: + tls_device_record_close) / tls_sw's record seal. With `zerocopy`
   * and the device encrypting, TCP references the framed record instead of copying it; returns that record
   * then, else null.
   */
  private pushRecord(info: CryptoInfo, type: number, plaintext: Uint8Array, zerocopy = false): Uint8Array | null {
    const rcdSn = this.txRecSeq;
    const tx = this.tx;
    if (this.ctx.txConf === 'hw' && tx) {
      if (tx.syncSched) this.stack.resyncTx(this, tx, this.tcp.writeSeq >>> 0, rcdSn);
      // Pooled unless handed out as sendfile pages (whoever holds those may read them after the ACK).
      const framed = frameOffloadRecord(info, rcdSn, type, plaintext, zerocopy ? undefined : this.stack.recordPool.take);
      // On the list before TCP sees it: the driver may look it up during this very transmit.
      tx.records.push(this.tcp.writeSeq >>> 0, framed, rcdSn, !zerocopy);
      this.txRecSeq = rcdSn + 1n;
      this.tcp.queue(framed, true, zerocopy);
      return zerocopy ? framed : null;
    }
    const sealed = this.stack.seal(info, rcdSn, type, plaintext);
    this.txRecSeq = rcdSn + 1n;
    this.tcp.queue(sealed, false);
    return null;
  }

  /**
   * Application data as it is read (recvmsg), with its record type (undefined before TLS_RX: the raw stream).
   * `data` is the callback's until it returns: the memory is reused for the next record; copy to keep it.
   */
  onData(cb: (data: Uint8Array, type?: number) => void): void {
    this.dataCbs.push(cb);
  }

  private deliver(data: Uint8Array, type?: number): void {
    for (const cb of this.dataCbs) cb(data, type);
  }

  /** TcpUlp: snd_una moved (models tls_icsk_clean_acked()). */
  onAck(sndUna: number): void {
    if (this.ctx.txConf === 'hw' && this.tx) this.tx.records.cleanAcked(sndUna >>> 0);
  }

  /** TcpUlp: models tls_validate_xmit_skb() / tls_validate_xmit_skb_sw() after tls_device_down(). */
  validateXmit(skb: SkBuff, dev: NetDevice): SkBuff | null {
    if (this.ctx.txConf !== 'hw' || !this.tx) return skb;
    if (this.ctx.netdev === null || this.tx.swFallback) return skb.decrypted ? this.stack.swFallback(this, skb) : skb;
    if (dev === this.ctx.netdev) return skb;
    return this.stack.swFallback(this, skb);
  }

  onPeerClose(): void {}

  /** TcpUlp: sk_destruct, models tls_device_sk_destruct(): the TX context goes now (RX went at close). */
  onDestroy(): void {
    this.stack.destroySocket(this);
  }

  /** TcpUlp: in-order bytes, each chunk with its skb->decrypted flag. */
  onReceive(chunks: readonly RxChunk[]): void {
    if (this.closed) return;
    if (this.ctx.rxConf === 'base' || !this.rxInfo) {
      // No TLS_RX yet: user space reads the TCP stream as is (the handshake).
      for (const c of chunks) this.deliver(c.data, undefined);
      return;
    }
    if (this.error !== null) return;
    for (const c of chunks) this.enqueue(c);
    this.rxParse(this.rxInfo);
  }

  private enqueue(c: RxChunk): void {
    let seq = c.seq >>> 0;
    let data = c.data;
    const expect = this.rxEnd ?? this.rxSeq;
    const d = seqDiff(seq, expect);
    if (d > 0) {
      throw new ContractError(`TCP handed the TLS layer seq ${seq} but the stream is at ${expect} (${d} bytes missing)`, {
        flow: flowName(this.sk), field: 'RxChunk.seq',
      });
    }
    if (d < 0) {
      // Bytes before the TLS start (handshake) or already received: skip them.
      if (-d >= data.length) return;
      data = data.subarray(-d);
      seq = expect;
    }
    if (data.length === 0) return;
    const need = this.rxqBytes + data.length;
    if (this.rxqOff + need > this.rxq.length) {
      if (need <= this.rxq.length) this.rxq.copyWithin(0, this.rxqOff, this.rxqOff + this.rxqBytes);
      else {
        const bigger = new Uint8Array(Math.max(need, 2 * this.rxq.length, 1 << 15));
        bigger.set(this.rxq.subarray(this.rxqOff, this.rxqOff + this.rxqBytes));
        this.rxq = bigger;
      }
      this.rxqOff = 0;
    }
    this.rxq.set(data, this.rxqOff + this.rxqBytes);
    this.runLen.push(data.length);
    this.runDecrypted.push(c.decrypted);
    this.rxqBytes = need;
    this.rxEnd = seqAdd(seq, data.length);
  }

  /** Copy `n` queued bytes from the parse point into `out` (no consumption). */
  private peek(out: Uint8Array, n: number): void {
    for (let i = 0; i < n; i++) out[i] = this.rxq[this.rxqOff + i]!;
  }

  /**
   * Take one whole record off the queue: its bytes, and which record offsets arrived decrypted.
   * Returns [record, decrypted ranges as flat [from, to, from, to...], all decrypted?, none decrypted?].
   */
  private takeRecord(n: number): { rec: Uint8Array; ranges: number[]; all: boolean; none: boolean } {
    // Out of the queue (rxq moves as it is compacted): into the stack's record memory unless that is in use.
    const shared = this.stack.rxRecord;
    let rec: Uint8Array;
    if (shared.busy) rec = this.rxq.slice(this.rxqOff, this.rxqOff + n);
    else {
      if (shared.buf.length < n) shared.buf = new Uint8Array(Math.max(n, 2 * shared.buf.length, 1 << 14));
      rec = shared.buf.subarray(0, n);
      rec.set(this.rxq.subarray(this.rxqOff, this.rxqOff + n));
    }
    const ranges: number[] = [];
    let all = true;
    let none = true;
    for (let w = 0; w < n;) {
      const h = this.runHead;
      const take = Math.min(n - w, this.runLen[h]!);
      if (this.runDecrypted[h]) {
        none = false;
        ranges.push(w, w + take);
      } else all = false;
      w += take;
      this.runLen[h] = this.runLen[h]! - take;
      if (this.runLen[h] === 0) this.runHead++;
    }
    this.rxqOff += n;
    this.rxqBytes -= n;
    if (this.rxqBytes === 0) {
      this.rxqOff = 0;
      // A burst (a hole filled, held bytes let go) grew it: do not keep that much per socket for good.
      if (this.rxq.length > RXQ_KEEP_BYTES) this.rxq = new Uint8Array(0);
    }
    if (this.runHead > 256 && this.runHead * 2 > this.runLen.length) {
      this.runLen = this.runLen.slice(this.runHead);
      this.runDecrypted = this.runDecrypted.slice(this.runHead);
      this.runHead = 0;
    }
    return { rec, ranges, all, none };
  }

  /** The strparser loop (tls_strp + tls_rx_msg_size) and tls_rx_one_record() per complete record. */
  private rxParse(info: CryptoInfo): void {
    while (this.error === null && !this.closed) {
      if (this.rxFullLen === 0) {
        if (this.rxqBytes < TLS_HEADER_SIZE) return;
        this.peek(this.hdr, TLS_HEADER_SIZE);
        const len = this.msgSize(info, this.hdr);
        if (len < 0) return;
        this.rxFullLen = len;
        this.stack.rxResyncNewRec(this, len, this.rxSeq, this.rxRecSeq, this.rxqBytes);
      }
      const full = this.rxFullLen;
      if (this.rxqBytes < full) return;
      const inq = this.rxqBytes;
      const start = this.rxSeq;
      const shared = this.stack.rxRecord;
      const busy = shared.busy;
      try {
        const r = this.takeRecord(full);
        shared.busy = true; // the record is in it (or was copied elsewhere because it was busy already)
        this.rxFullLen = 0;
        this.rxSeq = seqAdd(start, full);
        this.rxOneRecord(info, start, r.rec, r.ranges, r.all, r.none, inq);
      } finally {
        shared.busy = busy;
      }
    }
  }

  /** models tls_rx_msg_size(): the record's full length, or -1 after aborting the socket. */
  private msgSize(info: CryptoInfo, h: Uint8Array): number {
    const length = (h[3]! << 8) | h[4]!;
    const where = { flow: flowName(this.sk), field: `record at seq ${this.rxSeq}` };
    // In tls_rx_msg_size()'s order: too long (EMSGSIZE), too short (EBADMSG), then the version (EINVAL).
    const max = maxRecordLength(info.version, info.cipherType);
    if (length > max) {
      this.abort(EMSGSIZE, new TlsError(`record length ${length} exceeds ${max}`, where));
      return -1;
    }
    const min = recordOverhead(info.version, info.cipherType) - TLS_HEADER_SIZE - (info.version === TLS_1_3_VERSION ? 1 : 0);
    if (length < min) {
      this.abort(EBADMSG, new TlsError(`record length ${length} is below the cipher overhead ${min}`, where));
      return -1;
    }
    if (h[1] !== 3 || h[2] !== 3) {
      this.abort(EINVAL, new TlsError(`record header version ${h[1]}.${h[2]} is not 3.3`, where));
      return -1;
    }
    return TLS_HEADER_SIZE + length;
  }

  /** tls_err_abort(): the socket is dead for reading. */
  abort(errno: number, detail: TlsnicError): void {
    this.error = errno;
    this.errorDetail = detail;
    this.stack.emit({ kind: 'rx-error', sk: this.sk.id, errno, detail: detail.message });
  }

  /** models tls_rx_one_record() -> tls_device_decrypted() / tls_decrypt_sg(). */
  private rxOneRecord(
    info: CryptoInfo, start: number, rec: Uint8Array, ranges: number[], all: boolean, none: boolean, inq: number,
  ): void {
    const rcdSn = this.rxRecSeq;
    let content: { type: number; plaintext: Uint8Array } | null;
    if (this.ctx.rxConf === 'hw' && this.rx) {
      if (this.stack.tracing) {
        this.stack.emit({ kind: 'device-decrypted', sk: this.sk.id, seq: start, rcdSn, len: rec.length, encrypted: !all, decrypted: !none });
      }
      if (all) {
        if (!this.rxDegraded) this.rx.resync.sawDecrypted();
        content = decryptedContent(info, rec);
      } else {
        if (none) {
          if (!this.rxDegraded) {
            const call = this.rx.resync.encryptedRecord(rec.length, seqAdd(start, rec.length), rcdSn, inq);
            if (call) this.stack.resyncRx(this, call);
          }
        } else {
          if (!this.rxDegraded) this.rx.resync.sawDecrypted();
          this.reencrypt(info, rcdSn, rec, ranges);
        }
        content = openRecord(this.stack.backend, info, rcdSn, rec);
      }
    } else {
      // tls_sw never looks at skb->decrypted: a device without a context for this flow never sets it. One that
      // does holds a context the driver leaked (a failed tls_dev_add that installed state anyway); the kernel
      // would fail the record with EBADMSG. Contain it: undo the device's decryption, log the violation once.
      if (!none) {
        if (!this.leakedRxContextSeen) {
          this.leakedRxContextSeen = true;
          this.stack.violation({
            kind: 'decrypted-on-sw-socket', op: 'netif_receive_skb', sk: this.sk.id, flow: flowName(this.sk), dir: 'rx', seq: start,
            what: 'device-decrypted bytes on a socket whose RX is in software: the device holds a context the stack never added '
              + '(tls_dev_add failed or was never called, yet the driver installed one)',
            action: 're-encrypted the device-decrypted bytes (tls_device_reencrypt) and opened every record in software',
          });
        }
        this.reencrypt(info, rcdSn, rec, ranges);
      }
      content = openRecord(this.stack.backend, info, rcdSn, rec);
    }
    if (!content) {
      // tls_decrypt_sw() counts TlsDecryptError for a bad tag only; a TLS 1.3 record that authenticates but holds
      // padding alone (tls_padding_length(): no content type) fails with the same EBADMSG, uncounted.
      const padding = info.version === TLS_1_3_VERSION && (all || tls13RecordAuthenticates(this.stack.backend, info, rcdSn, rec));
      if (!padding) this.stack.tlsStat.TlsDecryptError++;
      this.abort(EBADMSG, new TlsError(padding ? `record ${rcdSn} holds padding alone: no content type` : `record ${rcdSn} failed authentication`, {
        flow: flowName(this.sk), field: `record at seq ${start}`,
      }));
      return;
    }
    this.rxRecSeq = rcdSn + 1n;
    this.deliver(content.plaintext, content.type);
    if (isKeyUpdate(info.version, content.type, content.plaintext)) {
      // models tls_check_pending_rekey(): the peer's keys change after this record, and decryption waits for
      // user space to install the next ones (recvmsg -EKEYEXPIRED); counts TlsRxRekeyReceived. Rekeying
      // (setsockopt TLS_RX again) is not modelled, so reading stops here, without counting a decrypt error.
      this.stack.tlsStat.TlsRxRekeyReceived++;
      this.abort(EKEYEXPIRED, new TlsError(`record ${rcdSn} is a TLS 1.3 KeyUpdate: decryption waits for the next key, and rekeying is not modelled`, {
        flow: flowName(this.sk), field: `record at seq ${start}`,
      }));
    }
  }

  /**
   * Where an RX resync seq stands against the record being parsed: more than the largest TCP window behind
   * ('stale') or ahead ('future') names no segment of this connection the device can have seen. Within the
   * window a seq the stack parsed already is kept, as the kernel keeps it: it never matches, and the device
   * asks again (a device scanning a duplicate segment does that; it is not a contract violation).
   */
  get rxParseSeq(): number {
    return this.rxSeq;
  }

  rxSeqAge(seq: number): 'stale' | 'future' | 'ok' {
    const d = seqDiff(seq >>> 0, this.rxSeq);
    if (d < -MAX_TCP_WINDOW) return 'stale';
    return d > MAX_TCP_WINDOW ? 'future' : 'ok';
  }

  /** tls_device_reencrypt(): make the device-decrypted ranges of a record ciphertext again, in place. */
  private reencrypt(info: CryptoInfo, rcdSn: bigint, rec: Uint8Array, ranges: readonly number[]): void {
    const nonce = rxNonce(info, rcdSn, rec);
    for (let i = 0; i < ranges.length; i += 2) reencryptRange(this.stack.backend, info, nonce, rec, ranges[i]!, ranges[i + 1]!);
  }

  /** close(): models tls_sk_proto_close() (RX device state released now, TX when the socket is destroyed: onDestroy()). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stack.closeSocket(this);
    this.tcp.close();
    // Nothing is read after close: the receive buffer (32 KiB and up) goes with it, or a replay of many
    // connections one after another keeps one per connection it has closed.
    this.rxq = new Uint8Array(0);
    this.rxqOff = this.rxqBytes = 0;
  }
}

function flowName(sk: Sock): string {
  const t = sk.tuple;
  return t.family === 6 ? `[${t.saddr}]:${t.sport}-[${t.daddr}]:${t.dport}` : `${t.saddr}:${t.sport}-${t.daddr}:${t.dport}`;
}

function describeThrow(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** "The kernel": one per host. Implements TlsKernelHelpers except netifReceiveSkb (the host's). */
export class TlsStack implements Omit<TlsKernelHelpers, 'netifReceiveSkb'> {
  readonly backend: AeadBackend;
  readonly tls13Offload: boolean;
  /** /proc/net/tls_stat */
  readonly tlsStat: TlsStat = emptyTlsStat();
  /** Buffers of acknowledged offload records, reused for new ones (see record-pool.ts). */
  readonly recordPool = new RecordPool();
  /**
   * The record a socket is taking off its receive queue, in memory the stack's sockets share: its plaintext is
   * handed to onData callbacks and is theirs until they return (a fresh 16 KiB copy per record was ~7% of an
   * upload replay, in copying and GC). `busy` while a record is in it: a record taken meanwhile (a callback
   * that makes another socket receive) gets memory of its own.
   */
  readonly rxRecord = { buf: new Uint8Array(0), busy: false };
  /** Every tlsdev_ops call made, in order (the newest callLogLimit of them). */
  readonly callLog: DriverCall[] = [];
  /** Calls dropped from the front of callLog to keep it bounded. */
  callLogDropped = 0;
  /** Driver-contract violations the stack contained: listed once each, counted every time. */
  readonly violationLog = new ViolationLog();
  private readonly logFn: ((event: TlsStackEvent) => void) | undefined;
  private readonly callLogLimit: number;
  /** Sockets with the ULP until released (closed, and for an offloaded TX destroyed); then in closedSocks (bounded). */
  private readonly sockets = new Map<Sock, TlsSocket>();
  private readonly closedSocks = new Map<Sock, number>();
  private readonly view = new TcpSegmentView();

  constructor(opts: TlsStackOptions) {
    this.backend = opts.backend;
    this.tls13Offload = opts.tls13Offload ?? false;
    this.logFn = opts.log;
    this.callLogLimit = opts.callLogLimit ?? 1_000_000;
  }

  /** Driver-contract violations, in order, each listed once (see violationLog for counts). */
  get violations(): readonly ContractViolation[] {
    return this.violationLog.list;
  }

  /** Every violation occurrence by kind. */
  get violationCounts(): Readonly<ViolationCounts> {
    return this.violationLog.counts;
  }

  /**
   * The exported symbols a driver links against, bound to this stack, plus the host's netif_receive_skb:
   * what a driver's probe() takes.
   */
  kernelHelpers(netifReceiveSkb: (skb: SkBuff) => void): TlsKernelHelpers {
    // The resync helpers are events too (a timeline draws them next to tlsdev_ops calls).
    const said = (sk: Sock, dir: TlsOffloadCtxDir, op: string, seq: number | null, args: string) => {
      if (this.logFn) this.emit({ kind: 'helper-call', sk: sk.id, dir, op, seq, note: `${op}(${args})` });
    };
    return {
      tlsOffloadRxResyncRequest: (sk, seq) => {
        said(sk, 'rx', 'tls_offload_rx_resync_request', seq, `seq ${seq}`);
        this.tlsOffloadRxResyncRequest(sk, seq);
      },
      tlsOffloadRxResyncAsyncRequestStart: (sk, seq, len) => {
        said(sk, 'rx', 'tls_offload_rx_resync_async_request_start', seq, `seq ${seq}, len ${len}`);
        this.tlsOffloadRxResyncAsyncRequestStart(sk, seq, len);
      },
      tlsOffloadRxResyncAsyncRequestEnd: (sk, seq) => {
        said(sk, 'rx', 'tls_offload_rx_resync_async_request_end', seq, `seq ${seq}`);
        this.tlsOffloadRxResyncAsyncRequestEnd(sk, seq);
      },
      tlsOffloadRxResyncAsyncRequestCancel: (sk) => {
        said(sk, 'rx', 'tls_offload_rx_resync_async_request_cancel', null, '');
        this.tlsOffloadRxResyncAsyncRequestCancel(sk);
      },
      tlsOffloadRxResyncSetType: (sk, type) => this.tlsOffloadRxResyncSetType(sk, type),
      tlsOffloadTxResyncRequest: (sk, got, exp) => {
        said(sk, 'tx', 'tls_offload_tx_resync_request', got, `got ${got}, exp ${exp}`);
        this.tlsOffloadTxResyncRequest(sk, got, exp);
      },
      tlsOffloadTxResyncPending: (sk) => this.tlsOffloadTxResyncPending(sk),
      tlsGetRecord: (sk, seq) => this.tlsGetRecord(sk, seq),
      tlsEncryptSkb: (skb) => this.tlsEncryptSkb(skb),
      netifReceiveSkb,
    };
  }

  violation(v: Omit<ContractViolation, 'repeats'>): void {
    const entry = this.violationLog.add(v);
    if (entry) this.emit({ kind: 'contract-violation', violation: entry });
  }

  emit(event: TlsStackEvent): void {
    this.logFn?.(event);
  }

  /** Someone listens to events: per-record ones (the tracepoint) are built only then. */
  get tracing(): boolean {
    return this.logFn !== undefined;
  }

  formatTlsStat(): string {
    return formatTlsStat(this.tlsStat);
  }

  /** setsockopt(TCP_ULP, "tls"): models tls_init(). */
  attach(tcp: TcpSock): TlsSocket {
    const s = new TlsSocket(this, tcp);
    this.sockets.set(s.sk, s);
    tcp.setUlp(s);
    return s;
  }

  /** Open sockets with the ULP (a closed socket is released, as the kernel frees it). */
  get socketList(): readonly TlsSocket[] {
    return [...this.sockets.values()];
  }

  private record(call: DriverCall): void {
    this.callLog.push(call);
    if (this.callLog.length >= 2 * this.callLogLimit) {
      // Drop in bulk so trimming is amortised O(1) per call.
      const n = this.callLog.length - this.callLogLimit;
      this.callLog.splice(0, n);
      this.callLogDropped += n;
    }
    this.emit({ kind: 'driver-call', call });
  }

  /** Why this direction cannot be offloaded, or null: tls_set_device_offload{,_rx}() checks in kernel order. */
  private offloadRefusal(dir: TlsOffloadCtxDir, netdev: NetDevice, info: CryptoInfo): string | null {
    if (!netdev.tlsdevOps) return `netdev ${netdev.name} has no tlsdev_ops`;
    const f = netdev.features;
    if (dir === 'rx') {
      if (info.version !== TLS_1_2_VERSION && !(info.version === TLS_1_3_VERSION && this.tls13Offload)) {
        return 'TLS 1.3 device offload not enabled (mainline offloads TLS 1.2 only)';
      }
      if (!f.tlsHwRxOffload) return `netdev ${netdev.name} feature tls-hw-rx-offload off`;
    } else {
      if (!f.tlsHwTxOffload) return `netdev ${netdev.name} feature tls-hw-tx-offload off`;
      // netdev_fix_features() drops NETIF_F_HW_TLS_TX without checksum offload.
      if (!f.txChecksumOffload) return `netdev ${netdev.name} tx checksum offload off (TLS TX offload needs it)`;
      if (info.version !== TLS_1_2_VERSION && !(info.version === TLS_1_3_VERSION && this.tls13Offload)) {
        return 'TLS 1.3 device offload not enabled (mainline offloads TLS 1.2 only)';
      }
    }
    // Mainline checks offloadable for TX only and leaves RX to the driver; no driver accepts others.
    const desc = CIPHER_DESC[info.cipherType];
    if (!desc.offloadable) return `cipher ${desc.aead} is not offloadable`;
    if (!netdev.isUp()) return `netdev ${netdev.name} is down`;
    return null;
  }

  /**
   * tls_dev_add through the driver, recorded; a throw counts as a failure. With the device's debug view, checks
   * the outcome against the table: a failure must leave no context, a success must leave one.
   */
  private devAdd(s: TlsSocket, netdev: NetDevice, dir: TlsOffloadCtxDir, info: CryptoInfo, startSn: number): string | null {
    const call: DriverCall = { op: 'tls_dev_add', sk: s.sk.id, dir, seq: startSn, rcdSn: recSeqToBigInt(info.recSeq), result: null };
    // A context already there belongs to an earlier connection on this 4-tuple (leaked, reported at its del).
    const before = netdev.tlsDebugHasContext?.(s.sk.tuple, dir);
    try {
      call.result = netdev.tlsdevOps!.tlsDevAdd(netdev, s.sk, dir, info, startSn);
    } catch (e) {
      call.threw = describeThrow(e);
    }
    this.record(call);
    const failed = call.threw !== undefined ? `threw ${call.threw}` : call.result !== 0 ? `returned ${errnoName(call.result!)}` : null;
    const after = before === false ? netdev.tlsDebugHasContext?.(s.sk.tuple, dir) : undefined;
    if (failed !== null && after === true) {
      if (dir === 'rx') s.leakedRxContextSeen = true; // reported here; the RX path re-encrypts without a second report
      this.violation({
        kind: 'add-failed-left-context', op: 'tls_dev_add', sk: s.sk.id, flow: flowName(s.sk), dir, seq: startSn,
        what: `tls_dev_add ${failed}, yet the device holds a ${dir.toUpperCase()} context for this flow: the device holds a context `
          + 'the stack never added (a leaked handle)',
        action: dir === 'rx'
          ? 'RX in software; bytes the device decrypts anyway are re-encrypted (tls_device_reencrypt) and opened in software'
          : 'TX in software: skbs leave as software-encrypted records, the device context is never referenced',
      });
    } else if (failed === null && after === false) {
      this.violation({
        kind: 'add-ok-no-context', op: 'tls_dev_add', sk: s.sk.id, flow: flowName(s.sk), dir, seq: startSn,
        what: `tls_dev_add returned 0 but the device holds no ${dir.toUpperCase()} context for this flow (installed late, or never)`,
        action: dir === 'rx'
          ? 'RX stays TLS_HW: records the device does not decrypt are decrypted and authenticated in software'
          : 'TX stays TLS_HW but every skb goes through the software fallback (tls_encrypt_skb) before the driver sees it',
      });
      if (dir === 'tx' && s.tx) s.tx.swFallback = true;
    }
    if (failed !== null) return `driver tls_dev_add ${failed}`;
    return null;
  }

  /** models tls_set_device_offload() with the tls_set_sw_offload() fallback of do_tls_setsockopt_conf(). */
  installTx(s: TlsSocket, info: CryptoInfo): void {
    const netdev = s.tcp.netdev;
    let reason = this.offloadRefusal('tx', netdev, info);
    if (reason === null) {
      // Mark the end of what is queued so the first offloaded byte starts a new skb (eor).
      s.tcp.fence();
      const startSn = s.tcp.writeSeq >>> 0;
      const tx: TxOffload = {
        records: new TxRecordsList(startSn, recSeqToBigInt(info.recSeq), this.recordPool.give), syncSched: false, dev: 'adding', swFallback: false,
        sealedFor: null, sealed: null,
      };
      s.setTx(info, 'hw', null, tx); // priv_ctx_tx is visible to the driver during tls_dev_add
      s.tlsCtx.netdev = netdev;
      reason = this.devAdd(s, netdev, 'tx', info, startSn);
      if (reason === null) {
        tx.dev = 'added';
        this.tlsStat.TlsTxDevice++;
        this.tlsStat.TlsCurrTxDevice++;
        this.emit({ kind: 'offload', sk: s.sk.id, dir: 'tx', mode: 'hw', reason: null });
        return;
      }
      if (s.tlsCtx.rxConf !== 'hw') s.tlsCtx.netdev = null;
    }
    s.setTx(info, 'sw', reason, null);
    this.tlsStat.TlsTxSw++;
    this.tlsStat.TlsCurrTxSw++;
    this.emit({ kind: 'offload', sk: s.sk.id, dir: 'tx', mode: 'sw', reason });
  }

  /** models tls_set_device_offload_rx() with the software fallback. Offload starts at copied_seq. */
  installRx(s: TlsSocket, info: CryptoInfo): void {
    const netdev = s.tcp.netdev;
    let reason = this.offloadRefusal('rx', netdev, info);
    if (reason === null) {
      const rx: RxOffload = { resync: new RxResync(), dev: 'adding' };
      s.setRx(info, 'hw', null, rx); // the driver sets the resync type from inside tls_dev_add
      const prevNetdev = s.tlsCtx.netdev;
      s.tlsCtx.netdev = netdev;
      reason = this.devAdd(s, netdev, 'rx', info, s.tcp.copiedSeq >>> 0);
      if (reason === null) {
        rx.dev = 'added';
        this.tlsStat.TlsRxDevice++;
        this.tlsStat.TlsCurrRxDevice++;
        this.emit({ kind: 'offload', sk: s.sk.id, dir: 'rx', mode: 'hw', reason: null });
        return;
      }
      s.tlsCtx.netdev = prevNetdev;
    }
    s.setRx(info, 'sw', reason, null);
    this.tlsStat.TlsRxSw++;
    this.tlsStat.TlsCurrRxSw++;
    this.emit({ kind: 'offload', sk: s.sk.id, dir: 'rx', mode: 'sw', reason });
  }

  /** tls_sw record seal for the software path. */
  seal(info: CryptoInfo, rcdSn: bigint, type: number, plaintext: Uint8Array): Uint8Array {
    return sealRecordSw(this.backend, info, rcdSn, type, plaintext);
  }

  // ---- kernel helpers drivers call ----
  // Each checks that the driver may still name this socket and direction (between tls_dev_add and tls_dev_del,
  // SPEC section 2). A call that may not is a contract violation: logged, then answered with what keeps the
  // data exact (ignored, null, or the skb as it must leave), never a throw into the driver.

  /** The socket behind a helper's `sk`, or null after logging why there is none. */
  private helperSock(sk: Sock, op: string, dir: TlsOffloadCtxDir, seq: number | null, action: string): TlsSocket | null {
    const s = this.sockets.get(sk);
    if (s) return s;
    const id = typeof sk?.id === 'number' ? sk.id : -1;
    const flow = sk?.tuple ? flowName(sk) : '?';
    if (this.closedSocks.has(sk)) {
      this.violation({
        kind: 'helper-after-del', op, sk: id, flow, dir, seq, action,
        what: `${op}() on a closed socket: tls_dev_del was called for every direction it had offloaded`,
      });
    } else {
      this.violation({ kind: 'helper-unknown-socket', op, sk: id, flow, dir, seq, action, what: `${op}() on a socket without the tls ULP` });
    }
    return null;
  }

  /** The socket and its offload state for `dir`, when a driver may still use them; else null after logging. */
  private helperDir<D extends TlsOffloadCtxDir>(
    sk: Sock, op: string, dir: D, seq: number | null, action: string,
  ): { s: TlsSocket; off: D extends 'tx' ? TxOffload : RxOffload } | null {
    const s = this.helperSock(sk, op, dir, seq, action);
    if (!s) return null;
    const off = dir === 'tx' ? s.tx : s.rx;
    const flow = flowName(s.sk);
    if (!off) {
      const mode = dir === 'tx' ? s.txMode : s.rxMode;
      this.violation({
        kind: 'helper-not-offloaded', op, sk: s.sk.id, flow, dir, seq, action,
        what: `${op}() on a socket whose ${dir.toUpperCase()} is ${mode === 'sw' ? 'in software (tls_dev_add failed or was refused)' : 'not set up'}`,
      });
      return null;
    }
    if (off.dev === 'deleted') {
      this.violation({
        kind: 'helper-after-del', op, sk: s.sk.id, flow, dir, seq, action,
        what: `${op}() after tls_dev_del(${dir}) for this socket (a late answer, or a callback from inside tls_dev_del)`,
      });
      return null;
    }
    return { s, off: off as D extends 'tx' ? TxOffload : RxOffload };
  }

  /** An RX resync seq outside the TCP window around the parse point: report it and return true. */
  private outOfWindow(s: TlsSocket, op: string, seq: number, action: string): boolean {
    const age = s.rxSeqAge(seq);
    if (age === 'ok') return false;
    this.violation({
      kind: age === 'stale' ? 'resync-seq-stale' : 'resync-seq-future', op, sk: s.sk.id, flow: flowName(s.sk), dir: 'rx', seq: seq >>> 0, action,
      what: `seq ${seq >>> 0} is more than the largest TCP window (2^30) ${age === 'stale' ? 'behind' : 'ahead of'} the record being `
        + `parsed (seq ${s.rxParseSeq}): no segment of this connection the device can have seen`,
    });
    return true;
  }

  tlsOffloadRxResyncRequest(sk: Sock, seq: number): void {
    const op = 'tls_offload_rx_resync_request';
    const ignored = 'request ignored: the device waits for an answer until it asks again; records are decrypted in software meanwhile';
    const h = this.helperDir(sk, op, 'rx', seq >>> 0, ignored);
    if (!h) return;
    if (this.outOfWindow(h.s, op, seq, ignored)) return;
    h.off.resync.request(seq);
  }

  tlsOffloadRxResyncAsyncRequestStart(sk: Sock, seq: number, len: number): void {
    const op = 'tls_offload_rx_resync_async_request_start';
    const ignored = 'request ignored: no header log is opened; records are decrypted in software meanwhile';
    const h = this.helperDir(sk, op, 'rx', seq >>> 0, ignored);
    if (!h) return;
    if (this.outOfWindow(h.s, op, seq, ignored)) return;
    h.off.resync.asyncStart(seq, len);
  }

  /**
   * models tls_offload_rx_resync_async_request_end(): it sets the request word whatever it held, so an answer
   * with no request open (a second GET_PSV's, after the first was matched or cancelled) arms a new sync stage.
   */
  tlsOffloadRxResyncAsyncRequestEnd(sk: Sock, seq: number): void {
    const op = 'tls_offload_rx_resync_async_request_end';
    const ignored = 'answer ignored: no tls_dev_resync follows from it; records are decrypted in software meanwhile';
    const h = this.helperDir(sk, op, 'rx', seq >>> 0, ignored);
    if (!h) return;
    if (this.outOfWindow(h.s, op, seq, `${ignored} (the request stays open)`)) return;
    h.off.resync.asyncEnd(seq);
  }

  tlsOffloadRxResyncAsyncRequestCancel(sk: Sock): void {
    this.helperDir(sk, 'tls_offload_rx_resync_async_request_cancel', 'rx', null, 'ignored')?.off.resync.asyncCancel();
  }

  tlsOffloadRxResyncSetType(sk: Sock, type: TlsOffloadSyncType): void {
    const h = this.helperDir(sk, 'tls_offload_rx_resync_set_type', 'rx', null, 'ignored');
    if (h) h.off.resync.type = type;
  }

  /** models tls_offload_tx_resync_request(): TLS_TX_SYNC_SCHED; the next pushed record resyncs. */
  tlsOffloadTxResyncRequest(sk: Sock, gotSeq: number, _expSeq: number): void {
    const h = this.helperDir(sk, 'tls_offload_tx_resync_request', 'tx', gotSeq >>> 0, 'request ignored: no tls_dev_resync(TX) follows');
    if (h) h.off.syncSched = true;
  }

  tlsOffloadTxResyncPending(sk: Sock): boolean {
    return this.helperDir(sk, 'tls_offload_tx_resync_pending', 'tx', null, 'answered false')?.off.syncSched ?? false;
  }

  /** models tls_get_record(); the start marker comes back as a zero-length record at start_offload_tcp_sn. */
  tlsGetRecord(sk: Sock, seq: number): { record: TlsTxRecord; rcdSn: bigint } | null {
    const op = 'tls_get_record';
    const none = 'answered no record (the driver drops the segment; TCP retransmits it)';
    const h = this.helperDir(sk, op, 'tx', seq >>> 0, none);
    if (!h) return null;
    if (seqGeq(seq >>> 0, h.s.tcp.writeSeq >>> 0)) {
      this.violation({
        kind: 'get-record-out-of-range', op, sk: h.s.sk.id, flow: flowName(h.s.sk), dir: 'tx', seq: seq >>> 0, action: none,
        what: `seq ${seq >>> 0} was never sent (write_seq is ${h.s.tcp.writeSeq >>> 0})`,
      });
      return null;
    }
    const rec = h.off.records.get(seq >>> 0);
    return rec ? { record: rec, rcdSn: rec.rcdSn } : null;
  }

  /**
   * tls_encrypt_skb() as a driver calls it. After tls_dev_del the records are still held and the copy is still
   * right, so it is made (and the call reported); on a socket without TX offload the skb is already what must
   * leave (software records), so it comes back unchanged, unless it claims to need encryption: then drop.
   */
  tlsEncryptSkb(skb: SkBuff): SkBuff | null {
    const op = 'tls_encrypt_skb';
    const asIs = skb.decrypted ? 'dropped the skb (it claims plaintext to encrypt, but there is no key for it)'
      : 'returned the skb unchanged (its payload is already what goes on the wire)';
    if (!skb.sk) {
      this.violation({ kind: 'helper-unknown-socket', op, sk: -1, flow: '?', dir: 'tx', seq: null, action: asIs, what: 'tls_encrypt_skb() on an skb without a socket' });
      return skb.decrypted ? null : skb;
    }
    const s = this.helperSock(skb.sk, op, 'tx', null, asIs);
    if (!s) return skb.decrypted ? null : skb;
    if (!s.tx || !s.txInfo) {
      this.violation({
        kind: 'helper-not-offloaded', op, sk: s.sk.id, flow: flowName(s.sk), dir: 'tx', seq: null, action: asIs,
        what: `tls_encrypt_skb() on a socket whose TX is ${s.txMode === 'sw' ? 'in software' : 'not set up'}`,
      });
      return skb.decrypted ? null : skb;
    }
    if (s.tx.dev === 'deleted') {
      this.violation({
        kind: 'helper-after-del', op, sk: s.sk.id, flow: flowName(s.sk), dir: 'tx', seq: null,
        what: 'tls_encrypt_skb() after tls_dev_del(tx) for this socket',
        action: 'encrypted in software anyway: the records list is still held, the copy is what the device would have sent',
      });
    }
    return this.swFallback(s, skb);
  }

  /**
   * models tls_sw_fallback() / tls_encrypt_skb(): a copy of the skb whose payload is what the device would
   * have sent. Each record overlapping the payload is encrypted whole in software with its record number and
   * the overlapping bytes copied in; bytes before the start marker (pre-offload) are copied as they are.
   * Null (drop) when a byte belongs to no record (already acknowledged).
   */
  swFallback(s: TlsSocket, skb: SkBuff): SkBuff | null {
    const tx = s.tx;
    const info = s.txInfo;
    if (!tx || !info) throw new ContractError('stack bug: software fallback on a socket without TX offload', { flow: flowName(s.sk) });
    const v = this.view;
    if (v.parse(skb.data) !== 'tcp') return null;
    const len = v.payloadLength;
    if (len === 0) return skb;
    const seq = v.seq;
    const out = Uint8Array.from(skb.data);
    const base = v.payloadOffset;
    let pos = 0;
    while (pos < len) {
      const at = seqAdd(seq, pos);
      const rec = tx.records.get(at);
      if (!rec) return null;
      if (isStartMarker(rec)) {
        // models tls_sw_fallback(): a segment wholly before the start marker leaves as it is; one that
        // straddles it cannot be encrypted (fill_sg_in() fails), so tls_encrypt_skb() returns NULL: drop.
        return seqDiff(rec.startSeq, seqAdd(seq, len)) >= 0 ? skb : null;
      }
      if (tx.sealedFor !== rec) {
        tx.sealed = encryptFramedRecord(this.backend, info, rec.rcdSn, rec.data);
        tx.sealedFor = rec;
      }
      const off = seqDiff(at, rec.startSeq);
      const n = Math.min(len - pos, rec.data.length - off);
      out.set(tx.sealed!.subarray(off, off + n), base + pos);
      pos += n;
    }
    v.parse(out);
    v.updateTcpChecksum();
    return { data: out, sk: skb.sk, decrypted: false, gsoSize: skb.gsoSize };
  }

  // ---- resync calls the stack makes ----

  /** models tls_device_resync_tx(): eor on the queue tail, then tls_dev_resync(TX); failure stays pending. */
  resyncTx(s: TlsSocket, tx: TxOffload, seq: number, rcdSn: bigint): void {
    s.tcp.fence();
    const netdev = s.tlsCtx.netdev;
    let err = 0;
    // Not after tls_dev_del, nor for a device that holds no context (the fallback encrypts everything then).
    if (netdev && tx.dev === 'added' && !tx.swFallback) err = this.devResync(s, netdev, 'tx', seq, rcdSn);
    if (err === 0) tx.syncSched = false;
  }

  /** models tls_device_resync_rx(): counts TlsRxDeviceResync for every attempt, as the kernel does. */
  resyncRx(s: TlsSocket, call: ResyncCall): void {
    const netdev = s.tlsCtx.netdev;
    if (netdev && s.rx?.dev === 'added') this.devResync(s, netdev, 'rx', call.seq, call.rcdSn);
    this.tlsStat.TlsRxDeviceResync++;
  }

  private devResync(s: TlsSocket, netdev: NetDevice, dir: TlsOffloadCtxDir, seq: number, rcdSn: bigint): number {
    const call: DriverCall = { op: 'tls_dev_resync', sk: s.sk.id, dir, seq: seq >>> 0, rcdSn, result: null };
    try {
      call.result = netdev.tlsdevOps!.tlsDevResync(netdev, s.sk, seq >>> 0, bigIntToRecSeq(rcdSn), dir);
    } catch (e) {
      call.threw = describeThrow(e);
      call.result = -EIO;
    }
    this.record(call);
    return call.result!;
  }

  /** The strparser parsed a header: models tls_device_rx_resync_new_rec(). */
  rxResyncNewRec(s: TlsSocket, rcdLen: number, seq: number, rcdSn: bigint, inq: number): void {
    if (s.tlsCtx.rxConf !== 'hw' || !s.rx || s.rxDegraded) return;
    const call = s.rx.resync.newRecord(rcdLen, seq, rcdSn, inq);
    if (call) this.resyncRx(s, call);
  }

  /**
   * tls_dev_del, exactly once per added direction: asserted (a second call is a stack bug, thrown). The state
   * moves to 'deleted' before the call, so a driver calling a helper back from inside tls_dev_del is refused
   * and reported. Afterwards the device's debug view must no longer hold the context (else: leaked handle).
   */
  private devDel(s: TlsSocket, netdev: NetDevice, dir: TlsOffloadCtxDir): void {
    const off = dir === 'tx' ? s.tx : s.rx;
    if (!off || off.dev !== 'added') {
      throw new ContractError(`stack bug: tls_dev_del(${dir}) for a direction ${off ? off.dev : 'never offloaded'}; it is called exactly once per added direction`, {
        flow: flowName(s.sk), field: `tls_dev_del(${dir})`,
      });
    }
    off.dev = 'deleted';
    const call: DriverCall = { op: 'tls_dev_del', sk: s.sk.id, dir, seq: null, rcdSn: null, result: null };
    try {
      netdev.tlsdevOps!.tlsDevDel(netdev, s.tlsCtx, dir);
    } catch (e) {
      call.threw = describeThrow(e);
    }
    this.record(call);
    if (netdev.tlsDebugHasContext?.(s.sk.tuple, dir)) {
      this.violation({
        kind: 'del-left-context', op: 'tls_dev_del', sk: s.sk.id, flow: flowName(s.sk), dir, seq: null,
        what: `tls_dev_del${call.threw !== undefined ? ` threw ${call.threw} and` : ''} returned with the device still holding this flow's `
          + `${dir.toUpperCase()} context: a leaked handle (its table slot is never freed)`,
        action: 'nothing more goes to the device for this socket; a later connection on the same 4-tuple gets no context '
          + '(-EEXIST) and runs in software, and once leaks fill the table every new flow does (-ENOSPC)',
      });
    }
  }

  /**
   * Socket close, models tls_sk_proto_close() -> tls_sk_proto_cleanup(): RX's tls_dev_del now, gauges down. An
   * offloaded TX keeps its context and netdev until the socket is destroyed (destroySocket()): data still queued
   * and retransmissions after close() leave through the device, as they do from tls_device_sk_destruct() on.
   */
  closeSocket(s: TlsSocket): void {
    const netdev = s.tlsCtx.netdev;
    if (s.rx?.dev === 'added' && netdev) this.devDel(s, netdev, 'rx');
    if (s.txMode === 'hw') this.tlsStat.TlsCurrTxDevice--;
    else if (s.txMode === 'sw') this.tlsStat.TlsCurrTxSw--;
    if (s.rxMode === 'hw') this.tlsStat.TlsCurrRxDevice--;
    else if (s.rxMode === 'sw') this.tlsStat.TlsCurrRxSw--;
    if (!(s.tx?.dev === 'added' && netdev)) this.release(s);
  }

  /** sk_destruct, models tls_device_sk_destruct() -> tls_device_tx_del_task(): TX's tls_dev_del, then the socket goes. */
  destroySocket(s: TlsSocket): void {
    if (this.sockets.get(s.sk) !== s) return; // released at close already
    const netdev = s.tlsCtx.netdev;
    if (s.tx?.dev === 'added' && netdev) this.devDel(s, netdev, 'tx');
    this.release(s);
  }

  /** tls_ctx_free: the socket is released; a bounded number are remembered so late helper calls still name it. */
  private release(s: TlsSocket): void {
    this.sockets.delete(s.sk);
    this.closedSocks.set(s.sk, s.sk.id);
    if (this.closedSocks.size > CLOSED_SOCKS_REMEMBERED) this.closedSocks.delete(this.closedSocks.keys().next().value!);
    s.tlsCtx.netdev = null;
  }

  /**
   * NETDEV_DOWN: models tls_device_down(). TX keeps its records but goes through the software fallback,
   * RX is degraded (device-decrypted records still accepted, no resync), tls_dev_del once per direction.
   * The TlsCurr* gauges do not move: the sockets keep tx_conf/rx_conf TLS_HW, as in the kernel.
   */
  netdevDown(netdev: NetDevice): void {
    let n = 0;
    // Closed sockets whose TX context waits for their destruction too (tls_device_down walks every context).
    for (const s of this.sockets.values()) {
      if (s.tlsCtx.netdev !== netdev) continue;
      n++;
      s.tlsCtx.netdev = null;
      s.rxDegraded = true;
      if (s.tx?.dev === 'added') {
        s.tx.syncSched = false;
        this.devDel(s, netdev, 'tx');
      }
      if (s.rx?.dev === 'added') this.devDel(s, netdev, 'rx');
    }
    this.emit({ kind: 'device-down', netdev: netdev.name, sockets: n });
  }
}

/** tls_sw record protection (tls_sw_sendmsg path): header, explicit nonce, ciphertext, tag. */
function sealRecordSw(backend: AeadBackend, info: CryptoInfo, rcdSn: bigint, type: number, plaintext: Uint8Array): Uint8Array {
  // Same bytes the device produces from frameOffloadRecord(), by construction.
  return encryptFramedRecord(backend, info, rcdSn, frameOffloadRecord(info, rcdSn, type, plaintext));
}
