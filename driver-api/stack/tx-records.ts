// The TX offload context's records list (struct tls_offload_context_tx: records_list, retransmit_hint,
// hint_record_sn, unacked_record_sn) and its two readers: tls_get_record() for drivers and
// tls_icsk_clean_acked() on ACK. Models net/tls/tls_device.c.
import { seqAdd, seqGt, seqGeq, seqLeq, seqLt } from '../../emulator/wire/seq.ts';
import type { TlsTxRecord } from '../ops.ts';

/** struct tls_record_info: a framed plaintext record queued to TCP and kept until fully ACKed. */
export type TxOffloadRecord = TlsTxRecord & {
  /** TCP seq just past the record (tls_record_info.end_seq). */
  endSeq: number;
  /** Record number (what counting from unacked_record_sn gives in the kernel). */
  rcdSn: bigint;
  /** `data` goes back to the stack's record pool once acknowledged (nobody outside the stack holds it). */
  pooled: boolean;
};

const EMPTY = new Uint8Array(0);

/** What an acknowledged entry before `head` becomes (nothing reads it). */
const GONE: TxOffloadRecord = { startSeq: 0, endSeq: 0, data: EMPTY, rcdSn: -1n, pooled: false };

/** tls_record_is_start_marker(): the zero-length record at start_offload_tcp_sn. */
export function isStartMarker(r: TlsTxRecord): boolean {
  return r.data.length === 0;
}

export class TxRecordsList {
  /** records_list; entries before `head` are acknowledged and gone (compacted lazily). */
  private list: TxOffloadRecord[] = [];
  private head = 0;
  /** retransmit_hint as an index into `list`, -1 for none. */
  private hint = -1;
  /** Record number of the oldest unacked entry (the start marker counts as rec_seq - 1, as the kernel does). */
  unackedRecordSn: bigint;

  /** alloc_offload_ctx_tx() + the start marker record tls_set_device_offload() adds at write_seq. */
  /** `free` takes the data of acknowledged records pushed as pooled. */
  constructor(startSeq: number, firstRecSn: bigint, private readonly free: ((data: Uint8Array) => void) | null = null) {
    this.unackedRecordSn = firstRecSn - 1n;
    this.list.push({ startSeq: startSeq >>> 0, endSeq: startSeq >>> 0, data: EMPTY, rcdSn: firstRecSn - 1n, pooled: false });
  }

  get length(): number {
    return this.list.length - this.head;
  }

  /** The records still unacknowledged, oldest first (start marker included while it is). */
  entries(): readonly TxOffloadRecord[] {
    return this.list.slice(this.head);
  }

  /** list_add_tail() in tls_push_record(). */
  push(startSeq: number, data: Uint8Array, rcdSn: bigint, pooled = false): TxOffloadRecord {
    const rec: TxOffloadRecord = { startSeq, endSeq: seqAdd(startSeq, data.length), data, rcdSn, pooled };
    this.list.push(rec);
    return rec;
  }

  /** models tls_get_record(): the record holding `seq`, using and updating the retransmit hint. */
  get(seq: number): TxOffloadRecord | null {
    const list = this.list;
    const end = list.length;
    let i = this.hint;
    if (i < this.head || seqLt(seq, list[i]!.startSeq)) {
      // The hint does not help: start from the oldest record.
      i = this.head;
      if (i >= end) return null;
      const first = list[i]!;
      // The start marker answers for any seq before offload started (pre-offload bytes).
      if (!isStartMarker(first)) {
        const last = list[end - 1]!;
        if (!(seqGeq(seq, first.startSeq) && seqLeq(seq, last.endSeq))) return null;
      }
    }
    for (; i < end; i++) {
      const rec = list[i]!;
      if (seqLt(seq, rec.endSeq)) {
        if (this.hint < this.head || seqGt(rec.endSeq, list[this.hint]!.endSeq)) this.hint = i;
        return rec;
      }
    }
    return null;
  }

  /** models tls_icsk_clean_acked(): drop every record whose end_seq is at or before `ackedSeq`. */
  cleanAcked(ackedSeq: number): void {
    const list = this.list;
    let deleted = 0n;
    while (this.head < list.length) {
      const rec = list[this.head]!;
      if (seqLt(ackedSeq, rec.endSeq)) break;
      if (this.hint === this.head) this.hint = -1;
      deleted++; // the start marker too: it stands for rec_seq - 1, so unacked_record_sn reaches rec_seq
      if (rec.pooled && this.free) this.free(rec.data);
      list[this.head] = GONE; // its bytes go now, not when the list is next compacted
      this.head++;
    }
    this.unackedRecordSn += deleted;
    // Compact once the dead prefix dominates, so the list costs O(unacked) memory, amortised O(1) per record.
    if (this.head > 64 && this.head * 2 > list.length) {
      const shift = this.head;
      this.list = list.slice(shift);
      this.head = 0;
      this.hint = this.hint >= shift ? this.hint - shift : -1;
    }
  }
}
