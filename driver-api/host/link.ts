// A point-to-point Ethernet link between two ports: propagation latency, optional serialization rate (so
// frames queue behind each other), and a per-frame impairment hook standing in for netem (loss, reorder,
// duplication, corruption), all on the virtual clock. Every decision is logged for timelines and tests.
import { ContractError } from '../../emulator/errors.ts';
import type { Rng } from './rng.ts';
import type { Sim } from './sim.ts';

/** Anything that takes Ethernet frames off a wire: a NIC, a PlainNetDevice. */
export interface FramePort {
  receiveFrame(frame: Uint8Array): void;
}

export type LinkDirection = 'a>b' | 'b>a';

export type Impairment =
  | 'pass'
  | 'drop'
  | { delayUs: number }
  | { duplicate: true }
  | { corrupt: (frame: Uint8Array) => void };

/** Decides the fate of frame number `index` (0-based, per direction). */
export type ImpairFn = (frame: Uint8Array, direction: LinkDirection, index: number) => Impairment;

export type LinkAction = 'pass' | 'drop' | 'delay' | 'duplicate' | 'corrupt';

export type LinkLogEntry = {
  /** Virtual time the frame entered the link (µs). */
  t: number;
  dir: LinkDirection;
  index: number;
  len: number;
  action: LinkAction;
  /** Arrival time at the far port; -1 when dropped. */
  arriveAt: number;
  /** The frame as sent (a copy), only with `capture: true`. */
  frame?: Uint8Array;
};

export type LinkOptions = {
  latencyUs?: number;
  /** Serialization rate in bytes per second; omitted = infinitely fast (no queueing). */
  rateBytesPerSec?: number;
  impair?: ImpairFn;
  /** Keep a copy of every frame in the log (tests that inspect segments on the wire). */
  capture?: boolean;
};

export class Link {
  readonly log: LinkLogEntry[] = [];
  private readonly ports: [FramePort | null, FramePort | null] = [null, null];
  private readonly busyUntil = [0, 0];
  private readonly index = [0, 0];
  private readonly latencyUs: number;
  private readonly rate: number;
  impair: ImpairFn | null;
  private readonly capture: boolean;

  constructor(private readonly sim: Sim, opts: LinkOptions = {}) {
    this.latencyUs = opts.latencyUs ?? 50;
    this.rate = opts.rateBytesPerSec ?? 0;
    if (!(this.latencyUs >= 0)) throw new ContractError(`link latency ${this.latencyUs} µs is negative`, { field: 'latencyUs' });
    if (!(this.rate >= 0)) throw new ContractError(`link rate ${this.rate} B/s is negative`, { field: 'rateBytesPerSec' });
    this.impair = opts.impair ?? null;
    this.capture = opts.capture ?? false;
  }

  attach(a: FramePort, b: FramePort): void {
    this.ports[0] = a;
    this.ports[1] = b;
  }

  /** The function side A (or B) puts frames on the wire with: hand it to a NIC's attachWire. */
  sender(side: 'a' | 'b'): (frame: Uint8Array) => void {
    const dir: LinkDirection = side === 'a' ? 'a>b' : 'b>a';
    return (frame) => this.send(dir, frame);
  }

  send(dir: LinkDirection, frame: Uint8Array): void {
    const d = dir === 'a>b' ? 0 : 1;
    const to = this.ports[1 - d];
    if (!to) throw new ContractError('link.send before attach()', { field: 'link' });
    const index = this.index[d]!++;
    const fate = this.impair ? this.impair(frame, dir, index) : 'pass';
    const entry: LinkLogEntry = { t: this.sim.now, dir, index, len: frame.length, action: 'pass', arriveAt: -1 };
    if (this.capture) entry.frame = frame.slice();
    this.log.push(entry);
    if (fate === 'drop') {
      entry.action = 'drop';
      return;
    }
    // Serialization: a frame starts when the previous one in this direction has left (a FIFO queue).
    let start = this.sim.now;
    if (this.rate > 0) {
      start = Math.max(start, this.busyUntil[d]!);
      this.busyUntil[d] = start + Math.ceil((frame.length * 1e6) / this.rate);
      start = this.busyUntil[d]!;
    }
    let arrive = start + this.latencyUs;
    // The receiver owns what it gets (a NIC decrypts in place): deliver a private copy.
    const out = frame.slice();
    if (fate !== 'pass') {
      if ('delayUs' in fate) {
        entry.action = 'delay';
        arrive += Math.max(0, fate.delayUs);
      } else if ('duplicate' in fate) {
        entry.action = 'duplicate';
        const dup = frame.slice();
        this.sim.schedule(arrive - this.sim.now, () => to.receiveFrame(dup));
      } else {
        entry.action = 'corrupt';
        fate.corrupt(out);
      }
    }
    entry.arriveAt = arrive;
    this.sim.schedule(arrive - this.sim.now, () => to.receiveFrame(out));
  }
}

export type RandomImpairmentOptions = {
  loss?: number;
  /** Probability a frame is held back by `reorderDelayUs` (later frames overtake it). */
  reorder?: number;
  reorderDelayUs?: number;
  duplicate?: number;
  /** Probability one bit of the TCP segment is flipped (the receiver's checksum must catch it). */
  corrupt?: number;
  /** Only impair this direction; default both. */
  only?: LinkDirection;
};

/** A seeded netem-like impairment: one draw per frame decides drop, corrupt, duplicate, reorder or pass. */
export function randomImpairment(rng: Rng, o: RandomImpairmentOptions): ImpairFn {
  const loss = o.loss ?? 0;
  const corrupt = o.corrupt ?? 0;
  const dup = o.duplicate ?? 0;
  const reorder = o.reorder ?? 0;
  const delay = o.reorderDelayUs ?? 500;
  return (frame, dir) => {
    if (o.only && dir !== o.only) return 'pass';
    const x = rng.next() / 0x1_0000_0000;
    if (x < loss) return 'drop';
    if (x < loss + corrupt) {
      // Flip a bit in the last 20 bytes: always inside the TCP header or payload (IPv4 or IPv6), so only
      // the TCP checksum can catch it, as a flipped bit on a real wire past the IP header would be.
      const span = Math.min(20, frame.length);
      const pos = frame.length - 1 - rng.int(span);
      const bit = 1 << rng.int(8);
      return { corrupt: (f: Uint8Array) => { f[pos] = f[pos]! ^ bit; } };
    }
    if (x < loss + corrupt + dup) return { duplicate: true };
    if (x < loss + corrupt + dup + reorder) return { delayUs: delay };
    return 'pass';
  };
}
