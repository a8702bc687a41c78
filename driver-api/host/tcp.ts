// TCP endpoints for the host model: enough of RFC 9293 to carry a TLS connection through the emulated NIC
// the way Linux TCP feeds tls_device: a write queue of skbs that keep their `decrypted` (offload) mark and
// collapse fences, MSS/TSO segmentation, cumulative ACKs, RFC 6298 RTO with backoff, RFC 5681 fast
// retransmit with RFC 6582 NewReno partial-ACK recovery, and an out-of-order queue that keeps each piece's
// skb->decrypted flag (tcp_data_queue_ofo never coalesces across it). Immediate ACKs, no window scaling,
// no SACK: deterministic and small rather than fast.
import { ContractError } from '../../emulator/errors.ts';
import { buildTcpFrame, FLAG_ACK, FLAG_FIN, FLAG_PSH, FLAG_RST, FLAG_SYN } from '../../emulator/wire/builder.ts';
import type { TcpSegmentView } from '../../emulator/wire/packet.ts';
import { seqAdd, seqDiff, seqGeq, seqGt, seqInRange, seqLeq, seqLt, seqMax } from '../../emulator/wire/seq.ts';
import type { FourTuple, NetDevice, SkBuff, Sock } from '../ops.ts';
import type { RxChunk, TcpSock, TcpUlp } from '../tcp.ts';
import type { Sim, TimerHandle } from './sim.ts';

/** RFC 9293 3.3.2 states (LISTEN lives in the Host). */
export type TcpState =
  | 'syn-sent'
  | 'syn-received'
  | 'established'
  | 'fin-wait-1'
  | 'fin-wait-2'
  | 'close-wait'
  | 'closing'
  | 'last-ack'
  | 'time-wait'
  | 'closed';

/** Spelled as /proc/net/snmp (Tcp:) and /proc/net/netstat (TcpExt:) spell them. */
export type TcpCounters = {
  ActiveOpens: number;
  PassiveOpens: number;
  InSegs: number;
  OutSegs: number;
  RetransSegs: number;
  InErrs: number;
  InCsumErrors: number;
  OutRsts: number;
  EstabResets: number;
  TCPTimeouts: number;
  TCPFastRetrans: number;
  TCPOFOQueue: number;
  /** Segments the ULP's validate_xmit hook (tls_validate_xmit_skb) dropped. Not a kernel MIB. */
  ValidateXmitDrops: number;
};

export function newTcpCounters(): TcpCounters {
  return {
    ActiveOpens: 0, PassiveOpens: 0, InSegs: 0, OutSegs: 0, RetransSegs: 0, InErrs: 0, InCsumErrors: 0,
    OutRsts: 0, EstabResets: 0, TCPTimeouts: 0, TCPFastRetrans: 0, TCPOFOQueue: 0, ValidateXmitDrops: 0,
  };
}

export type TcpConfig = {
  /** MSS we announce and send at most (before the peer's MSS option lowers it). */
  mss: number;
  /** Hand the device TSO super-segments (skb->gso_size = mss) instead of MSS-sized frames. */
  tso: boolean;
  /** Largest TSO payload (GSO_MAX_SIZE minus headers, rounded to MSS). */
  tsoMaxBytes: number;
  /** Receive buffer = advertised window (no window scaling: at most 65535). */
  rcvBuf: number;
  initialRtoUs: number;
  minRtoUs: number;
  maxRtoUs: number;
  /** tcp_retries2 / tcp_syn_retries: RTO expiries before the connection is aborted (ETIMEDOUT). */
  maxRetries: number;
  synRetries: number;
};

export const DEFAULT_TCP_CONFIG: TcpConfig = {
  mss: 1460,
  tso: false,
  tsoMaxBytes: 65000,
  rcvBuf: 65535,
  initialRtoUs: 1_000_000, // RFC 6298 2.1
  minRtoUs: 200_000, // Linux TCP_RTO_MIN
  maxRtoUs: 120_000_000, // Linux TCP_RTO_MAX
  maxRetries: 15,
  synRetries: 6,
};

/** What a socket needs from its host. */
export interface TcpEnv {
  readonly sim: Sim;
  readonly netdev: NetDevice;
  readonly counters: TcpCounters;
  readonly mac: Uint8Array;
  readonly peerMac: Uint8Array;
  /** A passive socket completed the handshake (hand it to the listener's accept callback). */
  accepted(sock: TcpSocket): void;
  /** The socket reached CLOSED: remove it from the demux table. */
  forget(sock: TcpSocket): void;
}

/** One write-queue skb: bytes [seq, seq+len) with one offload mark. */
type TxSkb = { seq: number; buf: Uint8Array; len: number; offloaded: boolean; closed: boolean };

const MAX_WINDOW = 65535;

export class TcpSocket implements TcpSock {
  state: TcpState;
  /** The ops.ts struct sock the ULP/TLS context gives (skb->sk on every segment sent). */
  sock: Sock | null = null;
  /** Why the connection ended abnormally, errno-style. */
  error: 'ECONNRESET' | 'ECONNREFUSED' | 'ETIMEDOUT' | null = null;
  readonly iss: number;
  irs = 0;

  // send side (RFC 9293 3.3.1 names)
  private una: number;
  private nxt: number;
  /** Highest seq sent so far (snd_nxt before a go-back-N rewind). */
  private sndMax: number;
  private sndWnd = MAX_WINDOW;
  private wseq: number;
  private readonly sndBuf: TxSkb[] = [];
  private fenceNext = false;
  private finQueued = false;
  /** The application called close(); `destroyed`: the ULP was told the socket is gone (maybeDestroy()). */
  private appClosed = false;
  private destroyed = false;
  private finSeq = 0;
  private peerMss = 536; // RFC 9293 3.7.1 default when no option

  // congestion control (RFC 5681 / 6582)
  private cwnd: number;
  private ssthresh = 0x7fffffff;
  private dupAcks = 0;
  private inRecovery = false;
  private recover = 0;

  // RTO (RFC 6298)
  private srtt = -1;
  private rttvar = 0;
  private rto: number;
  private retries = 0;
  private rtoTimer: TimerHandle | null = null;
  private rttTiming = false;
  private rttSeq = 0;
  private rttSentAt = 0;

  // receive side
  private rcvNxt = 0;
  private copied = 0;
  private ofo: RxChunk[] = [];
  private peerFinSeq: number | null = null;
  private peerClosed = false;
  private ackPending = false;

  private ulp: TcpUlp | null = null;
  private dataCb: ((data: Uint8Array) => void) | null = null;
  private closeCb: (() => void) | null = null;
  private endCb: ((err: TcpSocket['error']) => void) | null = null;
  private estCb: (() => void) | null = null;

  constructor(
    private readonly env: TcpEnv,
    readonly id: number,
    readonly tuple: FourTuple,
    private readonly cfg: TcpConfig,
    iss: number,
    passive: { irs: number; peerMss: number | null; window: number } | null,
  ) {
    this.iss = iss >>> 0;
    this.una = this.iss;
    this.nxt = seqAdd(this.iss, 1);
    this.sndMax = this.nxt;
    this.wseq = this.nxt;
    this.rto = cfg.initialRtoUs;
    this.cwnd = 10 * cfg.mss; // RFC 6928 initial window
    if (passive) {
      this.state = 'syn-received';
      this.irs = passive.irs;
      this.rcvNxt = seqAdd(passive.irs, 1);
      this.copied = this.rcvNxt;
      if (passive.peerMss !== null) this.peerMss = passive.peerMss;
      this.sndWnd = passive.window;
    } else {
      this.state = 'syn-sent';
    }
  }

  // ---- TcpSock ------------------------------------------------------------------------------------

  get writeSeq(): number {
    return this.wseq;
  }
  get sndUna(): number {
    return this.una;
  }
  get sndNxt(): number {
    return this.nxt;
  }
  get copiedSeq(): number {
    return this.copied;
  }
  get rcvNxtSeq(): number {
    return this.rcvNxt;
  }
  get netdev(): NetDevice {
    return this.env.netdev;
  }
  /** Effective send MSS: ours, lowered by the peer's MSS option. */
  get mss(): number {
    return Math.min(this.cfg.mss, this.peerMss);
  }
  /** Current retransmission timeout (µs), backoff included. */
  get rtoUs(): number {
    return this.rto;
  }

  setUlp(ulp: TcpUlp): void {
    this.ulp = ulp;
  }

  // models tcp_sendmsg(): append to the tail skb while it is unsent, has room, has the same mark and no
  // fence stands after it (tcp_skb_can_collapse_to / tcp_write_collapse_fence)
  queue(data: Uint8Array, offloaded: boolean, zerocopy = false): void {
    if (this.finQueued || this.state === 'closed') {
      throw new ContractError(`queue() on a socket in state ${this.state}${this.finQueued ? ' after close()' : ''}`, { flow: this.flow() });
    }
    if (zerocopy) {
      // An skb of its own whose frag is the caller's memory: nothing coalesces into it (skb_zcopy).
      if (data.length === 0) return;
      this.sndBuf.push({ seq: this.wseq, buf: data, len: data.length, offloaded, closed: true });
      this.wseq = seqAdd(this.wseq, data.length);
      return;
    }
    const goal = this.cfg.tso ? Math.max(this.mss, Math.floor(this.cfg.tsoMaxBytes / this.mss) * this.mss) : this.mss;
    let off = 0;
    while (off < data.length) {
      let tail = this.sndBuf[this.sndBuf.length - 1];
      if (!tail || tail.closed || tail.offloaded !== offloaded || tail.len === tail.buf.length || this.fenceNext) {
        tail = { seq: this.wseq, buf: new Uint8Array(goal), len: 0, offloaded, closed: false };
        this.sndBuf.push(tail);
        this.fenceNext = false;
      }
      const n = Math.min(data.length - off, tail.buf.length - tail.len);
      tail.buf.set(data.subarray(off, off + n), tail.len);
      tail.len += n;
      off += n;
      this.wseq = seqAdd(this.wseq, n);
    }
  }

  fence(): void {
    this.fenceNext = true;
  }

  push(): void {
    this.output();
  }

  close(): void {
    this.appClosed = true;
    if (this.finQueued || this.state === 'closed') {
      this.maybeDestroy();
      return;
    }
    this.finQueued = true;
    this.finSeq = this.wseq;
    if (this.state === 'established') this.state = 'fin-wait-1';
    else if (this.state === 'close-wait') this.state = 'last-ack';
    this.output();
  }

  // ---- plain byte-stream API for tests (no ULP) ---------------------------------------------------

  write(data: Uint8Array): void {
    this.queue(data, false);
    this.push();
  }
  onData(cb: (data: Uint8Array) => void): void {
    this.dataCb = cb;
  }
  /** The peer's FIN was consumed in order. */
  onPeerClose(cb: () => void): void {
    this.closeCb = cb;
  }
  /** Aborted by RST or timeout: the errno. */
  onError(cb: (err: TcpSocket['error']) => void): void {
    this.endCb = cb;
  }
  onEstablished(cb: () => void): void {
    this.estCb = cb;
  }

  // ---- opening ------------------------------------------------------------------------------------

  /** Active open: send the SYN (the host registers the socket first). */
  openActive(): void {
    this.env.counters.ActiveOpens++;
    this.sendSyn(false, false);
  }

  /** Passive open: answer the SYN with a SYN-ACK. */
  openPassive(): void {
    this.env.counters.PassiveOpens++;
    this.sendSyn(true, false);
  }

  private sendSyn(ack: boolean, retrans: boolean): void {
    if (retrans) this.env.counters.RetransSegs++;
    const m = this.cfg.mss;
    this.emit(this.iss, ack ? FLAG_SYN | FLAG_ACK : FLAG_SYN, null, false, 0, Uint8Array.of(2, 4, m >>> 8, m & 0xff));
    if (!retrans) this.startTiming(seqAdd(this.iss, 1));
    this.armRto();
  }

  // ---- input --------------------------------------------------------------------------------------

  /** One segment for this socket (checksum already verified by the host); `decrypted` is skb->decrypted. */
  input(v: TcpSegmentView, decrypted: boolean): void {
    const flags = v.flags;
    if (this.state === 'closed') return;
    if (this.state === 'syn-sent') {
      this.inputSynSent(v, flags);
      return;
    }
    const seq = v.seq;
    if (flags & FLAG_RST) {
      // RFC 5961 3.2 (relaxed): accept a RST whose seq is inside the receive window
      if (seqInRange(seq, this.rcvNxt, seqAdd(this.rcvNxt, this.cfg.rcvBuf + 1))) {
        if (this.state === 'established' || this.state === 'close-wait') this.env.counters.EstabResets++;
        this.abort('ECONNRESET');
      }
      return;
    }
    if (flags & FLAG_SYN) {
      if (this.state === 'syn-received' && seq === this.irs) this.sendSyn(true, true); // SYN retransmitted
      else this.sendAck(); // our ACK of their SYN-ACK was lost, or garbage: (challenge) ACK
      return;
    }
    if (!(flags & FLAG_ACK)) return;
    const ack = v.ack;
    if (this.state === 'syn-received') {
      if (ack !== seqAdd(this.iss, 1)) {
        this.sendRst(ack);
        return;
      }
      this.state = 'established';
      this.establish(ack, v.window);
      this.env.accepted(this);
      this.estCb?.();
    } else if (seqGt(ack, this.sndMax)) {
      this.sendAck(); // acks something not yet sent (RFC 9293 3.10.7.4)
      return;
    } else if (seqGt(ack, this.una)) {
      this.sndWnd = v.window;
      this.onNewAck(ack);
    } else if (ack === this.una) {
      const isDup = v.payloadLength === 0 && !(flags & FLAG_FIN) && v.window === this.sndWnd && this.una !== this.sndMax;
      this.sndWnd = v.window;
      if (isDup) this.onDupAck();
    }
    if ((this.state as TcpState) === 'closed') return; // onNewAck may have finished the socket
    this.receive(v, decrypted);
    this.output();
  }

  private inputSynSent(v: TcpSegmentView, flags: number): void {
    const ackOk = (flags & FLAG_ACK) !== 0 && v.ack === seqAdd(this.iss, 1);
    if (flags & FLAG_ACK && !ackOk) {
      if (!(flags & FLAG_RST)) this.sendRst(v.ack);
      return;
    }
    if (flags & FLAG_RST) {
      if (ackOk) this.abort('ECONNREFUSED');
      return;
    }
    if (!(flags & FLAG_SYN) || !ackOk) return; // simultaneous open: not modelled
    this.irs = v.seq;
    this.rcvNxt = seqAdd(v.seq, 1);
    this.copied = this.rcvNxt;
    const m = parseMssOption(v);
    if (m !== null) this.peerMss = m;
    this.state = 'established';
    this.establish(v.ack, v.window);
    this.sendAck();
    this.estCb?.();
    this.output();
  }

  private establish(ack: number, window: number): void {
    if (this.rttTiming) this.rttSample(this.env.sim.now - this.rttSentAt);
    this.rttTiming = false;
    this.una = ack;
    this.sndWnd = window;
    this.retries = 0;
    this.stopRto();
  }

  // models tcp_ack() for an ACK that advances snd_una (tcp_clean_rtx_queue + tcp_cong_avoid)
  private onNewAck(ack: number): void {
    const acked = seqDiff(ack, this.una);
    if (this.rttTiming && seqGeq(ack, this.rttSeq)) {
      this.rttSample(this.env.sim.now - this.rttSentAt);
      this.rttTiming = false;
    }
    while (this.sndBuf.length > 0) {
      const h = this.sndBuf[0]!;
      if (!seqLeq(seqAdd(h.seq, h.len), ack)) break;
      this.sndBuf.shift();
    }
    this.una = ack;
    if (seqLt(this.nxt, ack)) this.nxt = ack;
    this.retries = 0;
    if (this.inRecovery) {
      if (seqGeq(ack, this.recover)) {
        this.inRecovery = false;
        this.cwnd = this.ssthresh; // deflate (RFC 6582 3.2 step 6)
      } else {
        this.retransmitHead(); // partial ACK: the next hole is lost too (RFC 6582 3.2 step 5)
        this.cwnd = Math.max(this.mss, this.cwnd - acked + this.mss);
      }
    } else if (this.cwnd < this.ssthresh) {
      this.cwnd += Math.min(acked, this.mss); // slow start, RFC 5681 3.1 with ABC L=1
    } else {
      this.cwnd += Math.max(1, Math.floor((this.mss * this.mss) / this.cwnd));
    }
    this.dupAcks = 0;
    if (this.una === this.sndMax) this.stopRto();
    else this.restartRto();
    const finAcked = this.finQueued && seqGt(ack, this.finSeq);
    if (finAcked) {
      if (this.state === 'fin-wait-1') this.state = 'fin-wait-2';
      else if (this.state === 'closing') this.state = 'time-wait';
    }
    this.ulp?.onAck(finAcked ? this.finSeq : ack);
    if (finAcked && this.state === 'last-ack') this.finish();
    this.maybeDestroy();
  }

  // RFC 5681 3.2 fast retransmit on the third duplicate ACK; RFC 6582 recovery
  private onDupAck(): void {
    this.dupAcks++;
    if (this.dupAcks === 3 && !this.inRecovery) {
      this.env.counters.TCPFastRetrans++;
      const flight = seqDiff(this.sndMax, this.una);
      this.ssthresh = Math.max(Math.floor(flight / 2), 2 * this.mss);
      this.cwnd = this.ssthresh + 3 * this.mss;
      this.recover = this.sndMax;
      this.inRecovery = true;
      this.rttTiming = false;
      this.retransmitHead();
    } else if (this.inRecovery && this.dupAcks > 3) {
      this.cwnd += this.mss; // inflation: each dup ACK is a segment that left the network
    }
  }

  // models tcp_data_queue() + tcp_data_queue_ofo() + tcp_ofo_queue(): in-order bytes go up at once, in
  // pieces that keep the skb's decrypted flag; nothing is delivered twice
  private receive(v: TcpSegmentView, decrypted: boolean): void {
    const len = v.payloadLength;
    const fin = v.fin;
    if (len === 0 && !fin) return;
    this.ackPending = true;
    if (this.peerClosed) return; // data after the FIN we consumed: just ACK
    let s = v.seq;
    const e = seqAdd(s, len);
    const wndEnd = seqAdd(this.rcvNxt, this.cfg.rcvBuf);
    let data = v.payload();
    if (fin && seqLeq(e, wndEnd)) this.peerFinSeq = e;
    if (seqLt(s, this.rcvNxt)) {
      const cut = Math.min(len, seqDiff(this.rcvNxt, s));
      data = data.subarray(cut);
      s = seqAdd(s, cut);
    }
    if (seqGt(seqAdd(s, data.length), wndEnd)) data = data.subarray(0, Math.max(0, seqDiff(wndEnd, s)));
    let chunks: RxChunk[] | null = null;
    if (data.length > 0) {
      if (s === this.rcvNxt) {
        chunks = [{ seq: s, data, decrypted }];
        this.rcvNxt = seqAdd(s, data.length);
        this.drainOfo(chunks);
      } else {
        this.insertOfo(s, data, decrypted);
      }
    }
    let peerFin = false;
    if (this.peerFinSeq !== null && this.rcvNxt === this.peerFinSeq) {
      this.rcvNxt = seqAdd(this.rcvNxt, 1);
      this.peerClosed = true;
      peerFin = true;
      if (this.state === 'established') this.state = 'close-wait';
      else if (this.state === 'fin-wait-1') this.state = 'closing';
      else if (this.state === 'fin-wait-2') this.state = 'time-wait';
    }
    if (chunks) {
      const last = chunks[chunks.length - 1]!;
      this.copied = seqAdd(last.seq, last.data.length);
      if (this.ulp) this.ulp.onReceive(chunks);
      else if (this.dataCb) for (const c of chunks) this.dataCb(c.data);
    }
    if (peerFin) {
      this.ulp?.onPeerClose?.();
      this.closeCb?.();
      this.maybeDestroy();
    }
  }

  /** Queue [s, s+len) out of order: only the parts no queued piece holds yet, each keeping its own flag. */
  private insertOfo(s: number, data: Uint8Array, decrypted: boolean): void {
    this.env.counters.TCPOFOQueue++;
    const e = seqAdd(s, data.length);
    let cur = s;
    const pieces: RxChunk[] = [];
    for (const q of this.ofo) {
      const qe = seqAdd(q.seq, q.data.length);
      if (seqLeq(qe, cur)) continue;
      if (seqGeq(q.seq, e)) break;
      if (seqLt(cur, q.seq)) pieces.push({ seq: cur, data: data.subarray(seqDiff(cur, s), seqDiff(q.seq, s)), decrypted });
      cur = seqMax(cur, qe);
      if (seqGeq(cur, e)) break;
    }
    if (seqLt(cur, e)) pieces.push({ seq: cur, data: data.subarray(seqDiff(cur, s)), decrypted });
    if (pieces.length === 0) return;
    this.ofo.push(...pieces);
    const base = this.rcvNxt;
    this.ofo.sort((a, b) => seqDiff(a.seq, base) - seqDiff(b.seq, base));
  }

  private drainOfo(out: RxChunk[]): void {
    while (this.ofo.length > 0 && seqLeq(this.ofo[0]!.seq, this.rcvNxt)) {
      const q = this.ofo.shift()!;
      const qe = seqAdd(q.seq, q.data.length);
      if (seqLeq(qe, this.rcvNxt)) continue; // already delivered by a later copy of the same bytes
      const cut = seqDiff(this.rcvNxt, q.seq);
      out.push({ seq: this.rcvNxt, data: q.data.subarray(cut), decrypted: q.decrypted });
      this.rcvNxt = qe;
    }
  }

  /** Out-of-order pieces held (seq, length, flag): for tests and timelines. */
  ofoDump(): Array<{ seq: number; len: number; decrypted: boolean }> {
    return this.ofo.map((q) => ({ seq: q.seq, len: q.data.length, decrypted: q.decrypted }));
  }

  // ---- output -------------------------------------------------------------------------------------

  private synced(): boolean {
    return this.state !== 'syn-sent' && this.state !== 'syn-received' && this.state !== 'closed';
  }

  // models tcp_write_xmit(): send what the window (min of peer window and cwnd) allows
  private output(): void {
    if (!this.synced()) return;
    for (;;) {
      const avail = seqDiff(seqAdd(this.una, Math.min(this.sndWnd, this.cwnd)), this.nxt);
      const dataLeft = seqDiff(this.wseq, this.nxt);
      if (dataLeft > 0 && avail <= 0) break;
      if (dataLeft <= 0 && !(this.finQueued && this.nxt === this.finSeq)) break;
      const maxLen = Math.max(1, Math.min(avail, this.cfg.tso ? this.cfg.tsoMaxBytes : this.mss));
      this.nxt = this.sendOne(this.nxt, maxLen);
      this.sndMax = seqMax(this.sndMax, this.nxt);
      this.armRto();
    }
    if (this.ackPending) this.sendAck();
  }

  /** Send one segment at `seq` of at most `maxLen` bytes, never crossing an skb; returns the seq after it. */
  private sendOne(seq: number, maxLen: number): number {
    if (seqGeq(seq, this.wseq)) {
      if (this.finQueued && seq === this.finSeq) {
        this.emit(seq, FLAG_FIN | FLAG_ACK, null, false, 0);
        return seqAdd(seq, 1);
      }
      return seq;
    }
    const skb = this.skbAt(seq);
    const off = seqDiff(seq, skb.seq);
    let len = Math.min(skb.len - off, maxLen);
    // A retransmission covers only bytes sent before: Linux splits an skb at what it sent (tcp_fragment), so
    // the retransmit queue never holds unsent bytes and a segment never mixes old and new data. (A driver
    // that tracks the next expected seq, as nfp does, sees such a segment start behind and end ahead.)
    if (seqLt(seq, this.sndMax)) len = Math.min(len, seqDiff(this.sndMax, seq));
    skb.closed = true;
    const end = seqAdd(seq, len);
    const fin = this.finQueued && end === this.finSeq;
    const flags = FLAG_ACK | (fin ? FLAG_FIN : 0) | (end === this.wseq ? FLAG_PSH : 0);
    this.emit(seq, flags, skb.buf.subarray(off, off + len), skb.offloaded, len > this.mss ? this.mss : 0);
    return fin ? seqAdd(end, 1) : end;
  }

  private skbAt(seq: number): TxSkb {
    for (const s of this.sndBuf) if (seqInRange(seq, s.seq, seqAdd(s.seq, s.len))) return s;
    throw new ContractError(`no write-queue skb holds seq ${seq}`, { flow: this.flow(), field: 'write_queue' });
  }

  private retransmitHead(): void {
    const next = this.sendOne(this.una, this.mss);
    if (seqGt(next, this.nxt)) this.nxt = next;
    this.sndMax = seqMax(this.sndMax, next); // a FIN sent again with the head: snd_max is past it already
    this.armRto();
  }

  private sendAck(): void {
    this.emit(this.nxt, FLAG_ACK, null, false, 0);
  }

  private sendRst(seq: number): void {
    this.env.counters.OutRsts++;
    this.emit(seq, FLAG_RST, null, false, 0);
  }

  /** Build one frame (or TSO super-frame) and hand it to the device through the ULP's validate_xmit. */
  private emit(seq: number, flags: number, payload: Uint8Array | null, offloaded: boolean, gsoSize: number, options?: Uint8Array): void {
    const t = this.tuple;
    const c = this.env.counters;
    const plen = payload ? payload.length : 0;
    const segs = gsoSize > 0 ? Math.ceil(plen / gsoSize) : 1;
    if (plen > 0 || flags & (FLAG_SYN | FLAG_FIN)) {
      if (seqLt(seq, this.sndMax) && !(flags & FLAG_SYN)) {
        c.RetransSegs += segs;
        this.rttTiming = false; // Karn: no sample from a retransmitted range
      } else if (!this.rttTiming && !(flags & FLAG_SYN)) {
        this.startTiming(seqAdd(seq, plen));
      }
    }
    const frame = buildTcpFrame({
      family: t.family, srcIp: t.saddr, dstIp: t.daddr, srcPort: t.sport, dstPort: t.dport,
      seq, ack: flags & FLAG_ACK ? this.rcvNxt : 0, flags, window: Math.min(MAX_WINDOW, this.cfg.rcvBuf),
      ...(payload ? { payload } : {}), ...(options ? { options } : {}),
      srcMac: this.env.mac, dstMac: this.env.peerMac,
    });
    if (flags & FLAG_ACK) this.ackPending = false;
    let skb: SkBuff | null = { data: frame, sk: this.sock, decrypted: offloaded, gsoSize };
    if (this.ulp?.validateXmit) skb = this.ulp.validateXmit(skb, this.env.netdev);
    if (!skb) {
      c.ValidateXmitDrops++;
      return;
    }
    c.OutSegs += segs;
    this.env.netdev.startXmit(skb);
  }

  // ---- timers (RFC 6298) --------------------------------------------------------------------------

  private startTiming(endSeq: number): void {
    this.rttTiming = true;
    this.rttSeq = endSeq;
    this.rttSentAt = this.env.sim.now;
  }

  private rttSample(r: number): void {
    if (this.srtt < 0) {
      this.srtt = r;
      this.rttvar = r / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    this.rto = Math.min(this.cfg.maxRtoUs, Math.max(this.cfg.minRtoUs, Math.ceil(this.srtt + Math.max(1, 4 * this.rttvar))));
  }

  private armRto(): void {
    if (!this.rtoTimer) this.rtoTimer = this.env.sim.schedule(this.rto, () => this.onRto());
  }
  private restartRto(): void {
    this.stopRto();
    this.armRto();
  }
  private stopRto(): void {
    this.env.sim.cancel(this.rtoTimer);
    this.rtoTimer = null;
  }

  // models tcp_retransmit_timer(): back off (RFC 6298 5.5), enter loss (cwnd = 1 MSS, go back to snd_una)
  private onRto(): void {
    this.rtoTimer = null;
    if (this.state === 'closed' || this.state === 'time-wait') return;
    const handshake = this.state === 'syn-sent' || this.state === 'syn-received';
    if (!handshake && this.una === this.sndMax) return;
    this.env.counters.TCPTimeouts++;
    this.retries++;
    if (this.retries > (handshake ? this.cfg.synRetries : this.cfg.maxRetries)) {
      this.abort('ETIMEDOUT');
      return;
    }
    this.rto = Math.min(this.rto * 2, this.cfg.maxRtoUs);
    this.rttTiming = false;
    if (handshake) {
      this.sendSyn(this.state === 'syn-received', true);
      return;
    }
    const flight = seqDiff(this.sndMax, this.una);
    this.ssthresh = Math.max(Math.floor(flight / 2), 2 * this.mss);
    this.cwnd = this.mss;
    this.dupAcks = 0;
    this.inRecovery = false;
    this.nxt = this.una; // tcp_enter_loss: everything outstanding is presumed lost
    this.retransmitHead();
  }

  private abort(err: NonNullable<TcpSocket['error']>): void {
    this.error = err;
    this.finish();
    this.endCb?.(err);
  }

  private finish(): void {
    this.state = 'closed';
    this.stopRto();
    this.sndBuf.length = 0;
    this.ofo = [];
    this.env.forget(this);
    this.maybeDestroy();
  }

  /**
   * sk_destruct once the application has closed and TCP is done with the socket: its FIN acknowledged (an orphaned
   * FIN_WAIT2 or TIME_WAIT socket becomes a minisock: tcp_time_wait() -> tcp_done(), with the default
   * tcp_fin_timeout), the last ACK in (LAST_ACK -> CLOSED), or aborted.
   */
  private maybeDestroy(): void {
    if (this.destroyed || !this.appClosed) return;
    if (this.state !== 'closed' && this.state !== 'time-wait' && this.state !== 'fin-wait-2') return;
    this.destroyed = true;
    this.ulp?.onDestroy?.();
  }

  private flow(): string {
    const t = this.tuple;
    return `${t.saddr}:${t.sport}>${t.daddr}:${t.dport}`;
  }
}

/** The MSS option (kind 2) of a SYN, or null. Malformed options end the scan (RFC 9293 3.1: be liberal). */
export function parseMssOption(v: TcpSegmentView): number | null {
  const b = v.buf;
  let o = v.l4Offset + 20;
  const end = v.payloadOffset;
  while (o < end) {
    const kind = b[o]!;
    if (kind === 0) break;
    if (kind === 1) {
      o++;
      continue;
    }
    if (o + 1 >= end) break;
    const len = b[o + 1]!;
    if (len < 2 || o + len > end) break;
    if (kind === 2 && len === 4) {
      const m = (b[o + 2]! << 8) | b[o + 3]!;
      return m > 0 ? m : null;
    }
    o += len;
  }
  return null;
}
