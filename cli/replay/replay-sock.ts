// A TCP socket driven by a capture instead of a TCP state machine: it plays tcp_sock for the TLS stack
// model. TX: the stack queues records here; the replay cuts them along the captured segments. RX: the
// replay hands it the segments the NIC passed up; it reassembles them (keeping each skb's decrypted flag,
// never merging across flags) and feeds the ULP once TLS RX is installed.
import type { FourTuple, NetDevice, SkBuff } from '../../driver-api/ops.ts';
import type { RxChunk, TcpSock, TcpUlp } from '../../driver-api/tcp.ts';
import { seqAdd, seqDiff, seqGeq, seqGt } from '../../emulator/wire/seq.ts';

type TxChunk = { seq: number; data: Uint8Array; offloaded: boolean };
type RxPending = { seq: number; data: Uint8Array; decrypted: boolean };

const EMPTY = new Uint8Array(0);

let nextId = 1;

export class ReplaySock implements TcpSock {
  readonly id = nextId++;
  private ulp: TcpUlp | null = null;
  writeSeq = 0;
  sndUna = 0;
  private ackSeen = false;
  copiedSeq = 0;
  /** Bytes the stack queued for transmission, until acknowledged: tx[txHead..] are live. */
  private tx: TxChunk[] = [];
  private txHead = 0;
  /** RX: next in-order seq, and whether the ULP takes the stream yet. */
  private rcvNxt: number | null = null;
  private rxLive = false;
  /** receive()'s in-order case with TLS RX live: one chunk, handed over in this reused array (TcpUlp.onReceive). */
  private readonly oneChunk: [RxChunk] = [{ seq: 0, data: EMPTY, decrypted: false }];
  private ofo: RxPending[] = [];
  private ofoBytes = 0;
  private held: RxChunk[] = [];
  private heldBytes = 0;
  fences = 0;
  /** RX bytes dropped because nothing would take them (no TLS RX) or over the held/out-of-order bound. */
  rxDiscarded = 0;

  constructor(
    readonly tuple: FourTuple,
    readonly netdev: NetDevice,
    private readonly maxHeld = 8 << 20,
  ) {}

  setUlp(ulp: TcpUlp): void {
    this.ulp = ulp;
  }

  queue(data: Uint8Array, offloaded: boolean, zerocopy = false): void {
    if (data.length === 0) return;
    // tcp_sendmsg copies into skbs. Offloaded bytes come from the stack's own framed record, which it never
    // writes again (and with zerocopy the sharing is the point): keep a reference, a copy per record costs
    // as much as the device's crypto. Other bytes may be the caller's buffer: copy those.
    const keep = offloaded || zerocopy ? data : Uint8Array.from(data);
    this.tx.push({ seq: this.writeSeq, data: keep, offloaded });
    this.writeSeq = seqAdd(this.writeSeq, data.length);
  }

  /** dev_queue_xmit's sk_validate_xmit_skb step: the ULP may encrypt in software or drop. */
  validateXmit(skb: SkBuff): SkBuff | null {
    return this.ulp?.validateXmit ? this.ulp.validateXmit(skb, this.netdev) : skb;
  }

  fence(): void {
    this.fences++;
  }

  push(): void {}

  /** The replay closes a socket once everything it sent is acknowledged (or the connection ended): gone at once. */
  close(): void {
    this.ulp?.onDestroy?.();
  }

  /** Whether queued bytes cover [seq, seq+len). */
  hasQueued(seq: number, len: number): boolean {
    if (this.tx.length === this.txHead) return false;
    return seqDiff(seq, this.tx[this.txHead]!.seq) >= 0 && seqDiff(seqAdd(seq, len), this.writeSeq) <= 0;
  }

  /** The queued bytes for [seq, seq+len) and their offload mark; null if not all queued or marks differ. */
  queued(seq: number, len: number): { data: Uint8Array; offloaded: boolean } | null {
    const out = new Uint8Array(len);
    const mark = this.copyQueued(seq, len, out, 0);
    return mark < 0 ? null : { data: out, offloaded: mark === 1 };
  }

  /**
   * Copies the queued bytes for [seq, seq+len) to out[at..] (the replay builds its skb there, no copy in
   * between). Returns their offload mark (1 offloaded, 0 not), or -1 if not all queued or marks differ
   * (then `out` may be partly written).
   */
  copyQueued(seq: number, len: number, out: Uint8Array, at: number): -1 | 0 | 1 {
    if (len === 0 || !this.hasQueued(seq, len)) return -1;
    const end = seqAdd(seq, len);
    let mark = -1;
    for (let i = this.txHead; i < this.tx.length; i++) {
      const c = this.tx[i]!;
      const a = Math.max(0, seqDiff(seq, c.seq));
      const b = Math.min(c.data.length, seqDiff(end, c.seq));
      if (b <= 0) break; // chunks are in seq order: the rest start after `end`
      if (a >= b) continue;
      const m = c.offloaded ? 1 : 0;
      if (mark !== -1 && mark !== m) return -1;
      mark = m;
      out.set(b - a === c.data.length ? c.data : c.data.subarray(a, b), at + seqDiff(seqAdd(c.seq, a), seq));
    }
    return mark as -1 | 0 | 1;
  }

  /** Bytes queued and not yet acknowledged. */
  get unackedBytes(): number {
    return this.tx.length > this.txHead ? seqDiff(this.writeSeq, this.tx[this.txHead]!.seq) : 0;
  }

  /** A captured ACK from the peer. */
  ack(ack: number): void {
    // snd_una starts at the first ACK seen: comparing with an arbitrary 0 would reject every ACK of a
    // connection whose sequence numbers sit more than 2^31 from 0 (its queue would never drain).
    if (this.ackSeen && !seqGt(ack, this.sndUna)) return;
    this.ackSeen = true;
    this.sndUna = ack;
    const tx = this.tx;
    let h = this.txHead;
    for (; h < tx.length; h++) {
      const c = tx[h]!;
      if (seqDiff(seqAdd(c.seq, c.data.length), ack) > 0) break;
      c.data = EMPTY; // acknowledged: its bytes go now, not when the batch below drops the entry
    }
    // Drop acknowledged chunks in batches (shift() per ACK is O(queue) each time).
    if (h === tx.length) {
      tx.length = 0;
      h = 0;
    } else if (h >= 64 && h * 2 >= tx.length) {
      tx.splice(0, h);
      h = 0;
    }
    this.txHead = h;
    this.ulp?.onAck(ack);
  }

  /** Where RX reassembly starts (the first byte after the peer's SYN, or the first byte seen). */
  rxStartAt(seq: number): void {
    if (this.rcvNxt === null) {
      this.rcvNxt = seq >>> 0;
      this.copiedSeq = seq >>> 0;
    }
  }

  /**
   * TLS RX gets installed: bytes before `startSeq` were the handshake, consumed by user space; the rest
   * held so far goes to the ULP now, and from here on as it arrives.
   */
  startUlpRx(startSeq: number): void {
    this.copiedSeq = startSeq >>> 0;
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    this.rxLive = true;
    const chunks: RxChunk[] = [];
    for (const c of held) {
      const skip = seqDiff(startSeq, c.seq);
      if (skip >= c.data.length) continue;
      if (skip > 0) chunks.push({ seq: startSeq >>> 0, data: c.data.subarray(skip), decrypted: c.decrypted });
      else chunks.push(c);
    }
    if (this.rcvNxt !== null && seqGt(startSeq, this.rcvNxt)) this.rcvNxt = startSeq >>> 0;
    if (chunks.length) this.ulp?.onReceive(chunks);
  }

  /** Before TLS RX is installed, user space reads plaintext handshake bytes up to `seq`. */
  consumeUntil(seq: number): void {
    while (this.held.length && seqDiff(seqAdd(this.held[0]!.seq, this.held[0]!.data.length), seq) <= 0) {
      this.heldBytes -= this.held.shift()!.data.length;
    }
    if (seqGt(seq, this.copiedSeq)) this.copiedSeq = seq;
  }

  /** Every byte before `seq` was received in order (what user space can read up to). */
  receivedUpTo(seq: number): boolean {
    return this.rcvNxt !== null && seqGeq(this.rcvNxt, seq);
  }

  /** A segment the NIC handed up (after the driver and netif_receive_skb). */
  receive(seq: number, data: Uint8Array, decrypted: boolean): void {
    if (data.length === 0) return;
    this.rxStartAt(seq);
    const rel = seqDiff(seq, this.rcvNxt!);
    if (rel + data.length <= 0) return; // duplicate: each byte goes up once
    if (rel > 0) {
      if (this.ofo.some((p) => p.seq === seq && p.data.length >= data.length)) return;
      // A hole the capture never fills must not hold the rest of the stream in memory: bound it.
      if (this.ofoBytes + data.length > this.maxHeld) {
        this.rxDiscarded += data.length;
        return;
      }
      this.ofo.push({ seq, data: Uint8Array.from(data), decrypted });
      this.ofoBytes += data.length;
      return;
    }
    if (rel === 0 && this.rxLive && this.ofo.length === 0) {
      // The steady state: the next bytes, nothing waiting behind them. No array or chunk object per segment.
      const c = this.oneChunk[0];
      c.seq = this.rcvNxt!;
      c.data = data;
      c.decrypted = decrypted;
      this.rcvNxt = seqAdd(this.rcvNxt!, data.length);
      try {
        this.ulp?.onReceive(this.oneChunk);
      } finally {
        c.data = EMPTY; // the caller's buffer: not kept past the call
      }
      return;
    }
    const chunks: RxChunk[] = [];
    this.take(seq, data, decrypted, chunks);
    // `data` is the caller's buffer, reused after this call. With offload live the stack copies what it
    // queues before onReceive returns; bytes held until then get memory of their own. (Pieces from the ofo
    // queue are private copies.)
    if (chunks.length && !this.rxLive) chunks[0]!.data = chunks[0]!.data.slice();
    for (let progressed = true; progressed && this.ofo.length; ) {
      progressed = false;
      this.ofo.sort((a, b) => seqDiff(a.seq, b.seq));
      const p = this.ofo[0]!;
      if (seqDiff(p.seq, this.rcvNxt!) <= 0) {
        this.ofo.shift();
        this.ofoBytes -= p.data.length;
        this.take(p.seq, p.data, p.decrypted, chunks);
        progressed = true;
      }
    }
    if (!chunks.length) return;
    if (this.rxLive) {
      this.ulp?.onReceive(chunks);
      return;
    }
    for (const c of chunks) {
      if (this.heldBytes + c.data.length > this.maxHeld) {
        this.rxDiscarded += c.data.length;
        continue;
      }
      this.held.push(c);
      this.heldBytes += c.data.length;
    }
  }

  private take(seq: number, data: Uint8Array, decrypted: boolean, out: RxChunk[]): void {
    const skip = seqDiff(this.rcvNxt!, seq);
    if (skip >= data.length) return;
    const fresh = skip > 0 ? data.subarray(skip) : data;
    // Keep each piece with its own flag: decrypted and not-decrypted bytes are never coalesced. A view:
    // receive() copies what came from the caller's buffer.
    out.push({ seq: this.rcvNxt!, data: fresh, decrypted });
    this.rcvNxt = seqAdd(this.rcvNxt!, fresh.length);
  }
}
