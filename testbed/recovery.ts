// When a loss of RX sync that never ended counts against the device: shared by the scenario runner and
// `tlsnic replay --scenario`.

/** A resync the device was given: when (µs), the record it names, its answer, bytes it had received past it. */
export type Hint = { atUs: number; record: number; result: string; passedBytes: number };

/**
 * Devices that scan the stream (DRIVER_REQ, DRIVER_REQ_ASYNC) find their way back by themselves. A
 * CORE_NEXT_HINT device can only come back at a record the stack names (SPEC 6), and the stack names one
 * after 2, 4, 8 ... fully encrypted records, for the record after the one it is parsing. Under reordering the
 * device has often received that record already (the stack waits for a hole the device went past); it cannot
 * start there and answers skip. So it owes a recovery only once it was given a hint it could take: accepted,
 * naming a record before the stream's end (`records`), after the last impairment of the flow (a later
 * impairment may lose the hinted segment, and the stack hints again).
 */
export function owesRecovery(
  resyncType: string | null, hints: readonly Hint[], lostAtUs: number, records: number, lastImpairmentUs: number | null,
): boolean {
  if (resyncType !== 'core_next_hint') return true;
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
