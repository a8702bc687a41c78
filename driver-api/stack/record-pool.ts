// Memory for framed TX offload records, given back when TCP's ACK frees them (tls_icsk_clean_acked()
// destroys acknowledged records; the kernel recycles their page frags the same way). A record lives from
// tls_push_record() to its ACK; reusing its buffer spares the allocation and, in V8, the full GC that each
// ~64 MB of fresh external memory triggers. Records handed out as sendfile pages are never pooled.

/** Pooled bytes kept per stack, beyond which given-back buffers are left to the GC. */
const MAX_POOLED_BYTES = 8 << 20;

export class RecordPool {
  private readonly free = new Map<number, Uint8Array[]>();
  private pooled = 0;

  // Arrow functions: the stack hands take and give around as callbacks (frameOffloadRecord, TxRecordsList).

  /** A buffer of exactly `n` bytes with undefined content (the caller writes every byte). */
  readonly take = (n: number): Uint8Array => {
    const list = this.free.get(n);
    const b = list?.pop();
    if (!b) return new Uint8Array(n);
    this.pooled -= n;
    return b;
  };

  /** `b` is no longer used by anyone; a later take() of its size may return it. */
  readonly give = (b: Uint8Array): void => {
    if (this.pooled + b.length > MAX_POOLED_BYTES) return;
    let list = this.free.get(b.length);
    if (!list) this.free.set(b.length, (list = []));
    list.push(b);
    this.pooled += b.length;
  };

  get pooledBytes(): number {
    return this.pooled;
  }
}
