// In-order reassembly of one direction of a captured TCP stream: retransmitted bytes are dropped,
// out-of-order segments wait (bounded), each byte comes out once. Used to walk TLS records in a capture.
import { seqAdd, seqDiff } from '../../emulator/wire/seq.ts';

export type Piece = { seq: number; data: Uint8Array };

export interface PieceSink<D> {
  push(tag: D, seq: number, data: Uint8Array): void;
}

export class StreamReassembler {
  /** Seq of the next in-order byte. */
  next: number;
  private pending: Piece[] = [];
  private pendingBytes = 0;
  /** Bytes dropped because the out-of-order buffer was full or data fell outside the window. */
  overflowed = 0;

  constructor(isn: number, private readonly maxPending = 4 << 20) {
    this.next = isn >>> 0;
  }

  /**
   * Add a segment; returns the bytes that became in order (possibly several pieces), each once. Pieces
   * may be views of `data`: copy what you keep.
   */
  push(seq: number, data: Uint8Array): Piece[] {
    const out: Piece[] = [];
    this.take(seq, data, out);
    // Drain what now fits.
    let progressed = out.length > 0;
    while (progressed && this.pending.length) {
      progressed = false;
      for (let i = 0; i < this.pending.length; i++) {
        const p = this.pending[i]!;
        if (seqDiff(p.seq, this.next) <= 0) {
          this.pending.splice(i, 1);
          this.pendingBytes -= p.data.length;
          this.take(p.seq, p.data, out);
          progressed = true;
          break;
        }
      }
    }
    return out;
  }

  /**
   * push() without the array: each in-order piece goes to sink.push(tag, seq, data) as it comes (a view of
   * `data` or of a held copy, valid during the call).
   */
  pushTo<D>(seq: number, data: Uint8Array, tag: D, sink: PieceSink<D>): void {
    const rel = seqDiff(seq, this.next);
    if (rel === 0 && this.pending.length === 0) {
      // The common case, in order with nothing waiting: no bookkeeping.
      this.next = seqAdd(this.next, data.length);
      sink.push(tag, seq, data);
      return;
    }
    for (const p of this.push(seq, data)) sink.push(tag, p.seq, p.data);
  }

  get pendingSize(): number {
    return this.pendingBytes;
  }

  private take(seq: number, data: Uint8Array, out: Piece[]): void {
    const rel = seqDiff(seq, this.next);
    if (rel + data.length <= 0) return; // all old
    if (rel > 0) {
      if (rel > 1 << 30 || this.pendingBytes + data.length > this.maxPending) {
        this.overflowed += data.length;
        return;
      }
      this.pending.push({ seq, data: Uint8Array.from(data) });
      this.pendingBytes += data.length;
      return;
    }
    const fresh = data.subarray(-rel);
    out.push({ seq: this.next, data: fresh });
    this.next = seqAdd(this.next, fresh.length);
  }
}
