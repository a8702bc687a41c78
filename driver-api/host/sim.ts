// Virtual time and an event queue (STYLE principle 8: packetdrill's scripted time, smoltcp's Instant passed
// in). Nothing here reads the wall clock: a run replays bit for bit from its inputs and seed.
import { ContractError } from '../../emulator/errors.ts';

/** Thrown when a run hits its hard event cap: a livelock (or a cap set too low), never a silent spin. */
export class SimEventCapError extends ContractError {
  constructor(readonly maxEvents: number, readonly nowUs: number) {
    super(`simulation ran ${maxEvents} events without finishing (maxEvents cap; livelock?)`, { field: 'maxEvents' });
  }
}

export type TimerHandle = { readonly id: number; cancelled: boolean; readonly at: number };

type Entry = { at: number; id: number; fn: () => void; handle: TimerHandle };

export type RunOptions = {
  /** Stop before the first event later than this virtual time (µs); `now` is left at `until`. */
  until?: number;
  /** Hard cap on events this run executes; exceeding it throws SimEventCapError. Default 10 million. */
  maxEvents?: number;
};

export type RunResult = { events: number; reason: 'idle' | 'until' | 'stopped' };

const DEFAULT_MAX_EVENTS = 10_000_000;

export class Sim {
  /** Virtual time in microseconds. */
  now = 0;
  /** Events executed over the simulator's lifetime. */
  eventsRun = 0;
  private heap: Entry[] = [];
  private nextId = 0;
  private stopRequested = false;

  /** Run `fn` after `delayUs` (>= 0) of virtual time; ties run in scheduling order. */
  schedule(delayUs: number, fn: () => void): TimerHandle {
    if (!(delayUs >= 0) || !Number.isFinite(delayUs)) {
      throw new ContractError(`schedule delay ${delayUs} µs is not a finite non-negative number`, { field: 'delayUs' });
    }
    const id = this.nextId++;
    const handle: TimerHandle = { id, cancelled: false, at: this.now + delayUs };
    this.push({ at: handle.at, id, fn, handle });
    return handle;
  }

  cancel(handle: TimerHandle | null | undefined): void {
    if (handle) handle.cancelled = true;
  }

  /** Events still queued (cancelled ones included until they surface). */
  get pending(): number {
    return this.heap.length;
  }

  /** Ask a running `run()` to return after the current event. */
  stop(): void {
    this.stopRequested = true;
  }

  run(opts: RunOptions = {}): RunResult {
    const cap = opts.maxEvents ?? DEFAULT_MAX_EVENTS;
    let events = 0;
    this.stopRequested = false;
    while (this.heap.length > 0) {
      const top = this.heap[0]!;
      if (top.handle.cancelled) {
        this.pop();
        continue;
      }
      if (opts.until !== undefined && top.at > opts.until) {
        this.now = Math.max(this.now, opts.until);
        return { events, reason: 'until' };
      }
      if (events >= cap) throw new SimEventCapError(cap, this.now);
      this.pop();
      this.now = top.at;
      events++;
      this.eventsRun++;
      top.fn();
      if (this.stopRequested) return { events, reason: 'stopped' };
    }
    if (opts.until !== undefined) this.now = Math.max(this.now, opts.until);
    return { events, reason: 'idle' };
  }

  // Binary min-heap on (at, id): deterministic order for equal times.
  private less(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.id < b.id);
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
