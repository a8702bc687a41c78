// RX resync state of struct tls_offload_context_rx: the three tls_offload_sync_type flavours
// (include/net/tls.h, net/tls/tls_device.c). Pure decisions: each event returns the tls_dev_resync() call
// to make (seq, record number) or null; the stack makes the call. SPEC section 6.
import { seqAdd, seqGt, seqLt } from '../../emulator/wire/seq.ts';
import type { TlsOffloadSyncType } from '../ops.ts';

/** TLS_DEVICE_RESYNC_ASYNC_LOGMAX */
export const RESYNC_ASYNC_LOGMAX = 13;
/** TLS_DEVICE_RESYNC_NH_START_IVAL / _MAX_IVAL */
export const RESYNC_NH_START_IVAL = 2;
export const RESYNC_NH_MAX_IVAL = 128;
const TLS_HEADER_SIZE = 5;
const USHRT_MAX = 0xffff;

/** struct tls_offload_resync_async + its `req` word, as a discriminated union of stages. */
export type AsyncResync =
  | { stage: 'idle' }
  /** Between _request_start and _request_end: log header seqs in [seq, seq + len], count all after seq. */
  | { stage: 'async'; seq: number; len: number; log: number[]; rcdDelta: number }
  /** After _request_end(seq): match `seq` against the log (then against each new header). */
  | { stage: 'sync'; seq: number; log: number[]; rcdDelta: number };

export type ResyncCall = { seq: number; rcdSn: bigint };

export class RxResync {
  type: TlsOffloadSyncType = 'driver_req';
  /** rx_ctx->resync_req for DRIVER_REQ: the requested header-end seq, or null when none is pending. */
  driverReq: number | null = null;
  async: AsyncResync = { stage: 'idle' };
  /** CORE_NEXT_HINT: resync_nh_reset, resync_nh_do_now, resync_nh.{decrypted_failed, decrypted_tgt}. */
  nhReset = true;
  nhDoNow = false;
  nhDecryptedFailed = 0;
  nhDecryptedTgt = RESYNC_NH_START_IVAL;

  /** tls_offload_rx_resync_request() */
  request(seq: number): void {
    this.driverReq = seq >>> 0;
  }

  /** tls_offload_rx_resync_async_request_start(): also resets loglen and rcd_delta. */
  asyncStart(seq: number, len: number): void {
    this.async = { stage: 'async', seq: seq >>> 0, len: len & 0xffff, log: [], rcdDelta: 0 };
  }

  /** tls_offload_rx_resync_async_request_end(): only the req word changes; the log stays. */
  asyncEnd(seq: number): void {
    const a = this.async;
    const log = a.stage === 'idle' ? [] : a.log;
    const rcdDelta = a.stage === 'idle' ? 0 : a.rcdDelta;
    this.async = { stage: 'sync', seq: seq >>> 0, log, rcdDelta };
  }

  /** tls_offload_rx_resync_async_request_cancel() */
  asyncCancel(): void {
    this.async = { stage: 'idle' };
  }

  /**
   * models tls_device_rx_resync_new_rec(): the strparser found a header. `seq` is the record start,
   * `rcdLen` its full length, `rcdSn` its record number (tls_ctx->rx.rec_seq), `inq` tcp_inq() counted
   * from the record start (includes this record).
   */
  newRecord(rcdLen: number, seq: number, rcdSn: bigint, inq: number): ResyncCall | null {
    switch (this.type) {
      case 'driver_req': {
        // The device asked with the seq of the header's last byte, and the answer names that same seq (seq +=
        // TLS_HEADER_SIZE - 1, then tls_device_resync_rx(tls_ctx, sk, seq, rcd_sn): the driver gets the value
        // it asked about, not the record start; ../shared/SPEC.md section 6 says record start).
        const asked = seqAdd(seq, TLS_HEADER_SIZE - 1);
        if (this.driverReq === null || this.driverReq !== asked) return null;
        this.driverReq = null;
        return { seq: asked, rcdSn };
      }
      case 'core_next_hint': {
        if (!this.nhDoNow) return null;
        if (inq > rcdLen) return null; // more than this record queued: wait until the socket drained to it
        this.nhDoNow = false;
        return { seq: seqAdd(seq, rcdLen), rcdSn: rcdSn + 1n };
      }
      case 'driver_req_async':
        return this.asyncNewRecord(seq, rcdSn);
    }
  }

  /** models tls_device_rx_resync_async() */
  private asyncNewRecord(seq: number, rcdSn: bigint): ResyncCall | null {
    const a = this.async;
    switch (a.stage) {
      case 'idle':
        return null;
      case 'async': {
        if (a.rcdDelta === USHRT_MAX) {
          // Too long in the async stage (WARN_ON_ONCE): the request is cancelled ("net: tls: Cancel RX async
          // resync request on rcd_delta overflow"), so a late _end finds none.
          this.async = { stage: 'idle' };
          return null;
        }
        if (seqLt(seq, a.seq)) return null;
        if (!seqGt(seq, seqAdd(a.seq, a.len)) && a.log.length < RESYNC_ASYNC_LOGMAX) a.log.push(seq);
        a.rcdDelta++;
        return null;
      }
      case 'sync': {
        for (let i = 0; i < a.log.length; i++) {
          if (a.log[i] === a.seq) {
            const delta = a.rcdDelta - i;
            this.async = { stage: 'idle' };
            return { seq: a.seq, rcdSn: rcdSn - BigInt(delta) };
          }
        }
        a.log = [];
        a.rcdDelta = 0;
        if (a.seq === seq) {
          this.async = { stage: 'idle' };
          return { seq, rcdSn };
        }
        return null;
      }
    }
  }

  /** tls_device_decrypted() saw a record with decrypted segments: reset the NEXT_HINT backoff. */
  sawDecrypted(): void {
    this.nhReset = true;
  }

  /**
   * models tls_device_core_ctrl_rx_resync(): a fully encrypted record. Backoff 2, 4, 8 .. 128, then +128.
   * Returns the resync to do now, or null (not yet, or scheduled for the parser via nhDoNow).
   * `nextSeq` is the seq just past this record, `inq` tcp_inq() from the record start.
   */
  encryptedRecord(fullLen: number, nextSeq: number, rcdSn: bigint, inq: number): ResyncCall | null {
    if (this.type !== 'core_next_hint') return null;
    if (this.nhDoNow) return null;
    if (this.nhReset) {
      this.nhReset = false;
      this.nhDecryptedFailed = 1;
      this.nhDecryptedTgt = RESYNC_NH_START_IVAL;
      return null;
    }
    if (++this.nhDecryptedFailed <= this.nhDecryptedTgt) return null;
    if (this.nhDecryptedTgt < RESYNC_NH_MAX_IVAL) this.nhDecryptedTgt *= 2;
    else this.nhDecryptedTgt += RESYNC_NH_MAX_IVAL;
    if (inq > fullLen) {
      // Head of the next record is already in: the parser will resync when it reaches a drained point.
      this.nhDoNow = true;
      return null;
    }
    // The kernel passes tcp_sk(sk)->copied_seq, which with the original strparser was already past this
    // record: the next record's start, numbered rec_seq + 1.
    return { seq: nextSeq, rcdSn: rcdSn + 1n };
  }
}
