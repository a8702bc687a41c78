// What an RX context went through (losses of sync, recoveries, resync hints), and when a loss that never
// ended counts against the device: shared by the scenario runner and `tlsnic replay --scenario`.
import type { NicEvent, ScanPolicy } from '../emulator/nic/types.ts';
import { MAX_RECORD_LENGTH_ANY, TLS_HEADER_SIZE } from '../emulator/tls/record.ts';
import { seqAdd, seqDiff, seqGt } from '../emulator/wire/seq.ts';

/** A resync the device was given: when (µs), the record it names, its answer, bytes it had received past it. */
export type Hint = { atUs: number; record: number; result: string; passedBytes: number };

/**
 * A loss of RX sync: where (TCP seq) and when (µs) it began, where and when the device decrypted again, and
 * how many bytes of the stream past the loss point had reached the device by then (or by the end, if never):
 * a stream that ends a record or two after a loss leaves a scanning device no chance to come back.
 */
export type SyncEpisode = { lostSeq: number; lostAtUs: number; recoveredSeq: number | null; recoveredAtUs: number | null; receivedAfter: number };

/**
 * One RX context's sync from its NIC events (kinds rx-lost, rx and rx-resync; the caller routes only that
 * context's events here). An episode opens at a loss (a loss while one is open is the same episode) and
 * closes at the next decrypted packet. Each resync hint records the record it names (`recordOf(seq)`, -1 for
 * none) and how far the device had received past that record start: the frames' own seqs, not device state.
 */
export class RxSyncWatch {
  readonly episodes: SyncEpisode[] = [];
  readonly hints: Hint[] = [];
  /** Times (µs) of the packets the device decrypted, when asked for (a long replay decrypts millions). */
  readonly decryptedAtUs: number[] | null;
  private open = false;
  /** End seq of the furthest payload byte that reached the device (null before the first). */
  private maxEnd: number | null = null;

  constructor(
    private readonly clockUs: () => number,
    private readonly recordOf: (seq: number) => number,
    opts: { decryptedTimes?: boolean } = {},
  ) {
    this.decryptedAtUs = opts.decryptedTimes ? [] : null;
  }

  onEvent(ev: NicEvent): void {
    switch (ev.kind) {
      case 'rx-lost':
        if (this.open) return;
        this.open = true;
        this.episodes.push({ lostSeq: ev.seq, lostAtUs: this.clockUs(), recoveredSeq: null, recoveredAtUs: null, receivedAfter: 0 });
        return;
      case 'rx-resync': {
        const passedBytes = this.maxEnd === null ? 0 : Math.max(0, seqDiff(this.maxEnd, ev.seq));
        this.hints.push({ atUs: this.clockUs(), record: this.recordOf(ev.seq), result: ev.result, passedBytes });
        return;
      }
      case 'rx': {
        const end = seqAdd(ev.seq, ev.len);
        if (this.maxEnd === null || seqGt(end, this.maxEnd)) this.maxEnd = end;
        if (this.open) {
          const e = this.episodes[this.episodes.length - 1]!;
          e.receivedAfter = Math.max(e.receivedAfter, seqDiff(this.maxEnd, e.lostSeq));
        }
        if (!ev.decrypted) return;
        this.decryptedAtUs?.push(this.clockUs());
        if (this.open) {
          this.open = false;
          const e = this.episodes[this.episodes.length - 1]!;
          e.recoveredSeq = ev.seq;
          e.recoveredAtUs = this.clockUs();
        }
        return;
      }
      default:
        return;
    }
  }
}

/**
 * Devices that scan the stream (DRIVER_REQ, DRIVER_REQ_ASYNC) find their way back by themselves, given the
 * stream to do it in: they owe it only once more than `scan.reach` bytes past the loss reached them
 * (scanReach(): a loss near the end of a stream leaves a scan no room to come back). A
 * CORE_NEXT_HINT device can only come back at a record the stack names (SPEC 6), and the stack names one
 * after 2, 4, 8 ... fully encrypted records, for the record after the one it is parsing. Under reordering the
 * device has often received that record already (the stack waits for a hole the device went past); it cannot
 * start there and answers skip. So it owes a recovery only once it was given a hint it could take: accepted,
 * naming a record before the stream's end (`records`), after the last impairment of the flow (a later
 * impairment may lose the hinted segment, and the stack hints again).
 */
export function owesRecovery(
  resyncType: string | null, hints: readonly Hint[], lostAtUs: number, records: number, lastImpairmentUs: number | null,
  scan: { receivedAfter: number; reach: number },
): boolean {
  if (resyncType !== 'core_next_hint') return !endedBeforeScanReach(resyncType, scan.receivedAfter, scan.reach);
  return hints.some((h) => h.atUs >= lostAtUs && h.result === 'ok' && h.record >= 0 && h.record < records
    && (lastImpairmentUs === null || h.atUs > lastImpairmentUs));
}

/**
 * CORE_NEXT_HINT: a device that takes a hint for a record start it has already received past waits for bytes
 * that never come. (The converse is no rule: a device back in sync, but not yet through a whole packet,
 * answers skip. With DRIVER_REQ types the answer confirms a header the device chained past: no rule either.)
 */
export function hintsTakenTooLate(resyncType: string | null, hints: readonly Hint[]): Hint[] {
  return resyncType === 'core_next_hint' ? hints.filter((h) => h.result === 'ok' && h.passedBytes > 0) : [];
}

/**
 * Whether a loss that a device scanning the stream never recovered from left it no room: no more than `reach`
 * (scanReach()) bytes of the stream reached it past the loss. Not a failure (owesRecovery); the outputs say so.
 */
export function endedBeforeScanReach(resyncType: string | null, receivedAfter: number, reach: number): boolean {
  return resyncType !== 'core_next_hint' && receivedAfter <= reach;
}

/**
 * A loss never recovered: the longest stretch of the stream past it that reached the device with no impaired
 * segment in it, as the episode's `receivedAfter` then says. An impairment after the loss (a later loss,
 * reorder or duplicate) may restart a scan, so a scanning device owes a recovery only once it was given one
 * stretch long enough (endedBeforeScanReach). `hits`: the impaired segments of the flow's direction, flat
 * [start seq, end seq, ...] in the order they were hit. A recovered episode is returned as it is.
 */
export function quietEpisode<E extends SyncEpisode>(e: E, hits: readonly number[]): E {
  if (e.recoveredSeq !== null || hits.length === 0) return e;
  const spans: Array<[number, number]> = [];
  for (let i = 0; i + 1 < hits.length; i += 2) {
    const s = seqDiff(hits[i]!, e.lostSeq);
    const t = seqDiff(hits[i + 1]!, e.lostSeq);
    if (t > 0 && s < e.receivedAfter) spans.push([s, t]);
  }
  spans.sort((x, y) => x[0] - y[0]);
  let at = 0;
  let longest = 0;
  for (const [s, t] of spans) {
    longest = Math.max(longest, s - at);
    at = Math.max(at, t);
  }
  return { ...e, receivedAfter: Math.max(longest, e.receivedAfter - at) };
}

/** Impaired segments kept per flow direction for quietEpisode() (start, end pairs); past it the oldest half goes. */
export const HITS_KEPT = 1 << 16;

/** Adds an impaired segment [start, end) to `hits` (bounded by HITS_KEPT). */
export function noteHit(hits: number[], start: number, end: number): void {
  if (hits.length >= HITS_KEPT) hits.splice(0, HITS_KEPT / 2);
  hits.push(start, end);
}

/**
 * Bytes of the stream past a loss of sync a scanning device may need before it decrypts again (SPEC 6): the
 * skipped maximum record (if its policy skips one), then up to a record to the first header it matches,
 * `confirmHeaders` headers chained (the first one included) with the request at the last, that record read by
 * the stack to answer it, and one more record to decrypt: confirmHeaders + 2 records of the flow's longest.
 */
export function scanReach(scan: ScanPolicy, maxRecord: number): number {
  // The device skips its own maximum (by version and cipher); the largest of them bounds it.
  const skip = scan.skipOneMaxRecord ? MAX_RECORD_LENGTH_ANY + TLS_HEADER_SIZE : 0;
  return skip + (scan.confirmHeaders + 2) * maxRecord;
}
