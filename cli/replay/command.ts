// `tlsnic replay ...`: options to files and stdout. Exit codes: 0 when at least one connection replayed,
// 1 when nothing could be replayed, 2 for bad input (not a capture, bad arguments).
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, onOutput } from '../../emulator/errors.ts';
import { formatIp, parseIp } from '../../emulator/wire/addr.ts';
import { openCapture, PcapngWriter } from '../../emulator/capture/index.ts';
import { LINKTYPE_ETHERNET } from '../../emulator/capture/types.ts';
import { loadDriver } from '../../driver-api/drivers/index.ts';
import { envInt, type ReplayArgs } from '../args.ts';
import { stdoutWriter, writeOut } from '../output.ts';
import { jsonLine, jsonLinesSummary, jsonPieces, textPieces } from '../report.ts';
import { MAX_HELD_BYTES } from './scenario.ts';
import { renderTimeline } from '../timeline.ts';
import { OUT_ORDER_OWN, replay, type FlowReport, type OutFrame, type ReplayResult } from './engine.ts';
import { replayParallel } from './parallel.ts';
import { REPORTS_IN_MEMORY, ReportSpill } from './report-spill.ts';
import { MinHeap } from './min-heap.ts';

export function parseLocal(s: string): { ip: string; port: number | null } {
  // 10.0.0.1, 10.0.0.1:443, [fd00::1]:443, fd00::1
  const v6 = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(s);
  if (v6) return { ip: canonicalIp(v6[1]!, s), port: v6[2] ? portOf(v6[2]) : null };
  if (s.includes(':') && s.split(':').length > 2) return { ip: canonicalIp(s, s), port: null };
  const [ip, port] = s.split(':');
  if (!ip || !/^\d+\.\d+\.\d+\.\d+$/.test(ip)) throw new ConfigError(`--local '${s}' is not <ip>[:port]`, { field: '--local' });
  return { ip: canonicalIp(ip, s), port: port ? portOf(port) : null };
}

/** The address as the replay prints packets' addresses (an IPv6 address in its compressed form), or a ConfigError. */
function canonicalIp(ip: string, given: string): string {
  let bytes: Uint8Array;
  try {
    bytes = parseIp(ip);
  } catch (e) {
    throw new ConfigError(`--local '${given}': ${(e as Error).message.replace(/ \(at field address\)$/, '')}`, { field: '--local' });
  }
  return formatIp(bytes, 0, bytes.length);
}

function portOf(p: string): number {
  const n = Number(p);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new ConfigError(`port ${p} out of range`, { field: '--local' });
  return n;
}

/** `<local>_<remote>.rx.bin`; a later connection on the same 4-tuple gets `-2`, `-3`... after the remote end. */
export function flowFileName(f: FlowReport, dir: 'tx' | 'rx'): string {
  const nth = f.tupleReuse ? `-${f.tupleReuse + 1}` : '';
  return `${f.local}_${f.remote}${nth}.${dir}.bin`.replace(/[[\]]/g, '').replace(/:/g, '_');
}

/** Files --plaintext-dir keeps open at once; a file written again after its fd was closed is reopened to append. */
export const PLAINTEXT_OPEN_FILES = 256;

/**
 * --plaintext-dir: each flow direction's plaintext appended to its own file (flowFileName), created at its
 * first bytes. A flow belongs to one replay (one worker with --workers), so every file has one writer. At most
 * `maxOpen` files are open at once (the least recently written is closed first; a capture of many connections
 * met the 1024 open files a process usually may have), and a connection's files close when it ends (`end`).
 */
export function plaintextFiles(dir: string, maxOpen = PLAINTEXT_OPEN_FILES): {
  write: (flow: FlowReport, dir: 'tx' | 'rx', data: Uint8Array) => void;
  end: (flow: FlowReport) => void;
  close: () => void;
} {
  // Open files, least recently written first (a Map keeps insertion order); files written to and not ended.
  const open = new Map<string, number>();
  const started = new Set<string>();
  return {
    write(flow, d, data) {
      const name = join(dir, flowFileName(flow, d));
      let fd = open.get(name);
      if (fd !== undefined) open.delete(name);
      else {
        if (open.size >= maxOpen) {
          const [oldest, oldFd] = open.entries().next().value!;
          open.delete(oldest);
          onOutput(oldest, '--plaintext-dir', () => closeSync(oldFd));
        }
        const flags = started.has(name) ? 'a' : 'w';
        fd = onOutput(name, '--plaintext-dir', () => openSync(name, flags));
        started.add(name);
      }
      open.set(name, fd);
      onOutput(name, '--plaintext-dir', () => writeSync(fd, data));
    },
    end(flow) {
      for (const d of ['tx', 'rx'] as const) {
        const name = join(dir, flowFileName(flow, d));
        const fd = open.get(name);
        if (fd !== undefined) onOutput(name, '--plaintext-dir', () => closeSync(fd));
        open.delete(name);
        started.delete(name);
      }
    },
    close() {
      for (const [name, fd] of open) onOutput(name, '--plaintext-dir', () => closeSync(fd));
      open.clear();
      started.clear();
    },
  };
}

/** LINKTYPE_USER0: private use. Handed-up frames go there so tshark's TCP/TLS analysis of the wire stays clean. */
export const LINKTYPE_HANDED_UP = 147;

/** What `--out` holds; printed by `tlsnic help` (REPLAY_HELP) and written as the pcapng section comment. */
export const OUT_LAYOUT = `--out <file> writes pcapng with two interfaces:
  interface 0 (Ethernet): the wire at the local host's NIC. Received frames exactly as they arrived
    (before the device decrypted anything), each with the comment "tlsnic rx wire: skb->decrypted=1"
    or "=0" (did the device decrypt and authenticate every record byte in it); transmitted frames as the
    device put them on the wire (ciphertext; "tlsnic tx wire: equals capture"). tshark or Wireshark
    decrypts this interface with the same key log (-o tls.keylog_file:FILE).
  interface 1 (LINKTYPE_USER0 = 147, Ethernet frames): what the NIC handed up to the stack, one per
    received frame, with the same comment. Decrypted frames carry plaintext in place of the record
    bodies (headers, explicit nonces and tags stay where they were), so they are not valid TLS: they
    sit on a link type Wireshark does not dissect by default. To see them decoded, map User 0 to
    Ethernet and filter on the interface: -o 'uat:user_dlts:"User 0 (DLT=147)","eth_withoutfcs","0","","0",""'
    -Y 'frame.interface_id == 1'.`;

export const REPLAY_HELP = `${OUT_LAYOUT}
--timeline <file> writes a self-contained HTML page (no network): per connection and direction, packets
  over TCP sequence number with decrypted / not decrypted / resync / drop marks, where the device lost
  and regained sync, and every driver call (tls_dev_add/del/resync, resync requests). It draws at most
  20,000 events a connection, the first ones; --timeline-window FROM:TO (seconds of capture time from
  its first packet, e.g. 95:96.5, or 95: to the end) draws only that stretch, so a late one can be seen.
--driver <module path> loads a third-party driver: an ES module (.mjs/.js; .ts only when node can
  import TypeScript) whose default export is { name, probe(nic, kernel, opts) }.
--workers <n> spreads the connections over n receive queues, one worker thread each, as a NIC's RSS
  does (Toeplitz hash of the 4-tuple, both directions of a connection on one queue, then a 128-entry
  indirection table filled round robin). Same output as one thread (--out, --timeline and --scenario too;
  not a scenario with tableFull, which sizes the NIC's one table: each queue has its own).
--scenario <file> impairs what the local host receives, between the wire and its NIC, and checks
  expectations (fixtures/replay-scenarios/*.json; schema in cli/replay/scenario.ts): drop, reorder,
  duplicate or badChecksum the segment holding record N's header or its nth body segment of connection F
  (numbered as in the table, from 0), corruptCiphertext of record N, tableFull, linkDown (NETDEV_DOWN
  at a capture time), random loss/reorder/duplication. A dropped segment arrives again after "after" later segments of its connection (the
  sender's retransmission; the capture has none). Expectations: every received byte delivered once and in
  order (checked against the capture's own records, which the replay then opens too), every loss of RX
  sync followed by the device decrypting again ("recovered"), counter ranges. Exit 1 when one fails.
--json-lines writes one JSON line per connection as soon as its report is final (TIME_WAIT, 60 s of
  capture time, after the connection's end; the rest at the capture's end): its --json flows entry with
  "firstPacket" (the capture packet number of its first packet), then a last line {"summary": {...}}
  with the connection count and what --json has besides flows. Memory then does not grow with the number
  of connections. With --workers each queue's lines come as they are made (order by firstPacket). Not
  with --scenario or --timeline.
A progress bar appears on stderr when stderr is a terminal and the replay runs longer than a second (TLSNIC_PROGRESS_AFTER_MS changes the wait).`;

const WIRE_RX = ['tlsnic rx wire: skb->decrypted=0', 'tlsnic rx wire: skb->decrypted=1'] as const;
const UP_RX = [
  'tlsnic rx handed up: skb->decrypted=0 (as received)',
  'tlsnic rx handed up: skb->decrypted=1 (record bodies are plaintext)',
] as const;

/** A queue's --out file and where each of its frames goes (OutCapture with `track`). */
export type OutPart = { file: string; packets: readonly number[]; orders: readonly number[] };

/** A queued --out frame; `n` keeps frames of one place in the order they came. */
type Pending = { packet: number; order: number; n: number; data: Uint8Array; tsNs: bigint; linkType: number; comment: string };

function pendingBefore(a: Pending, b: Pending): boolean {
  return before(a.packet, a.order, b.packet, b.order) || (a.packet === b.packet && a.order === b.order && a.n < b.n);
}

/** Whether a frame at (packet, order) goes before one at (packet2, order2) (OutFrame.order). */
function before(packet: number, order: number, packet2: number, order2: number): boolean {
  return packet < packet2 || (packet === packet2 && order < order2);
}

/** The --out file's writer: two interfaces (the wire, what was handed up), the layout in the section comment. */
function outWriter(path: string | null): PcapngWriter {
  return new PcapngWriter(path, { linkType: LINKTYPE_ETHERNET, comment: `tlsnic replay output.\n${OUT_LAYOUT}` });
}

/**
 * --out of a replay with --workers: each queue wrote its connections' frames to a file of its own, in capture
 * packet order (`packets` and `orders`, one each per frame: OutFrame); interleaved by them (a packet belongs to
 * one connection, so to one queue, and so does the packet a frame delivered out of turn was lost at) they are
 * the file one thread writes.
 */
export function mergeOutCaptures(path: string, parts: ReadonlyArray<OutPart>): void {
  const w = outWriter(path);
  const readers = parts.map((p) => openCapture(p.file));
  try {
    const next = parts.map(() => 0);
    const heads = readers.map((r) => r.next());
    for (;;) {
      let best = -1;
      for (let i = 0; i < parts.length; i++) {
        if (!heads[i]) continue;
        const a = parts[i]!;
        const k = next[i]!;
        if (best < 0 || before(a.packets[k]!, a.orders[k]!, parts[best]!.packets[next[best]!]!, parts[best]!.orders[next[best]!]!)) best = i;
      }
      if (best < 0) break;
      const p = heads[best]!;
      w.write({ data: p.data, tsNs: p.tsNs, linkType: p.linkType, ...(p.comment !== undefined ? { comment: p.comment } : {}) });
      next[best]!++;
      heads[best] = readers[best]!.next();
    }
  } finally {
    for (const r of readers) r.close();
    w.close();
  }
}

/** Frames kept to restore capture order, at most this many bytes (then the oldest go out as they are). */
const REORDER_LIMIT = 64 << 20;

/**
 * `--out`: the wire (interface 0) and what was handed up (interface 1), in capture order.
 * - The device decrypts in place, so an arriving frame is copied into one reused buffer and written once
 *   its completion says whether it was decrypted (reference drivers hand each frame up before the next).
 * - The replay holds a TX segment back until its record is complete, while later packets (the peer's ACKs)
 *   go on: frames after a held segment wait here until it is sent, else tshark would see data sent after
 *   its ACK, call it a spurious retransmission and not decrypt it.
 */
export class OutCapture {
  private readonly w: PcapngWriter;
  /**
   * With `track`: the capture packet number and OutFrame.order of every frame written, in file order (a queue
   * of --workers writes its own file; mergeOutCaptures interleaves the files by these).
   */
  readonly packets: number[] | null;
  readonly orders: number[] | null;
  private wire = new Uint8Array(2048);
  private wireLen = -1;
  private wireTs = 0n;
  private wirePacket = 0;
  private wireOrder = OUT_ORDER_OWN;
  /** Frames waiting for an earlier one, least (packet, order, arrival) first: a far-out-of-turn frame costs log n. */
  private readonly queue = new MinHeap<Pending>(pendingBefore);
  private queued = 0;
  private pushed = 0;
  /** The last place of a frame queued in turn: one queued before it was reordered. */
  private lastPacket = -1;
  private lastOrder = 0;
  /** Frames written per interface, and handed-up frames the device decrypted. */
  readonly stats = { wire: 0, handedUp: 0, decrypted: 0, reordered: 0 };

  constructor(path: string | null, opts: { track?: boolean } = {}) {
    this.w = outWriter(path);
    this.packets = opts.track ? [] : null;
    this.orders = opts.track ? [] : null;
  }

  frame(f: OutFrame): void {
    // Nothing older than min(packet, heldFrom) can come any more.
    this.release(Math.min(f.packet, f.heldFrom));
    const order = f.order ?? OUT_ORDER_OWN;
    switch (f.dir) {
      case 'tx':
        this.flushWire(null, f.heldFrom);
        this.emit(f.packet, order, f.heldFrom, f.frame, f.tsNs, LINKTYPE_ETHERNET, `tlsnic tx wire: ${f.note.replace(/^tx: /, '')}`);
        this.stats.wire++;
        return;
      case 'rx-wire':
        this.flushWire(null, f.heldFrom);
        if (f.frame.length > this.wire.length) this.wire = new Uint8Array(f.frame.length * 2);
        this.wire.set(f.frame);
        this.wireLen = f.frame.length;
        this.wireTs = f.tsNs;
        this.wirePacket = f.packet;
        this.wireOrder = order;
        return;
      case 'rx': {
        const d = f.decrypted ? 1 : 0;
        this.flushWire(d, f.heldFrom);
        this.emit(f.packet, order, f.heldFrom, f.frame, f.tsNs, LINKTYPE_HANDED_UP, UP_RX[d]);
        this.stats.handedUp++;
        this.stats.decrypted += d;
        return;
      }
    }
  }

  /** Writes the held wire frame: with its completion's flag, or noting that nothing was handed up. */
  private flushWire(decrypted: 0 | 1 | null, heldFrom: number): void {
    if (this.wireLen < 0) return;
    const comment = decrypted === null ? 'tlsnic rx wire: not handed up' : WIRE_RX[decrypted];
    this.emit(this.wirePacket, this.wireOrder, heldFrom, this.wire.subarray(0, this.wireLen), this.wireTs, LINKTYPE_ETHERNET, comment);
    this.stats.wire++;
    this.wireLen = -1;
  }

  private emit(packet: number, order: number, heldFrom: number, data: Uint8Array, tsNs: bigint, linkType: number, comment: string): void {
    const q = this.queue;
    if (q.size === 0 && packet < heldFrom) {
      this.w.write({ data, tsNs, linkType, comment });
      this.packets?.push(packet);
      this.orders?.push(order);
      return;
    }
    if (q.size > 0 && before(packet, order, this.lastPacket, this.lastOrder)) this.stats.reordered++;
    else {
      this.lastPacket = packet;
      this.lastOrder = order;
    }
    q.push({ packet, order, n: this.pushed++, data: data.slice(), tsNs, linkType, comment });
    this.queued += data.length;
    if (this.queued > REORDER_LIMIT) this.release(-Infinity, REORDER_LIMIT / 2);
  }

  /** Writes queued frames of packets below `below` (or, over the limit, the oldest until `keep` bytes remain). */
  private release(below: number, keep = Infinity): void {
    const q = this.queue;
    while (q.size > 0 && (q.peek()!.packet < below || this.queued > keep)) {
      const p = q.pop()!;
      this.w.write({ data: p.data, tsNs: p.tsNs, linkType: p.linkType, comment: p.comment });
      this.packets?.push(p.packet);
      this.orders?.push(p.order);
      this.queued -= p.data.length;
    }
  }

  bytes(): Uint8Array {
    this.finish();
    return this.w.bytes();
  }

  close(): void {
    this.finish();
    this.w.close();
  }

  private finish(): void {
    this.flushWire(null, Infinity);
    this.release(Infinity);
  }
}

/**
 * Only a replay still running after this long gets a progress bar: short ones print nothing extra.
 * TLSNIC_PROGRESS_AFTER_MS overrides it (tests set 0: whether a replay outlasts a second depends on the machine).
 */
function progressAfterMs(env: string | undefined): number {
  if (env === undefined || env === '') return 1000;
  const n = Number(env);
  if (!Number.isFinite(n) || n < 0) throw new ConfigError(`TLSNIC_PROGRESS_AFTER_MS must be a number of milliseconds >= 0, got "${env}"`, { field: 'TLSNIC_PROGRESS_AFTER_MS' });
  return n;
}
const PROGRESS_EVERY_MS = 100;

/** One progress bar line (no newline): `[#####.....]  50%  12.3 of 24.6 MB`. */
export function progressLine(bytes: number, size: number, width = 30): string {
  const frac = size > 0 ? Math.min(1, Math.max(0, bytes / size)) : 0;
  const done = Math.round(frac * width);
  const mb = (n: number) => (n / 1e6).toFixed(1);
  return `[${'#'.repeat(done)}${'.'.repeat(width - done)}] ${(frac * 100).toFixed(0).padStart(3)}%  ${mb(bytes)} of ${mb(size)} MB`;
}

function progressBar(size: number, write: (s: string) => void, now: () => number = () => performance.now()) {
  const after = progressAfterMs(process.env.TLSNIC_PROGRESS_AFTER_MS);
  const start = now();
  let last = -Infinity;
  let shown = false;
  return {
    update(bytes: number): void {
      const t = now();
      if (t - start < after || t - last < PROGRESS_EVERY_MS) return;
      last = t;
      shown = true;
      write(`\r${progressLine(bytes, size)}`);
    },
    clear(): void {
      if (shown) write('\r\x1b[K');
      shown = false;
    },
  };
}

export async function runReplay(args: ReplayArgs): Promise<number> {
  // zod comes with the scenario schema: loaded only for a scenario (scenario-schema.ts says why).
  const scenario = args.scenario ? (await import('./scenario-schema.ts')).loadReplayScenario(args.scenario) : undefined;
  if (args.workers > 1 && scenario?.impairments.some((i) => i.kind === 'tableFull')) {
    throw new ConfigError('a tableFull impairment sizes the one context table of the NIC; with --workers each queue has a table of its own: use --workers 1', { field: '--scenario' });
  }
  if (args.jsonLines) {
    // Each connection's line goes out when its report is final, so nothing may need them all at the end.
    const why = args.json ? 'give one of --json and --json-lines'
      : args.scenario ? '--scenario checks every connection at the end: leave one out'
      : args.timeline ? '--timeline draws every connection at the end: leave one out' : null;
    if (why) throw new ConfigError(`--json-lines: ${why}`, { field: '--json-lines' });
  }
  if (args.timelineWindow && args.timeline === null) throw new ConfigError('--timeline-window chooses what --timeline draws: give --timeline <file> too', { field: '--timeline-window' });
  const driver = await loadDriver(args.driver);
  const local = args.local ? parseLocal(args.local) : null;
  // Output files are opened before the replay: a bad path fails now, not after a long capture. With --workers
  // each queue writes its own part of --out into a temporary directory, joined at the end.
  const parallelOut = args.out !== null && args.workers > 1;
  const out = args.out && !parallelOut ? new OutCapture(args.out) : null;
  if (parallelOut) onOutput(args.out!, '--out', () => closeSync(openSync(args.out!, 'w')));
  const outDir = parallelOut ? mkdtempSync(join(tmpdir(), 'tlsnic-out-parts-')) : null;
  let outParts: ReadonlyArray<OutPart> = [];
  let timelineFd: number | null = null;
  let files: ReturnType<typeof plaintextFiles> | null = null;
  const lines = args.jsonLines ? stdoutWriter() : null;
  // --json and the table take each report as it becomes final too, kept in order past REPORTS_IN_MEMORY in a
  // temporary file; a scenario and the timeline need every connection at the end.
  const spill = !lines && !scenario && args.timeline === null
    ? new ReportSpill(envInt('TLSNIC_REPORTS_IN_MEMORY', 0, 2 ** 31) ?? REPORTS_IN_MEMORY) : null;
  let streamed = 0;
  let tlsSeen = false;
  const onReport = lines || spill
    ? (f: FlowReport, first: number) => {
      if (lines) lines.write(jsonLine(f, first) + '\n');
      else spill!.add(f, first);
      streamed++;
      tlsSeen ||= f.version !== null;
    }
    : undefined;
  // stdout may be a pipe (--json | jq): the bar goes to stderr, and only to a terminal.
  const bar = process.stderr.isTTY ? progressBar(statSync(args.capture, { throwIfNoEntry: false })?.size ?? 0, (s) => process.stderr.write(s)) : null;
  try {
    const { timeline, plaintextDir } = args;
    if (timeline) timelineFd = onOutput(timeline, '--timeline', () => openSync(timeline, 'w'));
    if (plaintextDir) {
      onOutput(plaintextDir, '--plaintext-dir', () => mkdirSync(plaintextDir, { recursive: true }));
      files = plaintextFiles(plaintextDir);
    }
    const result: ReplayResult = args.workers > 1
      ? await replayParallel({
        capture: args.capture,
        keylog: args.keylog,
        local,
        driver: args.driver,
        tls13: args.tls13,
        plaintextDir: args.plaintextDir,
        timeline: args.timeline !== null,
        timelineWindow: args.timelineWindow,
        outDir,
        ...(scenario ? { scenario, scenarioHeldBytes: Math.floor(MAX_HELD_BYTES / args.workers) } : {}),
        workers: args.workers,
        onProgress: bar ? (bytes) => bar.update(bytes) : undefined,
        onQueueResults: (parts) => (outParts = parts.flatMap((p) => (p.out ? [p.out] : []))),
        onReport,
      })
      : await replay({
        capture: args.capture,
        keylog: args.keylog,
        local,
        driver,
        tls13: args.tls13,
        timeline: args.timeline !== null,
        timelineWindow: args.timelineWindow,
        scenario,
        onFrame: out ? (f) => out.frame(f) : undefined,
        onPlaintext: files?.write,
        onFlowEnd: files?.end,
        onReport,
        onProgress: bar ? (bytes) => bar.update(bytes) : undefined,
      });
    bar?.clear();
    if (parallelOut) onOutput(args.out!, '--out', () => mergeOutCaptures(args.out!, outParts));
    // Said here, after the queues' results are merged: one thread and --workers N say the same.
    if (local && result.flows.length === 0 && streamed === 0) result.problems.push(`no TLS connection has an end at --local ${args.local}`);
    const fd = timelineFd;
    if (fd !== null) onOutput(args.timeline!, '--timeline', () => writeFileSync(fd, renderTimeline(result)));
    if (lines) lines.write(jsonLinesSummary(result, streamed) + '\n');
    else writeOut(args.json ? jsonPieces(result, spill ?? result.flows) : textPieces(result, driver.name, spill ?? result.flows));
    const replayed = tlsSeen || result.flows.some((f) => f.version !== null);
    return replayed && !result.scenario?.failures.length ? 0 : 1;
  } finally {
    bar?.clear();
    out?.close();
    files?.close();
    spill?.close();
    if (timelineFd !== null) closeSync(timelineFd);
    if (outDir) rmSync(outDir, { recursive: true, force: true });
  }
}
