// `tlsnic run --timeline`: what each direction of each connection of one world went through, as marks for the
// page cli/timeline.ts draws (the replay's marks are the same). For the direction A>B of a connection: the
// frames A's device sent (encrypted, sent as is, dropped), what the link did to some of them (the scenario's
// impairments), the frames B's device received (decrypted or passed up encrypted), where B's device lost RX
// sync and resynced, and the tlsdev_ops calls both stacks made for it. Times are the world's virtual time.
// The mark type, its caps and the marks of sync and call events are the replay's too (cli/replay/engine.ts).
import { formatDriverCall, type TlsStackEvent } from '../driver-api/stack/stack.ts';
import { WireError } from '../emulator/errors.ts';
import type { Impairment, LinkDirection } from '../driver-api/host/link.ts';
import type { NicEvent } from '../emulator/nic/types.ts';
import { TcpSegmentView } from '../emulator/wire/packet.ts';
import { serverPortOf, type Side } from './world.ts';

/** A stretch of a timeline's clock (seconds from the capture's first packet, or the world's virtual start); `to` may be Infinity. */
export type TimeWindow = { from: number; to: number };

/** Whether `t` falls in `w` (no window: everything does). */
export function inWindow(w: TimeWindow | null | undefined, t: number): boolean {
  return !w || (t >= w.from && t <= w.to);
}

/** One mark on a timeline chart: a packet (a bar) or an event between packets (a line). */
export type TimelineMark = {
  /** Seconds (capture time from the first packet in a replay, virtual time in a world). */
  t: number;
  flow: number;
  dir: 'tx' | 'rx';
  seq: number;
  len: number;
  mark: 'decrypted' | 'encrypted' | 'plain' | 'not-decrypted' | 'drop' | 'mismatch' | 'resync' | 'lost' | 'call' | 'impair';
  note?: string;
  /** 'call' marks: the tlsdev_ops op the stack called or the kernel helper the driver called. */
  op?: string;
};

/**
 * Marks drawn per connection (replay) or connection direction (run): a chart of more is unreadable and the page
 * grows by ~200 bytes a mark. What comes after is counted, and the page says how much was left out.
 */
export const TIMELINE_MARKS_CAP = 20_000;

/**
 * Marks a replay or a world keeps in memory in all (~100 bytes each): past it they are counted as left out as
 * past a connection's cap, so a long capture's --timeline does not grow the heap with its packets.
 */
export const TIMELINE_RECORD_CAP = 1_000_000;

/** The note a connection (or direction) whose marks were not all kept carries on its page. */
export function leftOutNote(what: 'connection' | 'direction', drawn: number, leftOut: number, cap = TIMELINE_MARKS_CAP, kept = TIMELINE_RECORD_CAP): string {
  return `the charts draw the first ${drawn} events of this ${what}; ${leftOut} more are left out (at most ${cap} a ${what} and ${kept} in all are kept)`;
}

type MarkBody = Omit<TimelineMark, 't' | 'flow'>;

/**
 * The mark of a device's RX sync event (lost, the device asking for a resync, a resync applied), or null for any
 * other event: the replay's and the run's timelines draw these alike.
 */
export function syncMark(ev: NicEvent): MarkBody | null {
  switch (ev.kind) {
    case 'rx-lost':
      return { dir: 'rx', seq: ev.seq, len: 0, mark: 'lost', note: ev.reason };
    case 'rx-resync-request':
      return { dir: 'rx', seq: ev.recordSeq, len: 0, mark: 'resync', note: 'device asks for resync' };
    case 'rx-resync':
      return { dir: 'rx', seq: ev.seq, len: 0, mark: 'resync', note: `tls_dev_resync rec ${ev.recSeq}: ${ev.result}` };
    default:
      return null;
  }
}

/** A stack event that is a call (a tlsdev_ops call, or a resync helper the driver called): its socket and mark. */
export function callMark(ev: TlsStackEvent): { sk: number; mark: MarkBody } | null {
  if (ev.kind === 'helper-call') return { sk: ev.sk, mark: { dir: ev.dir, seq: ev.seq ?? 0, len: 0, mark: 'call', op: ev.op, note: ev.note } };
  if (ev.kind !== 'driver-call') return null;
  const c = ev.call;
  return { sk: c.sk, mark: { dir: c.dir, seq: c.seq ?? 0, len: 0, mark: 'call', op: c.op, note: formatDriverCall(c) } };
}

/** One direction of one connection: its marks in time order (sender's TX and receiver's RX), and how many past the cap were left out. */
export type WorldTimelineDir = { flow: number; dir: LinkDirection; marks: TimelineMark[]; leftOut: number };

/**
 * Collects marks while a world runs. Contexts and sockets are mapped to a connection by its server port (the
 * port of B's listening socket, each connection its own); finish() names the sockets of the calls.
 */
export class WorldTimelineRecorder {
  private readonly dirs = new Map<string, WorldTimelineDir>();
  /** Device context (side + handle) to its connection's server port and direction. */
  private readonly ctxs = new Map<string, { port: number; dir: LinkDirection }>();
  /** Calls wait for the end: a socket is named by its connection only once the world has made them all. */
  private readonly calls: Array<{ side: Side; sk: number; t: number; mark: MarkBody }> = [];
  private readonly view = new TcpSegmentView();
  private kept = 0;

  constructor(
    private readonly nowUs: () => number,
    private readonly flowOfPort: (port: number) => number | null,
    private readonly cap = TIMELINE_MARKS_CAP,
    /** Keep only the marks of this stretch of virtual time (--timeline-window); the cap counts from its start. */
    readonly window: TimeWindow | null = null,
  ) {}

  /** A device event on `side`'s NIC. */
  nicEvent(side: Side, ev: NicEvent): void {
    if (ev.kind === 'ctx-add') {
      const sending = ev.dir === 'tx';
      this.ctxs.set(`${side}${ev.ctx}`, { port: serverPortOf(side, ev.tuple), dir: (side === 'a') === sending ? 'a>b' : 'b>a' });
      return;
    }
    const at = this.ctxs.get(`${side}${'ctx' in ev ? ev.ctx : -1}`);
    if (!at) return;
    const add = (m: MarkBody) => this.add(at.port, at.dir, m);
    const sync = syncMark(ev);
    if (sync) return add(sync);
    switch (ev.kind) {
      case 'ctx-del':
        this.ctxs.delete(`${side}${ev.ctx}`); // handles are reused by later adds
        return;
      case 'rx':
        return add({ dir: 'rx', seq: ev.seq, len: ev.len, mark: ev.decrypted ? 'decrypted' : 'not-decrypted', ...(ev.note ? { note: ev.note } : {}) });
      case 'tx':
        return add({ dir: 'tx', seq: ev.seq, len: ev.len, mark: ev.encrypted ? 'encrypted' : 'plain' });
      case 'tx-drop':
        return add({ dir: 'tx', seq: ev.seq, len: ev.len, mark: 'drop', note: ev.reason });
      case 'tx-resync':
        return add({ dir: 'tx', seq: ev.seq, len: 0, mark: 'resync', note: `TX resync to record ${ev.recSeq} at seq ${ev.seq}` });
      default:
        return;
    }
  }

  /** An event of `side`'s TLS stack: its tlsdev_ops calls and the resync helpers its driver called become marks. */
  stackEvent(side: Side, ev: TlsStackEvent): void {
    const c = callMark(ev);
    const t = this.nowUs() / 1e6;
    if (c && inWindow(this.window, t)) this.calls.push({ side, sk: c.sk, t, mark: { ...c.mark, note: `${side.toUpperCase()}: ${c.mark.note}` } });
  }

  /** What the link did to a frame going `dir`, when it did more than pass it. */
  linkFate(frame: Uint8Array, dir: LinkDirection, fate: Impairment): void {
    if (fate === 'pass') return;
    const v = this.view;
    try {
      if (v.parse(frame) !== 'tcp') return;
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      return; // not a frame of ours to draw
    }
    const port = dir === 'a>b' ? v.dstPort : v.srcPort;
    const what = fate === 'drop' ? 'drop' : 'delayUs' in fate ? `delay ${fate.delayUs} µs` : 'duplicate' in fate ? 'duplicate' : 'corrupt';
    this.add(port, dir, { dir: 'rx', seq: v.seq, len: 0, mark: 'impair', op: what, note: `link: ${what} of the segment at seq ${v.seq} (${v.payloadLength} bytes)` });
  }

  /** The marks per connection direction, calls placed by time; `portOfSocket(side, sk)` names a socket's connection. */
  finish(portOfSocket: (side: Side, sk: number) => number | null): WorldTimelineDir[] {
    for (const { side, sk, t, mark } of this.calls) {
      const port = portOfSocket(side, sk);
      if (port === null) continue;
      // A's TX and B's RX serve A>B.
      const dir: LinkDirection = (side === 'a') === (mark.dir === 'tx') ? 'a>b' : 'b>a';
      const d = this.dirOf(port, dir);
      if (d) this.push(d, { t, flow: d.flow, ...mark });
    }
    const out = [...this.dirs.values()].sort((x, y) => x.flow - y.flow || (x.dir === 'a>b' ? -1 : 1) - (y.dir === 'a>b' ? -1 : 1));
    for (const d of out) d.marks.sort((x, y) => x.t - y.t); // stable: events of one instant keep their order
    return out;
  }

  private add(port: number, dir: LinkDirection, m: MarkBody): void {
    const t = this.nowUs() / 1e6;
    if (!inWindow(this.window, t)) return;
    const d = this.dirOf(port, dir);
    if (d) this.push(d, { t, flow: d.flow, ...m });
  }

  private push(d: WorldTimelineDir, m: TimelineMark): void {
    if (d.marks.length < this.cap && this.kept < TIMELINE_RECORD_CAP) {
      d.marks.push(m);
      this.kept++;
    } else d.leftOut++;
  }

  private dirOf(port: number, dir: LinkDirection): WorldTimelineDir | null {
    const key = `${port}${dir}`;
    let d = this.dirs.get(key);
    if (!d) {
      const flow = this.flowOfPort(port);
      if (flow === null) return null;
      this.dirs.set(key, (d = { flow, dir, marks: [], leftOut: 0 }));
    }
    return d;
  }
}
