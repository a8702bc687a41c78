// `tlsnic replay`: the connections of a capture, replayed through the emulated NIC of one host.
// For each connection: the TLS walker finds the handshake end and keys; kTLS is installed per direction
// where user space would install it; the local host's transmitted segments go to the driver as the stack
// hands them (plaintext records with a tag placeholder) and the device's output is compared with the
// captured bytes; received segments go through the device, the driver and the stack model to the socket.
import { createHash, type Hash } from 'node:crypto';
import { statSync } from 'node:fs';
import type { AeadBackend } from '../../emulator/crypto/aead.ts';
import { nodeBackend } from '../../emulator/crypto/index.ts';
import { openCapture } from '../../emulator/capture/index.ts';
import { errnoName } from '../../emulator/errno.ts';
import { CaptureError, ConfigError, TlsnicError } from '../../emulator/errors.ts';
import { formatEthtool } from '../../emulator/nic/counters.ts';
import { Nic } from '../../emulator/nic/nic.ts';
import type { NicEvent } from '../../emulator/nic/types.ts';
import { TLS_1_3_VERSION, type CryptoInfo } from '../../emulator/tls/crypto-info.ts';
import { parseKeyLog, type KeyLog } from '../../emulator/tls/keylog.ts';
import { CONTENT_APPLICATION_DATA, TLS_HEADER_SIZE } from '../../emulator/tls/record.ts';
import { TcpSegmentView } from '../../emulator/wire/packet.ts';
import { withPayload } from '../../emulator/wire/builder.ts';
import { seqAdd, seqDiff, seqGeq, seqGt, seqLeq } from '../../emulator/wire/seq.ts';
import type { DriverModule } from '../../driver-api/drivers/index.ts';
import type { FourTuple, NetDevice, SkBuff, TlsKernelHelpers } from '../../driver-api/ops.ts';
import { TlsStack, type TlsSocket } from '../../driver-api/stack/stack.ts';
import { FramePool } from './frame-pool.ts';
import { ethernetFrame, fixSegmentHeaders } from './frames.ts';
import { ReplaySock } from './replay-sock.ts';
import { StreamReassembler } from './reassembly.ts';
import { TlsWalker, type Dir, type WalkRecord, type WalkStart } from './tls-walker.ts';
import { checkScenario, Impairer, type DeliveredRx, type ImpairFlow, type ReplayScenario, type ScenarioFlow, type ScenarioOutcome } from './scenario.ts';
import { TupleCounts } from './tuple-counts.ts';
import { quietEpisode, RxSyncWatch, scanReach } from '../../testbed/recovery.ts';
import { callMark, inWindow, leftOutNote, syncMark, TIMELINE_MARKS_CAP, TIMELINE_RECORD_CAP, type TimelineMark, type TimeWindow } from '../../testbed/timeline.ts';

export type Endpoint = { family: 4 | 6; ip: string; port: number };

export type DirReport = {
  mode: 'hw' | 'sw';
  reason: string | null;
  plaintextBytes: number;
  plaintextSha256: string;
};

export type FlowReport = {
  local: string;
  remote: string;
  /** Connections the capture had on this 4-tuple before this one (a reused client port); absent: none. */
  tupleReuse?: number;
  version: '1.2' | '1.3' | null;
  cipher: string | null;
  /**
   * notSent: captured TX segments after the replay of the direction stopped (the walker gave up on it: a
   * KeyUpdate, a hole in the capture, a record that does not authenticate), which the stack had nothing for.
   */
  tx: DirReport & { wireMatch: boolean; segments: number; matched: number; mismatched: number; dropped: number; notSent: number };
  rx: DirReport & { segments: number; decrypted: number };
  problems: string[];
};

/** The timeline's marks, shared with tlsnic run's (testbed/timeline.ts). */
export type { TimelineMark };

export type ReplayResult = {
  capture: string;
  packets: number;
  flows: FlowReport[];
  ethtool: Record<string, number>;
  tlsStat: Record<string, number>;
  ethtoolText: string;
  tlsStatText: string;
  netdev: string;
  problems: string[];
  timeline: TimelineMark[];
  /** The stretch of capture time the timeline keeps (ReplayOptions.timelineWindow), null: all of it. */
  timelineWindow: TimeWindow | null;
  /** Capture packet number at which each of `flows` was first seen (multi-queue replay merges by it). */
  flowFirstPackets: number[];
  /** With a scenario: what its impairments did and which expectations failed. */
  scenario?: ScenarioOutcome;
  /** With a scenario: what a multi-queue replay's merge checks again over all queues (parallel.ts); `delivered` is per flow of `flows`. */
  scenarioParts?: { delivered: DeliveredRx[]; overflow: number };
};

/** OutFrame.order of a packet's own frames: after any that a scenario delivers at that packet out of turn. */
export const OUT_ORDER_OWN = Number.MAX_SAFE_INTEGER;

/** A frame for `--out`; `packet`, `order` and `heldFrom` let a writer put frames back in capture order. */
export type OutFrame = {
  dir: 'tx' | 'rx' | 'rx-wire';
  frame: Uint8Array;
  /** Capture timestamp of the packet the frame comes from. */
  tsNs: bigint;
  note: string;
  decrypted?: boolean;
  /** Capture packet number the frame comes from. */
  packet: number;
  /**
   * Among frames of one packet number, the order they go out in: a scenario's frames that arrive out of turn
   * (lost while the link was down, held back to the capture's end) come first, ordered by where they were
   * lost (OUT_ORDER_OWN: the packet's own frames, in the order they come).
   */
  order?: number;
  /**
   * Lowest capture packet number whose TX segment the replay still holds back (its record is not complete
   * yet), Infinity when none: every later frame has packet >= min(packet, heldFrom).
   */
  heldFrom: number;
};

export type ReplayOptions = {
  capture: string;
  keylog: string | null;
  local: { ip: string; port: number | null } | null;
  driver: DriverModule;
  tls13: boolean;
  backend?: AeadBackend;
  /**
   * Called with every frame the NIC put on the wire (dir 'tx'; payload-less local segments pass as
   * captured), every frame as it arrives from the wire before the NIC sees it (dir 'rx-wire': the NIC
   * decrypts in place, so copy it), and every frame handed up (dir 'rx', `decrypted` = skb->decrypted).
   */
  onFrame?: (f: OutFrame) => void;
  /** Keep per-packet timeline marks (bounded per flow). */
  timeline?: boolean;
  /** Keep only the marks of this stretch of capture time (--timeline-window): the caps then count from there. */
  timelineWindow?: TimeWindow | null;
  onProgress?: (bytesRead: number) => void;
  /** Application plaintext as it is delivered (rx) or handed to the stack (tx), in stream order. */
  onPlaintext?: (flow: FlowReport, dir: 'tx' | 'rx', data: Uint8Array) => void;
  /** A replayed connection is over: no more onPlaintext for it (its report may still count late packets). */
  onFlowEnd?: (flow: FlowReport) => void;
  /**
   * Each replayed connection's report once it is final (TIME_WAIT after the connection's end, or at the
   * capture's end), with the capture packet number of its first packet; the result then keeps none (`flows`
   * and `flowFirstPackets` are empty), so memory does not grow with the connection count. Not with a scenario.
   */
  onReport?: (flow: FlowReport, firstPacket: number) => void;
  /**
   * Called with each parsed TCP packet before anything else looks at it; false drops the packet from this
   * replay (as if another receive queue took it). Must give the same answer for both directions of a
   * connection. Multi-queue replay uses it to give each worker the flows its RSS queue owns.
   */
  flowFilter?: (v: TcpSegmentView) => boolean;
  /**
   * Memory bounds (defaults MAX_HELD_TX_BYTES, MAX_UNACKED_TX_BYTES per flow, scenario.ts MAX_HELD_BYTES); tests
   * set small ones. readChunkBytes: the capture reader's read size (default 1 MiB): its window moves (and
   * overwrites the bytes of earlier packets) every that many bytes, so tests and the fuzz set a small one to
   * catch anything that keeps a view into a packet past its turn, which a bundled capture would not show.
   */
  limits?: { heldTxBytes?: number; unackedTxBytes?: number; scenarioHeldBytes?: number; readChunkBytes?: number; timelineMarks?: number; timelineKept?: number };
  /** Scripted impairments on what the local host receives, and expectations (scenario.ts). */
  scenario?: ReplayScenario;
};


/**
 * Captured TX bytes one flow may hold back waiting for their records to complete. A record is at most
 * ~16 KiB, so only a hole in the captured stream (a segment the capture lost) gets near this: past it the
 * replay gives up on that direction (a problem, not memory growing with the capture).
 */
export const MAX_HELD_TX_BYTES = 8 << 20;

/**
 * Bytes the stack may have queued and not seen acknowledged. TCP windows are far below this; only a
 * capture missing the peer's ACKs reaches it, and then the oldest bytes count as acknowledged (a problem
 * says so) instead of the queue growing with the capture.
 */
export const MAX_UNACKED_TX_BYTES = 64 << 20;

/**
 * How long a connection's state outlives its end, in capture time: TCP_TIMEWAIT_LEN (60 s, include/net/tcp.h),
 * the TIME_WAIT a real host keeps a closed connection's 4-tuple for. Until then its late packets (a retransmitted
 * FIN, the last ACKs) reach the closed socket (finishedPacket()); after it only its report is kept (evictEnded()),
 * so what a long capture of short connections costs depends on how many end per minute, not on how many it holds.
 */
export const TIME_WAIT_NS = 60_000_000_000n;

/** Problems listed per flow; the rest are counted. */
export const MAX_PROBLEMS_PER_FLOW = 100;

const EMPTY = new Uint8Array(0);

/** A captured TX segment held back; `block` goes back to the FramePool once it is transmitted. */
type PendingTx = { frame: Uint8Array; block: Uint8Array | null; seq: number; len: number; tsNs: bigint; packet: number };

type Flow = {
  index: number;
  /** Capture packet number of the flow's first packet. */
  firstPacket: number;
  /** The 4-tuple, canonical order (see FlowIndex). */
  key: Uint8Array;
  /** Whether the client is the canonical low endpoint (null until roles are known). */
  clientIsLo: boolean | null;
  client: Endpoint | null;
  server: Endpoint | null;
  local: Endpoint | null;
  remote: Endpoint | null;
  txDir: Dir;
  rxDir: Dir;
  reasm: Record<Dir, StreamReassembler | null>;
  walker: TlsWalker;
  sock: ReplaySock | null;
  tls: TlsSocket | null;
  txStart: WalkStart | null;
  txInstalled: boolean;
  rxInstalled: boolean;
  pendingTx: PendingTx[];
  pendingTxBytes: number;
  /** FIN or RST seen per direction: the flow's buffers go when both are done. */
  finC2s: boolean;
  finS2c: boolean;
  released: boolean;
  /** The client's initial sequence number, from its SYN (null: no SYN seen): a SYN with another starts a new connection. */
  synSeq: number | null;
  /** A later connection took over the 4-tuple: this one is closed and reported; frames still held for it are dropped. */
  retired: boolean;
  /** An RST ended the connection (either way). */
  reset: boolean;
  /** Where the peer's FIN came: the end of what the local host receives (null: no FIN yet). */
  rxFinSeq: number | null;
  /** The local application closed its TLS socket (maybeClose()): the device's contexts are gone. */
  sockClosed: boolean;
  /**
   * Over: reported (closeFlow()), its report final and what only a live connection needs let go; or, not
   * replayed, ended both ways (notReplayedEnd()). TIME_WAIT later only its report stays (evictEnded()).
   */
  finalized: boolean;
  /** The TLS socket's error when it closed (closeSocket(); the socket itself is let go after). */
  socketError: number | null;
  unackedNoted: boolean;
  moreProblems: number;
  lastAck: number | null;
  rxStartSeq: number | null;
  /** SHA-256 of the application bytes each way; null once digested into the report (finish()). */
  txHash: Hash | null;
  rxHash: Hash | null;
  report: FlowReport;
  marks: number;
  /** Timeline marks past TIMELINE_MARKS_CAP (or TIMELINE_RECORD_CAP in all), not kept (a flow problem says how many). */
  marksLeftOut: number;
  ignored: boolean;
  /** Under a scenario: the impairer's state for this flow, and what the replay observed of its RX. */
  imp: ImpairFlow | null;
  scen: FlowScenario | null;
};

/**
 * What is left of a connection once TIME_WAIT after its end has passed (evictEnded()): its place and its report
 * (null: a connection the replay did not replay).
 */
class Ended {
  constructor(
    readonly index: number,
    readonly firstPacket: number,
    readonly report: FlowReport | null,
  ) {}
}

/** An Ended with nothing to report (not replayed, or its report handed over: ReplayOptions.onReport): one for all. */
const GONE = new Ended(0, 0, null);

/** A connection of another queue (a multi-queue worker under a scenario counts them: see otherQueue). */
type OtherConnection = { key: Uint8Array; decided: boolean; local: boolean; synSeq: number | null; fins: number };

/** Recent record starts kept per flow to name the record a resync hint points at. */
const RECORD_RING = 1024;

type FlowScenario = {
  resyncType: string | null;
  /** Application plaintext of the captured received records (the walker opens them under a scenario). */
  captureHash: Hash;
  captureBytes: number;
  /** Received records read so far (opened), and record headers seen. */
  opened: number;
  records: number;
  /** Recent record starts: seq -> index (a ring of RECORD_RING), and where the last record ends. */
  starts: Map<number, number>;
  lastEnd: number | null;
  /** The longest received record (header included): how far a scanning device must read to chain headers. */
  maxRecord: number;
  /** First record a corruptCiphertext impairment names, and the capture plaintext before it. */
  corruptRecord: number | null;
  beforeCorrupt: { bytes: number; sha256: string } | null;
  /** Losses of sync, recoveries and resync hints of the flow's RX context (as the testbed records them). */
  sync: RxSyncWatch;
};

/**
 * Flows by 4-tuple straight from packet bytes, both directions to one flow: no strings per packet. The
 * key is family, then the lower endpoint (address bytes, port), then the higher one.
 */
class FlowIndex<T extends { key: Uint8Array }> {
  private readonly buckets = new Map<number, T | T[]>();
  /** After find(): whether the packet's source is the canonical low endpoint. */
  srcIsLo = true;
  private hash = 0;

  find(v: TcpSegmentView): T | undefined {
    const b = v.buf;
    const n = v.addrLength;
    const sa = v.srcAddrOffset;
    const da = v.dstAddrOffset;
    let c = 0;
    for (let i = 0; i < n && c === 0; i++) c = b[sa + i]! - b[da + i]!;
    if (c === 0) c = v.srcPort - v.dstPort;
    const srcIsLo = (this.srcIsLo = c <= 0);
    const lo = srcIsLo ? sa : da;
    const hi = srcIsLo ? da : sa;
    const loPort = srcIsLo ? v.srcPort : v.dstPort;
    const hiPort = srcIsLo ? v.dstPort : v.srcPort;
    const h = (this.hash = tupleHash(b, n, lo, loPort, hi, hiPort));
    const e = this.buckets.get(h);
    if (e === undefined) return undefined;
    if (!Array.isArray(e)) return matches(e.key, b, n, lo, loPort, hi, hiPort) ? e : undefined;
    for (const x of e) if (matches(x.key, b, n, lo, loPort, hi, hiPort)) return x;
    return undefined;
  }

  /** The canonical key of the packet find() just looked at. */
  keyOf(v: TcpSegmentView): Uint8Array {
    const n = v.addrLength;
    const k = new Uint8Array(1 + 2 * (n + 2));
    const lo = this.srcIsLo ? v.srcAddrOffset : v.dstAddrOffset;
    const hi = this.srcIsLo ? v.dstAddrOffset : v.srcAddrOffset;
    const loPort = this.srcIsLo ? v.srcPort : v.dstPort;
    const hiPort = this.srcIsLo ? v.dstPort : v.srcPort;
    k[0] = n;
    k.set(v.buf.subarray(lo, lo + n), 1);
    k[1 + n] = loPort >>> 8;
    k[2 + n] = loPort & 0xff;
    k.set(v.buf.subarray(hi, hi + n), 3 + n);
    k[3 + 2 * n] = hiPort >>> 8;
    k[4 + 2 * n] = hiPort & 0xff;
    return k;
  }

  /** Puts `fresh` where `old`, the entry find() just returned, was (a new connection on the same 4-tuple). */
  replace(old: T, fresh: T): void {
    const e = this.buckets.get(this.hash);
    if (e === old) this.buckets.set(this.hash, fresh);
    else if (Array.isArray(e) && e.includes(old)) e[e.indexOf(old)] = fresh;
    else throw new Error('FlowIndex.replace: not the entry find() returned');
  }

  /** Removes `x` (by its key); false when the index holds another entry for the key, or none. */
  remove(x: T): boolean {
    const k = x.key;
    const n = k[0]!;
    const h = tupleHash(k, n, 1, (k[1 + n]! << 8) | k[2 + n]!, 3 + n, (k[3 + 2 * n]! << 8) | k[4 + 2 * n]!);
    const e = this.buckets.get(h);
    if (e === x) this.buckets.delete(h);
    else if (Array.isArray(e) && e.includes(x)) {
      e.splice(e.indexOf(x), 1);
      if (e.length === 1) this.buckets.set(h, e[0]!);
    } else return false;
    return true;
  }

  /** Adds `x` under the key find() just missed. */
  add(x: T): void {
    const e = this.buckets.get(this.hash);
    if (e === undefined) this.buckets.set(this.hash, x);
    else if (Array.isArray(e)) e.push(x);
    else this.buckets.set(this.hash, [e, x]);
  }
}

/** FNV-1a over a canonical key: address length, the low endpoint's address bytes at `lo` and port, the high one's. */
function tupleHash(b: Uint8Array, n: number, lo: number, loPort: number, hi: number, hiPort: number): number {
  let h = (0x811c9dc5 ^ n) >>> 0;
  for (let i = 0; i < n; i++) h = Math.imul(h ^ b[lo + i]!, 0x01000193);
  h = Math.imul(h ^ loPort, 0x01000193);
  for (let i = 0; i < n; i++) h = Math.imul(h ^ b[hi + i]!, 0x01000193);
  return Math.imul(h ^ hiPort, 0x01000193) >>> 0;
}

/** A client's SYN with `seq` on a known 4-tuple opens a new connection (see takenOver in replay()). */
function newConnection(synSeq: number | null, endedBothWays: boolean, seq: number): boolean {
  return synSeq !== null ? seq !== synSeq : endedBothWays;
}

function matches(k: Uint8Array, b: Uint8Array, n: number, lo: number, loPort: number, hi: number, hiPort: number): boolean {
  if (k[0] !== n) return false;
  for (let i = 0; i < n; i++) if (k[1 + i] !== b[lo + i] || k[3 + n + i] !== b[hi + i]) return false;
  return ((k[1 + n]! << 8) | k[2 + n]!) === loPort && ((k[3 + 2 * n]! << 8) | k[4 + 2 * n]!) === hiPort;
}

/** a[aOff..aOff+len) and b[bOff..bOff+len) hold the same bytes: memcmp in place (the TX wire check runs on every
 * transmitted segment; no views per call). */
function sameBytesAt(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, len: number): boolean {
  return COMPARE.call(a, b, bOff, bOff + len, aOff, aOff + len) === 0;
}
const COMPARE = Buffer.prototype.compare as (this: Uint8Array, target: Uint8Array, tStart: number, tEnd: number, sStart: number, sEnd: number) => number;

function fmtEp(e: Endpoint): string {
  // Joined, not a template literal: V8 keeps a concatenation of 13+ characters as a rope of its parts (~90 B
  // more than the flat string), and a report keeps two of these to the end.
  return e.family === 6 ? ['[', e.ip, ']:', e.port].join('') : [e.ip, e.port].join(':');
}

// Each report's objects as one literal, not a spread of a common part: V8 gives an object spread into a literal
// in optimized code a hidden class of its own (a map and a descriptor array, ~0.5 KB per connection, kept as
// long as the report: 12,600 of each in the bench's capture of short connections).
function txReport(): FlowReport['tx'] {
  return { mode: 'sw', reason: 'not installed', plaintextBytes: 0, plaintextSha256: '', wireMatch: true, segments: 0, matched: 0, mismatched: 0, dropped: 0, notSent: 0 };
}

function rxReport(): FlowReport['rx'] {
  return { mode: 'sw', reason: 'not installed', plaintextBytes: 0, plaintextSha256: '', segments: 0, decrypted: 0 };
}

export async function replay(opts: ReplayOptions): Promise<ReplayResult> {
  const backend = opts.backend ?? nodeBackend;
  const maxHeldTx = opts.limits?.heldTxBytes ?? MAX_HELD_TX_BYTES;
  const maxUnackedTx = opts.limits?.unackedTxBytes ?? MAX_UNACKED_TX_BYTES;
  const marksCap = opts.limits?.timelineMarks ?? TIMELINE_MARKS_CAP;
  const keptCap = opts.limits?.timelineKept ?? TIMELINE_RECORD_CAP;
  let keylog: KeyLog | null = null;
  if (opts.keylog !== null) {
    const { readFileSync } = await import('node:fs');
    let text: string;
    try {
      text = readFileSync(opts.keylog, 'utf8');
    } catch (e) {
      throw new CaptureError(`cannot read key log: ${(e as Error).message}`, { file: opts.keylog });
    }
    keylog = parseKeyLog(text, opts.keylog);
  }

  if (opts.onReport && opts.scenario) {
    throw new ConfigError('a scenario checks every connection at the end of the capture, so their reports cannot be handed over as they become final', { field: '--json-lines' });
  }
  const impairer = opts.scenario ? new Impairer(opts.scenario, opts.limits?.scenarioHeldBytes) : null;
  const captureSize = impairer ? statSync(opts.capture, { throwIfNoEntry: false })?.size ?? 0 : 0;
  let scenarioFlows = 0;
  const others = impairer && opts.flowFilter ? new FlowIndex<OtherConnection>() : null;
  let impairing: Flow | null = null; // the flow whose received frame the impairer is looking at
  const nic = new Nic({
    backend, profile: { tls13: opts.tls13, tso: false, ...(impairer?.tableCapacity != null ? { maxContexts: impairer.tableCapacity } : {}) },
  });
  // Driver calls per flow for the timeline: the stack's tlsdev_ops calls and the resync helpers the driver
  // calls, as stack events.
  const skFlows = new Map<number, Flow>();
  const stack = new TlsStack({
    backend,
    tls13Offload: opts.tls13,
    // Nothing here reads the stack's call log (the timeline takes calls from its events): a capture of many
    // connections would otherwise keep up to a million of them (four per connection).
    callLogLimit: 4096,
    log: opts.timeline
      ? (ev) => {
        const c = callMark(ev);
        const f = c && skFlows.get(c.sk);
        if (f) mark(f, c.mark);
      }
      : undefined,
  });
  const flows = new FlowIndex<Flow>();
  // Every connection in the order it was seen: live, or Ended once TIME_WAIT after its end passed.
  const flowList: (Flow | Ended)[] = [];
  // Connections over (finish(), notReplayedEnd()) with the capture time their TIME_WAIT ends, oldest first (from
  // endedHead on), for evictEnded(). (A deadline: the test per packet then makes no BigInt.)
  const ended: { f: Flow; until: bigint }[] = [];
  let endedHead = 0;
  // Connections so far on a 4-tuple whose last connection was evicted: the next one's tupleReuse.
  const evictedTuples = new TupleCounts();
  // The walker of a connection not replayed (yet: its roles unknown; or not at all) and of one that is over
  // (finish()): one that has seen nothing and holds nothing.
  const idleWalker = new TlsWalker(null, backend, { onStart() {}, onRecord() {}, onProblem() {} });
  const problems: string[] = [];
  const timeline: TimelineMark[] = [];
  const view = new TcpSegmentView();
  const hostView = new TcpSegmentView();
  // Held-back TX segments are copied into reused blocks (FramePool). An skb the replay builds lives only
  // until ndo_start_xmit returns (see NetDevice.startXmit), so every one is built in the same buffer: fresh
  // memory per skb or per held segment made V8 run a full GC for each ~64 MB of it (external memory pressure).
  const pool = new FramePool();
  let skbBuf = new Uint8Array(4096);
  let skbView = skbBuf.subarray(0, 0);
  let now = 0n;
  let tsBase: bigint | null = null;
  // The flow and captured segment (seq, payload) the NIC is working on: its wire output is compared with it.
  let current: { flow: Flow; seq: number; payload: Uint8Array } | null = null;
  const cur: { flow: Flow; seq: number; payload: Uint8Array } = { flow: null as unknown as Flow, seq: 0, payload: EMPTY };
  const setCurrent = (flow: Flow, seq: number, payload: Uint8Array) => {
    cur.flow = flow;
    cur.seq = seq;
    cur.payload = payload;
    current = cur;
  };
  let currentOut = 0;
  // For --out: capture packet numbers of held-back TX segments (ascending), and the one being sent.
  const held: number[] = [];
  const heldFrom = () => held[0] ?? Infinity;
  let txPacket = 0;
  let txTs = 0n;

  const window = opts.timelineWindow ?? null;
  const mark = (flow: Flow, m: Omit<TimelineMark, 't' | 'flow'>) => {
    if (!opts.timeline) return;
    const t = Number(now - (tsBase ?? now)) / 1e9;
    if (!inWindow(window, t)) return;
    if (flow.marks >= marksCap || timeline.length >= keptCap) {
      flow.marksLeftOut++;
      return;
    }
    flow.marks++;
    timeline.push({ t, flow: flow.index, ...m });
  };

  // The local host: netif_receive_skb hands RX skbs to the socket of their flow.
  // The stack's helpers (their calls reach the timeline as stack events); the resync type the driver sets is
  // noted for a scenario's recovery check.
  const stackHelpers = stack.kernelHelpers((skb) => hostReceive(skb));
  const helpers: TlsKernelHelpers = {
    ...stackHelpers,
    tlsOffloadRxResyncSetType: (sk, type) => {
      const sc = skFlows.get(sk.id)?.scen;
      if (sc) sc.resyncType = type;
      stackHelpers.tlsOffloadRxResyncSetType(sk, type);
    },
  };
  const netdev: NetDevice = opts.driver.probe(nic, helpers, {});

  const usUntilNow = () => Number(now - (tsBase ?? now)) / 1000;
  if (impairer && opts.timeline) {
    impairer.onHit = (tally, kind, later, seq, len) => {
      if (impairing) mark(impairing, { dir: 'rx', seq, len: 0, mark: 'impair', op: `#${tally.index} ${kind}`, note: `scenario impairment #${tally.index}: ${kind}${later} (segment seq ${seq}, ${len} bytes)` });
    };
  }
  if (opts.timeline || impairer) nic.onEvent((ev: NicEvent) => {
    if (!current) return;
    const sc = current.flow.scen;
    if (sc) sc.sync.onEvent(ev);
    if (!opts.timeline) return;
    const m = syncMark(ev);
    if (m) mark(current.flow, m);
  });

  /** A scenario's linkDown: the NIC's link, and NETDEV_DOWN to the stack (tls_device_down). */
  function link(up: boolean, netdevDown: boolean): void {
    nic.setLink(up);
    if (!up && netdevDown) stack.netdevDown(netdev);
    for (const f of flowList) {
      if (!(f instanceof Ended) && f.imp) mark(f, { dir: 'rx', seq: 0, len: 0, mark: 'impair', op: up ? 'link up' : 'link down', note: up ? 'NIC link up' : `NIC link down${netdevDown ? ', NETDEV_DOWN' : ''}` });
    }
  }

  /**
   * --out's place for what is received now (OutFrame): the current packet's own frames, unless a scenario
   * delivers a frame out of turn (after a link down, or after the capture's last packet).
   */
  let rxOutPacket = -1; // -1: the current packet
  let rxOutOrder = OUT_ORDER_OWN;

  /**
   * A received frame goes to the NIC (under a scenario, maybe later, twice, or damaged: see scenario.ts).
   * `order`: OutFrame.order of a frame delivered out of turn.
   */
  function deliverRx(f: Flow, frame: Uint8Array, order = OUT_ORDER_OWN): void {
    if (f.retired) {
      // The link came back after the connection's 4-tuple was taken over: its socket is gone.
      problem(f, 'a frame the scenario lost while the link was down arrived after a new connection took over the 4-tuple: dropped');
      return;
    }
    setCurrent(f, 0, EMPTY);
    rxOutOrder = order;
    opts.onFrame?.({ dir: 'rx-wire', frame, tsNs: now, note: 'rx: as received', packet: rxOutPacket >= 0 ? rxOutPacket : packets, order, heldFrom: heldFrom() });
    nic.receiveFrame(frame);
    rxOutOrder = OUT_ORDER_OWN;
  }

  // What the NIC puts on the wire: compare with the captured segment being transmitted.
  nic.attachWire((frame) => {
    currentOut++;
    const c = current;
    if (!c) return;
    const f = c.flow;
    const r = f.report.tx;
    if (hostView.parse(frame) !== 'tcp') return;
    const len = hostView.payloadLength;
    const off = seqDiff(hostView.seq, c.seq);
    const same = off >= 0 && off + len <= c.payload.length && sameBytesAt(frame, hostView.payloadOffset, c.payload, off, len);
    if (same) r.matched++;
    else {
      r.mismatched++;
      if (r.mismatched <= 3) f.report.problems.push(`TX segment seq ${hostView.seq} differs from the capture`);
    }
    mark(f, { dir: 'tx', seq: hostView.seq, len, mark: same ? 'encrypted' : 'mismatch' });
    opts.onFrame?.({ dir: 'tx', frame, tsNs: txTs, note: same ? 'tx: equals capture' : 'tx: DIFFERS from capture', packet: txPacket, order: OUT_ORDER_OWN, heldFrom: heldFrom() });
  });

  function hostReceive(skb: SkBuff): void {
    const c = current;
    if (!c || hostView.parse(skb.data) !== 'tcp') return;
    const f = c.flow;
    // Segments carrying bytes after the TLS RX install point (earlier ones were the handshake).
    const afterInstall = f.rxStartSeq !== null && seqGt(seqAdd(hostView.seq, hostView.payloadLength), f.rxStartSeq);
    f.report.rx.segments += hostView.payloadLength > 0 && afterInstall ? 1 : 0;
    if (skb.decrypted) f.report.rx.decrypted++;
    if (hostView.payloadLength > 0) {
      mark(f, { dir: 'rx', seq: hostView.seq, len: hostView.payloadLength, mark: skb.decrypted ? 'decrypted' : afterInstall ? 'not-decrypted' : 'plain' });
    }
    opts.onFrame?.({
      dir: 'rx', frame: skb.data, tsNs: now, note: skb.decrypted ? 'rx: decrypted by device' : 'rx: not decrypted', decrypted: skb.decrypted,
      packet: rxOutPacket >= 0 ? rxOutPacket : packets, order: rxOutOrder, heldFrom: heldFrom(),
    });
    // TCP drops a segment whose checksum fails (a decrypted skb was verified by the device before it
    // decrypted: CHECKSUM_UNNECESSARY). The replay recomputed every captured RX checksum before the NIC, so
    // only a scenario's badChecksum can fail here: checked under a scenario only.
    if (impairer && !skb.decrypted && !hostView.verifyTcpChecksum()) {
      mark(f, { dir: 'rx', seq: hostView.seq, len: hostView.payloadLength, mark: 'impair', op: 'TCP drop', note: 'TCP checksum error: TCP drops the segment' });
      return;
    }
    if (!f.sock || f.sockClosed) return;
    if (hostView.ackFlag) {
      f.lastAck = hostView.ack;
      applyAck(f);
    }
    f.sock.receive(hostView.seq, hostView.payload(), skb.decrypted);
  }

  function ensureTls(f: Flow): TlsSocket {
    if (!f.tls) {
      f.tls = stack.attach(f.sock!);
      skFlows.set(f.tls.sk.id, f);
      f.tls.onData((data: Uint8Array, type?: number) => {
        if (type !== undefined && type !== CONTENT_APPLICATION_DATA) return;
        f.rxHash!.update(data);
        f.report.rx.plaintextBytes += data.length;
        opts.onPlaintext?.(f.report, 'rx', data);
      });
    }
    return f.tls;
  }

  function makeFlow(key: Uint8Array): Flow {
    const flow: Flow = {
      index: flowList.length + 1, firstPacket: packets, key, clientIsLo: null, client: null, server: null, local: null, remote: null, txDir: 's2c', rxDir: 'c2s',
      reasm: { c2s: null, s2c: null }, walker: idleWalker, sock: null, tls: null, txStart: null,
      txInstalled: false, rxInstalled: false, pendingTx: [], pendingTxBytes: 0, finC2s: false, finS2c: false, released: false, synSeq: null, retired: false, reset: false, rxFinSeq: null, sockClosed: false, finalized: false, socketError: null, unackedNoted: false, moreProblems: 0,
      lastAck: null, rxStartSeq: null, txHash: null, rxHash: null,
      report: {
        local: '', remote: '', version: null, cipher: null,
        tx: txReport(),
        rx: rxReport(),
        problems: [],
      },
      marks: 0, marksLeftOut: 0, ignored: false, imp: null, scen: null,
    };
    return flow;
  }

  /** A connection with a local end is replayed: its walker and the hashes of its application bytes. */
  function startReplay(flow: Flow): void {
    flow.walker = new TlsWalker(keylog, backend, {
      onStart: (s) => onStart(flow, s),
      onRecord: (r) => onRecord(flow, r),
      onProblem: (_dir, why) => problem(flow, why),
      onRecordStart: impairer ? (dir, seq, index, total) => onRecordStart(flow, dir, seq, index, total) : undefined,
    });
    flow.txHash = createHash('sha256');
    flow.rxHash = createHash('sha256');
  }

  /** Whether the packet's source is the client, from a SYN or a ClientHello/ServerHello; null: cannot tell yet. */
  function clientIsSource(v: TcpSegmentView, payload: Uint8Array): boolean | null {
    if (v.syn) return !v.ackFlag;
    if (payload.length >= 6 && payload[0] === 22 && payload[1] === 3) {
      if (payload[5] === 1) return true;
      if (payload[5] === 2) return false;
    }
    return null;
  }

  /** Which end is the local host (--local; the server by default), or null: the connection is not replayed. */
  function localEnd(client: Endpoint, server: Endpoint): Endpoint | null {
    const want = opts.local;
    const isLocal = (e: Endpoint) => want !== null && e.ip === want.ip && (want.port === null || e.port === want.port);
    if (want === null || isLocal(server)) return server;
    return isLocal(client) ? client : null;
  }

  function endpoints(v: TcpSegmentView, clientIsSrc: boolean): [client: Endpoint, server: Endpoint] {
    const family = v.ipVersion as 4 | 6;
    const src: Endpoint = { family, ip: v.srcIp(), port: v.srcPort };
    const dst: Endpoint = { family, ip: v.dstIp(), port: v.dstPort };
    return clientIsSrc ? [src, dst] : [dst, src];
  }

  /**
   * A multi-queue replay's worker under a scenario: another queue's connection. Scenarios name connections by
   * their place among all the replayed ones, so this queue counts the others as one thread would number them.
   */
  function otherQueue(v: TcpSegmentView, payload: Uint8Array): void {
    const opening = v.syn && !v.ackFlag;
    let o = others!.find(v);
    if (!o) {
      o = { key: others!.keyOf(v), decided: false, local: false, synSeq: null, fins: 0 };
      others!.add(o);
    } else if (opening && newConnection(o.synSeq, o.fins === 3, v.seq)) {
      const fresh = { key: o.key, decided: false, local: false, synSeq: null, fins: 0 };
      others!.replace(o, fresh);
      o = fresh;
    }
    if (opening) o.synSeq ??= v.seq;
    // Roles as decideRoles() finds them; a connection that ended both ways before they were known is never
    // replayed (notReplayedEnd()).
    const clientIsSrc = o.decided || o.fins === 3 ? null : clientIsSource(v, payload);
    if (clientIsSrc !== null) {
      o.decided = true;
      const [client, server] = endpoints(v, clientIsSrc);
      o.local = localEnd(client, server) !== null;
      if (o.local) scenarioFlows++;
    }
    // As finished() and notReplayedEnd() count a connection's ends (one bit per direction; an RST ends both).
    if (v.fin || v.rst) o.fins |= v.rst ? 3 : others!.srcIsLo ? 1 : 2;
  }

  /** Who is client and server, from a SYN or a ClientHello/ServerHello; then which side is local. */
  function decideRoles(f: Flow, v: TcpSegmentView, srcIsLo: boolean, payload: Uint8Array): void {
    const clientIsSrc = clientIsSource(v, payload);
    if (clientIsSrc === null) return;
    [f.client, f.server] = endpoints(v, clientIsSrc);
    f.clientIsLo = clientIsSrc === srcIsLo;
    const local = localEnd(f.client, f.server);
    if (local === null) {
      f.ignored = true;
      return;
    }
    [f.local, f.remote] = local === f.server ? [f.server, f.client] : [f.client, f.server];
    startReplay(f);
    f.txDir = f.local === f.client ? 'c2s' : 's2c';
    f.rxDir = f.txDir === 'c2s' ? 's2c' : 'c2s';
    if (impairer) {
      // The walker opens the received records too: the capture's plaintext is what delivery is checked against.
      f.imp = impairer.newFlow(scenarioFlows++);
      const starts = new Map<number, number>();
      const sc: FlowScenario = {
        resyncType: null, captureHash: createHash('sha256'), captureBytes: 0, opened: 0, records: 0, starts, lastEnd: null, maxRecord: 0,
        corruptRecord: impairer.firstCorruptRecord(f.imp.index), beforeCorrupt: null,
        // A hint names a recent record start, or the end of the last record (CORE_NEXT_HINT at the stream's end).
        sync: new RxSyncWatch(usUntilNow, (seq) => starts.get(seq) ?? (seq === sc.lastEnd ? sc.records : -1)),
      };
      f.scen = sc;
    } else {
      f.walker.openOnly(f.txDir);
    }
    f.report.local = fmtEp(f.local);
    f.report.remote = fmtEp(f.remote!);
    const tuple: FourTuple = { family: f.local.family, saddr: f.local.ip, sport: f.local.port, daddr: f.remote!.ip, dport: f.remote!.port };
    f.sock = new ReplaySock(tuple, netdev);
  }

  function onStart(f: Flow, s: WalkStart): void {
    f.report.version = f.walker.version === TLS_1_3_VERSION ? '1.3' : '1.2';
    f.report.cipher = f.walker.cipherName;
    if (s.dir === f.rxDir) {
      if (f.imp) impairer!.rxStarted(f.imp, s.seq, f.walker.version, f.walker.cipherName);
      const tls = ensureTls(f);
      f.sock!.consumeUntil(s.seq);
      f.sock!.rxStartAt(s.seq);
      tls.setCryptoInfo('rx', s.info);
      f.rxInstalled = true;
      f.rxStartSeq = s.seq;
      f.sock!.startUlpRx(s.seq);
    } else {
      f.txStart = s; // installed at the first record: TLS 1.2 GCM takes crypto_info.iv from its nonce
    }
  }

  function onRecordStart(f: Flow, dir: Dir, seq: number, index: number, total: number): void {
    const sc = f.scen;
    if (dir !== f.rxDir || !f.imp || !sc) return;
    impairer!.recordStart(f.imp, index, seq, total);
    sc.starts.set(seq, index);
    if (sc.starts.size > RECORD_RING) sc.starts.delete(sc.starts.keys().next().value!);
    sc.records = index + 1;
    sc.lastEnd = seqAdd(seq, total);
    if (total > sc.maxRecord) sc.maxRecord = total;
  }

  function onRecord(f: Flow, r: WalkRecord): void {
    if (r.dir !== f.txDir) {
      const sc = f.scen;
      if (!sc) return;
      if (sc.opened++ === sc.corruptRecord) sc.beforeCorrupt = { bytes: sc.captureBytes, sha256: sc.captureHash.copy().digest('hex') };
      if (r.type === CONTENT_APPLICATION_DATA) {
        sc.captureHash.update(r.plaintext);
        sc.captureBytes += r.plaintext.length;
      }
      return;
    }
    const sock = f.sock!;
    const tls = ensureTls(f);
    if (!f.txInstalled) {
      const info: CryptoInfo = { ...f.txStart!.info };
      if (f.walker.version !== TLS_1_3_VERSION && info.salt.length === 4) info.iv = r.wire.slice(TLS_HEADER_SIZE, TLS_HEADER_SIZE + 8);
      sock.writeSeq = f.txStart!.seq;
      tls.setCryptoInfo('tx', info);
      f.txInstalled = true;
    }
    if (r.seq !== sock.writeSeq) {
      problem(f, `TX record ${r.recSeq} at seq ${r.seq} does not follow the stack's write_seq ${sock.writeSeq}`);
      sock.writeSeq = r.seq;
    }
    tls.send(r.plaintext, r.type);
    if (seqAdd(r.seq, r.wire.length) !== sock.writeSeq) {
      problem(f, `the stack framed record ${r.recSeq} as ${seqDiff(sock.writeSeq, r.seq)} bytes, the capture has ${r.wire.length}`);
    }
    if (r.type === CONTENT_APPLICATION_DATA) {
      f.txHash!.update(r.plaintext);
      f.report.tx.plaintextBytes += r.plaintext.length;
      opts.onPlaintext?.(f.report, 'tx', r.plaintext);
    }
  }

  function transmit(f: Flow, p: PendingTx): void {
    const start = f.txInstalled ? f.txStart!.seq : null;
    const end = seqAdd(p.seq, p.len);
    view.parse(p.frame);
    const captured = view.payload();
    if (start === null || seqLeq(end, start)) sendPiece(f, p, captured, p.seq, p.len, false);
    else if (seqGeq(p.seq, start)) sendPiece(f, p, captured, p.seq, p.len, true);
    else {
      // A segment straddling the install point: the kernel's collapse fence would have split it there.
      const pre = seqDiff(start, p.seq);
      sendPiece(f, p, captured, p.seq, pre, false);
      sendPiece(f, p, captured, start, p.len - pre, true);
    }
  }

  /** One skb for [seq, seq+len) of captured segment `p` (parsed in `view`), through validate_xmit to the driver. */
  function sendPiece(f: Flow, p: PendingTx, captured: Uint8Array, seq: number, len: number, offloadable: boolean): void {
    const sock = f.sock!;
    let frame: Uint8Array;
    let marked = false;
    if (offloadable) {
      // The stack's queued bytes go straight into the skb behind the captured headers.
      const hdr = view.payloadOffset;
      if (skbBuf.length < hdr + len) skbBuf = new Uint8Array(2 * (hdr + len));
      // One view while segments keep their length (MSS-sized, mostly): no object per segment.
      if (skbView.length !== hdr + len || skbView.buffer !== skbBuf.buffer) skbView = skbBuf.subarray(0, hdr + len);
      frame = skbView;
      const m = sock.copyQueued(seq, len, frame, hdr);
      if (m < 0 && f.walker.isDead(f.txDir)) {
        // The replay of this direction stopped (the walker's note says why): nothing was written to send.
        f.report.tx.notSent++;
        return;
      }
      if (m < 0) {
        // The capture sent these bytes and the replay cannot: the wire does not match.
        f.report.tx.segments++;
        f.report.tx.mismatched++;
        problem(f, `TX bytes ${seq}+${len} were never queued by the stack (or were already acknowledged)`);
        mark(f, { dir: 'tx', seq, len, mark: 'mismatch', note: 'not in the stack\'s queue' });
        return;
      }
      for (let i = 0; i < hdr; i++) frame[i] = p.frame[i]!; // the captured headers
      marked = m === 1;
      fixSegmentHeaders(frame, view, seq, marked);
    } else {
      const off = seqDiff(seq, p.seq);
      frame = withPayload(p.frame, view, seq, captured.subarray(off, off + len));
    }
    const skb: SkBuff = { data: frame, sk: f.tls?.sk ?? null, decrypted: marked, gsoSize: 0 };
    f.report.tx.segments++;
    setCurrent(f, p.seq, captured);
    currentOut = 0;
    txPacket = p.packet;
    txTs = p.tsNs;
    const out = sock.validateXmit(skb);
    if (out) netdev.startXmit(out);
    if (currentOut === 0) {
      f.report.tx.dropped++;
      mark(f, { dir: 'tx', seq, len, mark: 'drop' });
    }
  }

  // The replay holds captured TX segments back until their records are complete, so the peer's ACK of a
  // segment can arrive before the segment is sent here. A real socket never sees an ACK beyond snd_nxt,
  // and its retransmit queue still holds what it sent before the ACK came: clamp the ACK to the lowest
  // held-back segment (a retransmission held behind newer segments is lower than the first one), and
  // apply the rest once those segments go out.
  function applyAck(f: Flow): void {
    if (f.lastAck === null || !f.sock) return;
    let ack = f.lastAck;
    for (const held of f.pendingTx) if (seqGt(ack, held.seq)) ack = held.seq;
    f.sock.ack(ack);
  }

  function releaseTx(f: Flow, final = false): void {
    while (f.pendingTx.length) {
      const p = f.pendingTx[0]!;
      const upTo = f.walker.completeUpTo(f.txDir);
      const ready = final || f.walker.isDead(f.txDir) || seqLeq(seqAdd(p.seq, p.len), upTo);
      if (!ready) return;
      f.pendingTx.shift();
      f.pendingTxBytes -= p.len;
      if (opts.onFrame) held.splice(held.indexOf(p.packet), 1);
      transmit(f, p);
      cur.payload = EMPTY; // a view of p.frame, whose block goes back now
      pool.release(p.block);
      applyAck(f);
    }
  }

  /** A problem of one flow; past MAX_PROBLEMS_PER_FLOW only counted (a broken flow must not fill memory). */
  function problem(f: Flow, why: string): void {
    if (f.report.problems.length < MAX_PROBLEMS_PER_FLOW) f.report.problems.push(why);
    else f.moreProblems++;
  }

  /** A FIN or RST in `dir`: once the connection is over both ways, its walker's buffers go (reports stay). */
  function finished(f: Flow, dir: Dir, rst: boolean, end: number): void {
    if (rst) f.reset = true;
    else if (dir === f.rxDir) f.rxFinSeq ??= end;
    if (rst) f.finC2s = f.finS2c = true;
    else if (dir === 'c2s') f.finC2s = true;
    else f.finS2c = true;
    if (f.finC2s && f.finS2c && !f.released) {
      f.released = true;
      f.walker.release();
    }
  }

  /**
   * A FIN or RST of a connection the replay does not replay (no local end, or its roles never known; its fin
   * flags are then the low and the high endpoint's): once it ended both ways it is over, TIME_WAIT later it goes.
   */
  function notReplayedEnd(f: Flow, srcIsLo: boolean, rst: boolean): void {
    if (rst || srcIsLo) f.finC2s = true;
    if (rst || !srcIsLo) f.finS2c = true;
    if (f.finC2s && f.finS2c && !f.finalized) {
      f.ignored = true;
      f.finalized = true;
      endedNow(f);
    }
  }

  /** `f` is over: TIME_WAIT from now it goes (evictEnded()). Not under a scenario, whose checks read every connection at the end. */
  function endedNow(f: Flow): void {
    if (!impairer) ended.push({ f, until: now + TIME_WAIT_NS });
  }

  /**
   * A client's SYN on a 4-tuple the replay knows: a new connection when the old one's SYN had another ISN, or
   * (no SYN seen) when it ended both ways. A retransmitted SYN carries the same ISN. (TIME_WAIT reuse: the
   * kernel takes a SYN above the old connection's sequence space as a new one, tcp_timewait_state_process().)
   */
  function takenOver(f: Flow, seq: number): boolean {
    return newConnection(f.synSeq, f.finC2s && f.finS2c, seq);
  }

  /** The connection on `f`'s 4-tuple ends here: what it still held arrives, its socket closes, its report is final. */
  function retire(f: Flow): void {
    if (f.local !== null && !f.ignored) {
      problem(f, `a new connection took over its 4-tuple at packet ${packets}${f.finC2s && f.finS2c ? '' : ' (it had not ended both ways)'}`);
      // Before the tuple is the new connection's: the NIC would take them for its frames.
      if (f.imp) impairer!.flush(f.imp, (fr, lostAt) => deliverRx(f, fr, lostAt), packets);
      if (!f.finalized) finish(f);
    } else if (!f.finalized && !impairer) {
      // Not replayed: nothing reaches it any more (the tuple is the new connection's).
      f.finalized = true;
      flowList[f.index - 1] = GONE;
    }
    f.retired = true;
  }

  /**
   * models the application closing its socket once the connection is over: it read up to the peer's FIN, sent
   * its own, and everything it wrote was acknowledged (or an RST ended it). tls_dev_del frees the device's
   * contexts then, as in a long capture of many connections one after another a NIC's table must be freed.
   */
  function maybeClose(f: Flow): void {
    if (f.sockClosed || !f.tls || !f.sock) return;
    if (!f.reset) {
      if (!f.finC2s || !f.finS2c || f.rxFinSeq === null || !f.sock.receivedUpTo(f.rxFinSeq)) return;
      if (f.pendingTx.length || f.sock.unackedBytes > 0) return;
    }
    closeSocket(f);
    finish(f);
  }

  /**
   * The connection is over (its socket closed, or a new one took its 4-tuple): its report is made final and
   * the state only a live connection needs goes, so that a capture of many connections one after another
   * replays in bounded memory. (Frames a scenario still holds for it arrive later, to the closed socket.)
   */
  function finish(f: Flow): void {
    closeFlow(f);
    opts.onFlowEnd?.(f.report);
    endedNow(f);
    if (f.tls) skFlows.delete(f.tls.sk.id);
    f.tls = null;
    f.sock = null;
    f.reasm = { c2s: null, s2c: null };
    f.txStart = null; // its crypto_info: keys
    f.txHash = f.rxHash = null;
    if (!f.released) {
      f.released = true;
      f.walker.release();
    }
    f.walker = idleWalker;
    f.scen?.starts.clear();
    if (f.imp) {
      f.imp.copies.clear();
      f.imp.bodyNth.clear();
    }
  }

  /**
   * TIME_WAIT after its end, a connection leaves the 4-tuple index and only its report stays: a later packet on
   * the tuple starts a new connection, as a SYN after TIME_WAIT does on a real host (a stray late segment
   * there finds no socket; here it makes a connection with no handshake that is not replayed).
   */
  function evictEnded(): void {
    while (endedHead < ended.length && now > ended[endedHead]!.until) {
      const f = ended[endedHead++]!.f;
      // A retired connection's tuple is its successor's already.
      if (flows.remove(f)) evictedTuples.set(f.key, (f.report.tupleReuse ?? 0) + 1);
      const report = f.ignored || !f.local ? null : f.report;
      if (report && opts.onReport) opts.onReport(report, f.firstPacket);
      flowList[f.index - 1] = report && !opts.onReport ? new Ended(f.index, f.firstPacket, report) : GONE;
    }
    if (endedHead >= 1024 && endedHead * 2 >= ended.length) {
      ended.splice(0, endedHead);
      endedHead = 0;
    }
  }

  /** The application's close(): what the socket ran in and why, then tls_sk_proto_close (tls_dev_del). */
  function closeSocket(f: Flow): void {
    const tls = f.tls!;
    // A received record that failed (a bad tag, a malformed header): what the stack said, with its place.
    if (tls.errorDetail) problem(f, `RX: ${tls.errorDetail.message} (socket error ${errnoName(tls.error ?? 0)})`);
    f.report.tx.mode = tls.txMode ?? 'sw';
    f.report.tx.reason = tls.txReason;
    f.report.rx.mode = tls.rxMode ?? 'sw';
    f.report.rx.reason = tls.rxReason;
    if (!f.txInstalled) [f.report.tx.mode, f.report.tx.reason] = ['sw', 'TLS TX never installed'];
    if (!f.rxInstalled) [f.report.rx.mode, f.report.rx.reason] = ['sw', 'TLS RX never installed'];
    setCurrent(f, 0, EMPTY);
    f.sockClosed = true;
    f.socketError = tls.error;
    tls.close();
  }

  /** The connection's end (its close, its retirement, or the capture's end): held TX dropped, socket closed, report made final. */
  function closeFlow(f: Flow): void {
    f.finalized = true;
    if (f.pendingTx.length) {
      // The stack never framed these records (the connection ends inside them), so there is nothing to send.
      f.report.problems.push(`${f.pendingTx.length} TX segments at the end of the ${f.sockClosed || f.retired ? 'connection' : 'capture'} hold incomplete records: not replayed`);
      for (const p of f.pendingTx) {
        if (opts.onFrame) held.splice(held.indexOf(p.packet), 1);
        pool.release(p.block);
      }
      f.pendingTx.length = 0;
      f.pendingTxBytes = 0;
    }
    if (f.tls && !f.sockClosed) closeSocket(f);
    f.report.tx.plaintextSha256 = f.txHash!.digest('hex');
    f.report.rx.plaintextSha256 = f.rxHash!.digest('hex');
    f.report.tx.wireMatch = f.report.tx.mismatched === 0 && f.report.tx.notSent === 0 && f.txInstalled;
    if (f.report.tx.notSent) f.report.problems.push(`${f.report.tx.notSent} captured TX segment(s) after the replay of this direction stopped were not sent`);
    if (f.moreProblems) f.report.problems.push(`${f.moreProblems} more problems like the above not listed`);
    // After the close: its tls_dev_del calls are the connection's last events.
    if (f.marksLeftOut) f.report.problems.push(`timeline: ${leftOutNote('connection', f.marks, f.marksLeftOut, marksCap, keptCap)}`);
    // version stays null for a connection the replay could not run through TLS (what `replayed` counts). When
    // the walker saw the handshake, its own note says why (no key log, no key for it, an unknown cipher).
    if (!f.report.version && f.walker.version === null) f.report.problems.push('no TLS handshake found in this connection');
  }

  /**
   * A packet of a connection already over (its last ACKs, a retransmitted FIN or segment): received frames go
   * through the NIC as they arrive (no context: handed up as they are, and the closed socket takes nothing),
   * sent ones leave as captured when they carry nothing, and are not sent when they carry data.
   */
  function finishedPacket(f: Flow, dir: Dir, frame: Uint8Array, len: number): void {
    if (dir === f.rxDir || len === 0) view.updateTcpChecksum();
    if (dir === f.rxDir) deliverRx(f, frame);
    else if (len === 0) sentAsCaptured(frame);
    else {
      f.report.tx.notSent++;
      f.report.tx.wireMatch = false;
      problem(f, `TX segment seq ${view.seq} (${len} bytes) came after the connection closed: not sent`);
    }
  }

  /** A pure ACK of the local host: nothing the NIC handles, so it leaves as captured (only --out sees it). */
  function sentAsCaptured(frame: Uint8Array): void {
    opts.onFrame?.({ dir: 'tx', frame, tsNs: now, note: 'tx: no payload, as captured', packet: packets, order: OUT_ORDER_OWN, heldFrom: heldFrom() });
  }

  /** See MAX_UNACKED_TX_BYTES. */
  function boundUnacked(f: Flow): void {
    const sock = f.sock;
    if (!sock) return;
    if (sock.unackedBytes <= maxUnackedTx) return;
    const ack = seqAdd(sock.writeSeq, -(maxUnackedTx >>> 1));
    if (f.lastAck === null || seqGt(ack, f.lastAck)) f.lastAck = ack;
    if (!f.unackedNoted) f.report.problems.push(`more than ${maxUnackedTx} TX bytes never acknowledged in the capture (its ACKs missing?): the oldest count as acknowledged`);
    f.unackedNoted = true;
    applyAck(f);
  }

  let packets = 0;
  // Packets the replay cannot use, by reason: reported once each, with a count and the first example.
  const skips = new Map<string, { count: number; first: number; example: string }>();
  function skipped(reason: string, packet: number, example = ''): void {
    const s = skips.get(reason);
    if (s) s.count++;
    else skips.set(reason, { count: 1, first: packet, example });
  }
  const reader = openCapture(opts.capture, { truncated: 'stop', ...(opts.limits?.readChunkBytes ? { chunkSize: opts.limits.readChunkBytes } : {}) });
  try {
    for (let pkt = reader.next(); pkt !== null; pkt = reader.next()) {
      packets++;
      now = pkt.tsNs;
      tsBase ??= now;
      if (endedHead < ended.length) evictEnded();
      if (impairer) impairer.clock(usUntilNow(), link);
      if (opts.onProgress && (packets & 1023) === 0) opts.onProgress(pkt.fileOffset);
      let frame: Uint8Array | null;
      let kind;
      try {
        // A view of the reader's buffer (other link types: a new Ethernet frame). Nothing keeps it past this
        // packet except held-back TX segments, which copy it.
        frame = ethernetFrame(pkt.linkType, pkt.data);
        if (!frame) {
          skipped(`link type ${pkt.linkType} is not one tlsnic reads (Ethernet, raw IP, Linux SLL, SLL2, BSD loopback) or not IP`, packets);
          continue;
        }
        kind = view.parse(frame);
      } catch (e) {
        if (!(e instanceof TlsnicError)) throw e;
        skipped('malformed headers', packets, e.message);
        continue;
      }
      if (kind !== 'tcp') continue;
      if (opts.flowFilter && !opts.flowFilter(view)) {
        if (others) otherQueue(view, view.payload());
        continue;
      }
      const payload = view.payload();
      let f = flows.find(view);
      const srcIsLo = flows.srcIsLo;
      const opening = view.syn && !view.ackFlag;
      if (!f) {
        f = makeFlow(flows.keyOf(view));
        const reuse = evictedTuples.size ? evictedTuples.get(f.key) : undefined;
        if (reuse !== undefined) f.report.tupleReuse = reuse;
        flows.add(f);
        flowList.push(f);
      } else if (opening && takenOver(f, view.seq)) {
        const fresh = makeFlow(f.key);
        fresh.report.tupleReuse = (f.report.tupleReuse ?? 0) + 1;
        flows.replace(f, fresh);
        retire(f);
        flowList.push(fresh);
        f = fresh;
      }
      if (opening) f.synSeq ??= view.seq;
      if (!f.client && !f.ignored) decideRoles(f, view, srcIsLo, payload);
      if (f.ignored || !f.client || !f.local) {
        if (view.fin || view.rst) notReplayedEnd(f, srcIsLo, view.rst);
        continue;
      }
      const dir: Dir = srcIsLo === f.clientIsLo ? 'c2s' : 's2c';
      const seq = view.seq;
      if (f.finalized) {
        finishedPacket(f, dir, frame, payload.length);
        continue;
      }
      if (view.syn) f.reasm[dir] ??= new StreamReassembler(seqAdd(seq, 1));
      if (payload.length > 0) {
        f.reasm[dir] ??= new StreamReassembler(seq);
        f.reasm[dir]!.pushTo(seq, payload, dir, f.walker);
      }
      const ends = view.fin || view.rst;
      if (ends) finished(f, dir, view.rst, seqAdd(seq, payload.length));
      // Checksums in captures taken on a host with checksum offload are partial: recompute them so the
      // emulated NIC judges the bytes, not the capture point. (TX segments with data get new headers and
      // checksums when the replay sends them.)
      if (dir === f.rxDir || payload.length === 0) view.updateTcpChecksum();
      if (dir === f.rxDir) {
        f.sock!.rxStartAt(view.syn ? seqAdd(seq, 1) : seq);
        // The NIC decrypts in place: nothing reads the captured RX payload after this (TX compares use `current`).
        if (f.imp) {
          impairing = f;
          const deliver = (fr: Uint8Array, lostAt?: number) => deliverRx(f, fr, lostAt);
          if (view.fin || view.rst) impairer!.flush(f.imp, deliver, packets);
          // The packet number places a scenario's error in the capture: with --workers the earliest one is reported.
          impairer!.receive(f.imp, frame, seq, payload.length, captureSize ? pkt.fileOffset / captureSize : 0, usUntilNow(), deliver, packets);
        } else {
          deliverRx(f, frame);
        }
        // After the NIC is done with the frame (a close deletes its contexts): the peer's FIN, the ACK of the
        // last bytes, or an RST may have ended the connection.
        if (f.finC2s && f.finS2c) maybeClose(f);
      } else {
        if (payload.length === 0) {
          sentAsCaptured(frame);
          if (ends) maybeClose(f);
          continue;
        }
        const { frame: copy, block } = pool.copy(frame);
        f.pendingTx.push({ frame: copy, block, seq, len: payload.length, tsNs: pkt.tsNs, packet: packets });
        f.pendingTxBytes += payload.length;
        if (opts.onFrame) held.push(packets);
        if (f.pendingTxBytes > maxHeldTx && !f.walker.isDead(f.txDir)) {
          f.walker.abandon(f.txDir, `TX segments held back waiting for an incomplete record exceed ${maxHeldTx} bytes at seq ${seq} (a hole in the capture?): the rest of this direction is not replayed`);
        }
        releaseTx(f);
        boundUnacked(f);
        if (ends) maybeClose(f);
      }
    }
    for (const [why, s] of skips) problems.push(`${s.count} packet(s) skipped: ${why}; first: packet ${s.first}${s.example ? ` (${s.example})` : ''}`);
    if (reader.truncatedAt) problems.push(`capture truncated at offset ${reader.truncatedAt.offset}: ${reader.truncatedAt.reason}; replayed what came before`);
  } finally {
    reader.close();
  }
  // Segments a scenario still holds back arrive before the connections close: after the last packet, what the
  // down link lost in the order it was lost, then each connection's in the order the connections came.
  rxOutPacket = packets + 1;
  impairer?.end(link);
  const live = flowList.filter((f): f is Flow => !(f instanceof Ended));
  for (const f of live) if (f.imp && !f.ignored && f.local && !f.retired) impairer!.flush(f.imp, (fr) => deliverRx(f, fr, packets + 1 + f.firstPacket), packets);
  rxOutPacket = -1;
  for (const f of live) if (!f.ignored && f.local && !f.finalized) closeFlow(f);
  const replayed = flowList.filter((f): f is Flow | (Ended & { report: FlowReport }) => (f instanceof Ended ? f.report !== null : !f.ignored && f.local !== null));
  if (opts.onReport) {
    for (const f of replayed) opts.onReport(f.report, f.firstPacket);
    replayed.length = 0;
  }
  const reports = replayed.map((f) => f.report);
  // Marks were numbered by connection as seen; the page (and a merge of queues) numbers the reported ones.
  const position = new Map(replayed.map((f, i) => [f.index, i + 1]));
  const marks = timeline.filter((m) => position.has(m.flow)).map((m) => ({ ...m, flow: position.get(m.flow)! }));
  let scenario: ScenarioOutcome | undefined;
  let scenarioParts: ReplayResult['scenarioParts'];
  if (impairer) {
    const withScen = live.filter((f) => !f.ignored && f.local && f.scen && f.imp);
    const sflows: ScenarioFlow[] = [];
    const delivered: DeliveredRx[] = [];
    for (const f of withScen) {
      const sc = f.scen!;
      const captureSha = sc.captureHash.digest('hex');
      sflows.push({
        flow: f.imp!.index, resyncType: sc.resyncType, captureRxBytes: sc.captureBytes, captureRxSha256: captureSha, rxRecords: sc.records,
        episodes: sc.sync.episodes.map((e) => quietEpisode(e, f.imp!.hits)), hints: sc.sync.hints, lastImpairmentUs: f.imp!.lastImpairmentUs,
        scanReach: scanReach(nic.profile.scan, sc.maxRecord),
      });
      delivered.push({
        local: f.report.local, rxBytes: f.report.rx.plaintextBytes, rxSha256: f.report.rx.plaintextSha256, rxMode: f.report.rx.mode,
        socketError: f.socketError ? errnoName(f.socketError) : null,
        // A corrupted record the walker never reached leaves the whole stream as the expected prefix.
        beforeCorrupt: sc.corruptRecord === null ? null : sc.beforeCorrupt ?? { bytes: sc.captureBytes, sha256: captureSha },
      });
    }
    const failures = checkScenario(opts.scenario!, impairer.problems(), sflows, delivered, { ...nic.counters }, { ...stack.tlsStat });
    scenario = { name: opts.scenario!.name, seed: opts.scenario!.seed, impairments: impairer.tallies, flows: sflows, failures };
    scenarioParts = { delivered, overflow: impairer.overflowed };
  }
  return {
    capture: opts.capture,
    packets,
    flows: reports,
    ethtool: { ...nic.counters },
    tlsStat: { ...stack.tlsStat },
    ethtoolText: formatEthtoolFor(nic),
    tlsStatText: stack.formatTlsStat(),
    netdev: netdev.name,
    problems,
    timeline: marks,
    timelineWindow: window,
    flowFirstPackets: replayed.map((f) => f.firstPacket),
    ...(scenario ? { scenario, scenarioParts } : {}),
  };
}

function formatEthtoolFor(nic: Nic): string {
  return formatEthtool(nic.counters);
}
