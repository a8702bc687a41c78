// `tlsnic replay --scenario <file>`: scripted impairments on a real capture. They act on what the local host
// receives, between the wire and its NIC, keyed to meaning as in the scenario language of `tlsnic run`
// ("the segment holding record N's header of connection F"), plus random loss/reorder/duplication. A capture
// holds no retransmission for a segment the scenario drops, so the replay plays the sender's: the dropped
// segment arrives again after `after` later segments of its connection (a fast retransmit after three
// duplicate ACKs by default). Then it checks expectations: every received byte delivered once and in order
// (the walker opens the received records itself to know them), every loss of sync followed by the device
// decrypting again, counter ranges.
import { ConfigError } from '../../emulator/errors.ts';
import { TLS_1_3_VERSION } from '../../emulator/tls/crypto-info.ts';
import { TLS_HEADER_SIZE, TLS_TAG_SIZE } from '../../emulator/tls/record.ts';
import { TcpSegmentView } from '../../emulator/wire/packet.ts';
import { seqAdd, seqDiff, seqGt } from '../../emulator/wire/seq.ts';
import { Rng } from '../../driver-api/host/rng.ts';
import { hintsTakenTooLate, noteHit, owesRecovery, type Hint, type SyncEpisode } from '../../testbed/recovery.ts';
import { checkRanges } from '../../testbed/range.ts';
import type { ReplayImpairment, ReplayScenario } from './scenario-schema.ts';

export type { ReplayImpairment, ReplayScenario } from './scenario-schema.ts';

/**
 * Bytes held back at once over all connections (frames waiting to arrive late or again). A scenario that
 * would hold more (a link down for most of a long capture) lets the rest pass, or a down link loses them for
 * good, and the outcome says so: memory stays bounded whatever the capture.
 */
export const MAX_HELD_BYTES = 64 << 20;

/** What one scripted impairment did: how often it fired. */
export type ImpairmentTally = { index: number; kind: ReplayImpairment['kind']; fired: number };

export type ScenarioFlow = {
  flow: number;
  /** The RX resync type the driver set (tls_offload_rx_resync_set_type), null if none. */
  resyncType: string | null;
  /** Application bytes in the captured received stream (opened by the walker) and their SHA-256. */
  captureRxBytes: number;
  captureRxSha256: string;
  /** Records of the received stream after the handshake. */
  rxRecords: number;
  /** A loss never recovered has in `receivedAfter` the longest stretch after it with no impaired segment (quietEpisode()). */
  episodes: SyncEpisode[];
  hints: Hint[];
  lastImpairmentUs: number | null;
  /**
   * Bytes of the stream past a loss a device that scans for headers may need before it decrypts again (the
   * engine's scanReach()): a loss closer than that to the stream's end is not owed a recovery.
   */
  scanReach: number;
};

export type ScenarioOutcome = {
  name: string;
  seed: number;
  impairments: ImpairmentTally[];
  flows: ScenarioFlow[];
  failures: string[];
};

type SegmentImpairment = Extract<ReplayImpairment, { kind: 'drop' | 'reorder' | 'duplicate' | 'badChecksum' }>;
type LinkDown = Extract<ReplayImpairment, { kind: 'linkDown' }>;
type Corrupt = Extract<ReplayImpairment, { kind: 'corruptCiphertext' }>;
type RandomImp = Extract<ReplayImpairment, { kind: 'random' }>;

/**
 * Hands a frame to the NIC. `lostAt`: a frame the down link lost, arriving now that it is back: the capture
 * packet it was lost at.
 */
export type Deliver = (frame: Uint8Array, lostAt?: number) => void;

/** A held frame: delivered once `left` more data segments of its connection went to the NIC. */
type Held = { frame: Uint8Array; left: number };

/** The per-connection state the impairer keeps. */
export type ImpairFlow = {
  index: number;
  /** Received stream: seq of record `startRecord`, and the record starts the impairments need. */
  rxStart: number | null;
  /** Record index -> [start seq, end seq) once known (only records some impairment names). */
  records: Map<number, { start: number | null; end: number | null }>;
  /** Transmissions seen per seq, for `copy` (only segments overlapping a named record). */
  copies: Map<number, number>;
  /** Body segments of named records, numbered in capture order: seq -> nth. */
  bodyNth: Map<number, Map<number, number>>;
  held: Held[];
  explicitNonce: number;
  lastImpairmentUs: number | null;
  /** Received segments impairments hit (or the down link lost): flat [start seq, end seq, ...], for quietEpisode(). */
  hits: number[];
  /** Per `random` impairment, this connection's own stream of draws (the same whichever queue replays it). */
  rngs: Rng[];
};

/**
 * Applies a scenario's frame impairments to received frames. `deliver` hands a frame to the NIC (the frame
 * is the impairer's own copy when held back; the caller's otherwise, valid during the call).
 */
export class Impairer {
  readonly tallies: ImpairmentTally[];
  readonly tableCapacity: number | null;
  private readonly segments: Array<{ imp: SegmentImpairment; tally: ImpairmentTally }> = [];
  private readonly corrupts: Array<{ imp: Corrupt; tally: ImpairmentTally }> = [];
  private readonly randoms: Array<{ imp: RandomImp; tally: ImpairmentTally; rng: Rng }> = [];
  /** Link-down windows by start time, the one in force (null: link up), and what arrived during it. */
  private readonly downs: Array<{ imp: LinkDown; tally: ImpairmentTally }> = [];
  private down: { imp: LinkDown; tally: ImpairmentTally } | null = null;
  /** With the capture packet each was lost at (--out writes them in that order when the link comes back). */
  private lostWhileDown: Array<{ frame: Uint8Array; deliver: Deliver; lostAt: number }> = [];
  private heldBytes = 0;
  /** Frames that could not be held back (MAX_HELD_BYTES). */
  private overflow = 0;
  private readonly view = new TcpSegmentView();
  /** Told of every impairment that fires (the replay marks it on the timeline): which, what it did, where. */
  onHit: ((tally: ImpairmentTally, kind: string, later: string, seq: number, len: number) => void) | null = null;

  constructor(readonly scenario: ReplayScenario, private readonly maxHeldBytes = MAX_HELD_BYTES) {
    const rng = new Rng(scenario.seed);
    this.tallies = scenario.impairments.map((imp, index) => ({ index, kind: imp.kind, fired: 0 }));
    let capacity: number | null = null;
    scenario.impairments.forEach((imp, index) => {
      const tally = this.tallies[index]!;
      if (imp.kind === 'tableFull') capacity = Math.min(capacity ?? Infinity, imp.capacity);
      else if (imp.kind === 'linkDown') this.downs.push({ imp, tally });
      else if (imp.kind === 'random') this.randoms.push({ imp, tally, rng: rng.fork(`random-${index}`) });
      else if (imp.kind === 'corruptCiphertext') this.corrupts.push({ imp, tally });
      else this.segments.push({ imp, tally });
    });
    this.tableCapacity = capacity;
    this.downs.sort((x, y) => x.imp.atUs - y.imp.atUs);
  }

  /**
   * The capture's clock reached `atUs`: the link goes down or comes back. `link(false, netdevDown)` and
   * `link(true)` do it to the NIC and the stack; frames lost while it was down then arrive again.
   */
  clock(atUs: number, link: (up: boolean, netdevDown: boolean) => void): void {
    for (;;) {
      if (this.down) {
        if (atUs < this.down.imp.atUs + this.down.imp.forUs) return;
        this.down = null;
        link(true, false);
        const lost = this.lostWhileDown;
        this.lostWhileDown = [];
        for (const x of lost) x.deliver(this.release(x.frame), x.lostAt);
        continue;
      }
      const next = this.downs[0];
      if (!next || atUs < next.imp.atUs) return;
      this.downs.shift();
      this.down = next;
      next.tally.fired++;
      link(false, next.imp.netdevDown);
    }
  }

  /** Whether the link is down now: every received frame is lost until it comes back. */
  get linkDown(): boolean {
    return this.down !== null;
  }

  newFlow(index: number): ImpairFlow {
    const f: ImpairFlow = {
      index, rxStart: null, records: new Map(), copies: new Map(), bodyNth: new Map(), held: [], explicitNonce: 0, lastImpairmentUs: null, hits: [],
      rngs: this.randoms.map((r) => r.rng.fork(`flow-${index}`)),
    };
    for (const { imp } of [...this.segments, ...this.corrupts]) {
      if (imp.flow === index) f.records.set(imp.record, { start: null, end: null });
    }
    return f;
  }

  /** The first record a corruptCiphertext names in connection `flow`, or null. */
  firstCorruptRecord(flow: number): number | null {
    const records = this.corrupts.filter((c) => c.imp.flow === flow).map((c) => c.imp.record);
    return records.length ? Math.min(...records) : null;
  }

  /** kTLS RX starts at `seq`; TLS 1.2 AES-GCM records carry an 8-byte explicit nonce before the ciphertext. */
  rxStarted(f: ImpairFlow, seq: number, version: number | null, cipher: string | null): void {
    f.rxStart = seq;
    f.explicitNonce = version !== TLS_1_3_VERSION && cipher !== 'chacha20-poly1305' ? 8 : 0;
    const r0 = f.records.get(0);
    if (r0) r0.start = seq;
  }

  /** The walker read record `index`'s header at `seq` (record length `total` with the header). */
  recordStart(f: ImpairFlow, index: number, seq: number, total: number): void {
    const r = f.records.get(index);
    if (r) {
      r.start = seq;
      r.end = seqAdd(seq, total);
    }
    const next = f.records.get(index + 1);
    if (next) next.start = seqAdd(seq, total);
  }

  /**
   * A received frame of connection `f` at capture position `fraction` (0..1) and time `atUs`. `dataSeq` is its
   * seq and `len` its payload length. Calls `deliver` for what reaches the NIC now, in order. `packet`: its
   * number in the capture (a ConfigError about it names it; a frame the down link loses was lost there).
   */
  receive(f: ImpairFlow, frame: Uint8Array, seq: number, len: number, fraction: number, atUs: number, deliver: Deliver, packet?: number): void {
    if (this.down) {
      const kept = this.keep(frame);
      if (kept) this.lostWhileDown.push({ frame: kept, deliver, lostAt: packet ?? 0 }); // else lost for good (counted)
      if (len > 0) impaired(f, atUs, seq, len);
      return;
    }
    if (len === 0 || f.rxStart === null || !seqGt(seqAdd(seq, len), f.rxStart)) {
      deliver(frame);
      return;
    }
    const copy = this.copyOf(f, seq, len);
    let hit: { imp: SegmentImpairment | Corrupt | RandomImp; tally: ImpairmentTally } | null = null;
    for (const s of this.segments) {
      if (s.imp.flow === f.index && this.matches(f, s.imp, seq, len, copy)) {
        hit = s;
        break;
      }
    }
    let corruptAt = -1;
    if (!hit) {
      for (const c of this.corrupts) {
        if (c.imp.flow !== f.index || c.imp.copy !== copy) continue;
        const at = this.corruptOffset(f, c.imp, seq, len, packet);
        if (at >= 0) {
          hit = c;
          corruptAt = at;
          break;
        }
      }
    }
    let randomFate: 'loss' | 'reorder' | 'duplicate' | null = null;
    if (!hit) {
      for (let i = 0; i < this.randoms.length; i++) {
        const r = this.randoms[i]!;
        if (fraction >= r.imp.untilFraction) continue;
        const x = f.rngs[i]!.next() / 0x1_0000_0000;
        randomFate = x < r.imp.loss ? 'loss' : x < r.imp.loss + r.imp.reorder ? 'reorder' : x < r.imp.loss + r.imp.reorder + r.imp.duplicate ? 'duplicate' : null;
        if (randomFate) {
          hit = r;
          break;
        }
      }
    }
    if (!hit) {
      this.pass(f, frame, deliver);
      return;
    }
    hit.tally.fired++;
    impaired(f, atUs, seq, len);
    const imp = hit.imp;
    const kind = imp.kind === 'random' ? randomFate! : imp.kind;
    const n = 'after' in imp ? imp.after : 1;
    if (this.onHit) {
      const later = kind === 'drop' || kind === 'loss' || kind === 'badChecksum' ? `, arrives again after ${n} segment(s)` : kind === 'reorder' ? `, after ${n} later segment(s)` : kind === 'duplicate' ? `, again after ${n} segment(s)` : '';
      this.onHit(hit.tally, kind, later, seq, len);
    }
    if (kind === 'corruptCiphertext') {
      const bad = Uint8Array.from(frame);
      this.view.parse(bad);
      bad[this.view.payloadOffset + corruptAt] = bad[this.view.payloadOffset + corruptAt]! ^ 0x01;
      this.view.updateTcpChecksum();
      this.pass(f, bad, deliver);
      return;
    }
    // Copied before anything reaches the NIC, which decrypts in place.
    const kept = this.keep(frame);
    if (!kept) {
      this.pass(f, frame, deliver);
      return;
    }
    switch (kind) {
      case 'drop':
      case 'loss':
      case 'reorder':
        this.countDown(f, deliver);
        f.held.push({ frame: kept, left: n });
        return;
      case 'duplicate':
        this.pass(f, frame, deliver);
        f.held.push({ frame: kept, left: n });
        return;
      case 'badChecksum': {
        const bad = Uint8Array.from(frame);
        this.view.parse(bad);
        bad[this.view.payloadOffset] = bad[this.view.payloadOffset]! ^ 0x01;
        this.pass(f, bad, deliver);
        f.held.push({ frame: kept, left: n });
        return;
      }
    }
  }

  /**
   * The capture ended: the link comes back if it is down, after every window that began while it was (each
   * ending may start the next), and what it lost arrives. Segments held back are flushed after this, so the
   * link must be up then, or they would be lost for good.
   */
  end(link: (up: boolean, netdevDown: boolean) => void): void {
    while (this.down) this.clock(this.down.imp.atUs + this.down.imp.forUs, link);
  }

  /**
   * Everything still held for `f` arrives now (its FIN came, or the capture ended); while the link is down it
   * is lost like every other frame, and arrives again once the link is back. `packet`: the capture packet now.
   */
  flush(f: ImpairFlow, deliver: Deliver, packet = 0): void {
    const held = f.held;
    f.held = [];
    for (const h of held) {
      if (this.down) this.lostWhileDown.push({ frame: h.frame, deliver, lostAt: packet }); // still counted as held
      else deliver(this.release(h.frame));
    }
  }

  /** Frames that could not be held back (MAX_HELD_BYTES). */
  get overflowed(): number {
    return this.overflow;
  }

  /** scenarioProblems() of this impairer alone. */
  problems(): string[] {
    return scenarioProblems(this.scenario, this.tallies, this.overflow, this.maxHeldBytes);
  }

  /** A copy of `frame` to hold back, or null when MAX_HELD_BYTES is reached. */
  private keep(frame: Uint8Array): Uint8Array | null {
    if (this.heldBytes + frame.length > this.maxHeldBytes) {
      this.overflow++;
      return null;
    }
    this.heldBytes += frame.length;
    return Uint8Array.from(frame);
  }

  private release(frame: Uint8Array): Uint8Array {
    this.heldBytes -= frame.length;
    return frame;
  }

  private pass(f: ImpairFlow, frame: Uint8Array, deliver: Deliver): void {
    deliver(frame);
    this.countDown(f, deliver);
  }

  /** One more data segment of `f` reached the NIC: held frames whose wait is over follow it. */
  private countDown(f: ImpairFlow, deliver: Deliver): void {
    if (f.held.length === 0) return;
    const due: Uint8Array[] = [];
    f.held = f.held.filter((h) => {
      if (--h.left > 0) return true;
      due.push(h.frame);
      return false;
    });
    for (const d of due) deliver(this.release(d));
  }

  /** Transmission number of this segment in the capture (0 = first), counted only near named records. */
  private copyOf(f: ImpairFlow, seq: number, len: number): number {
    let near = false;
    for (const r of f.records.values()) {
      if (r.start === null) continue;
      const end = r.end ?? seqAdd(r.start, TLS_HEADER_SIZE);
      if (seqGt(end, seq) && seqGt(seqAdd(seq, len), r.start)) near = true;
    }
    if (!near) return 0;
    const c = f.copies.get(seq) ?? 0;
    f.copies.set(seq, c + 1);
    return c;
  }

  private matches(f: ImpairFlow, imp: SegmentImpairment, seq: number, len: number, copy: number): boolean {
    const r = f.records.get(imp.record);
    if (!r || r.start === null || copy !== imp.copy) return false;
    const off = seqDiff(r.start, seq);
    if (imp.part === 'header') return off >= 0 && off < len;
    // Body: no byte of this record's header nor of the next one's.
    if (r.end === null) return false;
    if (seqDiff(seq, seqAdd(r.start, TLS_HEADER_SIZE)) < 0 || seqDiff(r.end, seqAdd(seq, len)) < 0) return false;
    let nth = f.bodyNth.get(imp.record);
    if (!nth) f.bodyNth.set(imp.record, (nth = new Map()));
    let k = nth.get(seq);
    if (k === undefined) nth.set(seq, (k = nth.size));
    return k === imp.nth;
  }

  /** Payload offset of the byte to flip in this segment, or -1. */
  private corruptOffset(f: ImpairFlow, imp: Corrupt, seq: number, len: number, packet: number | undefined): number {
    const r = f.records.get(imp.record);
    if (!r || r.start === null || r.end === null) return -1;
    const target = seqAdd(r.start, TLS_HEADER_SIZE + f.explicitNonce + imp.byte);
    if (seqDiff(seqAdd(r.end, -TLS_TAG_SIZE), target) <= 0) {
      throw new ConfigError(`byte ${imp.byte} is past the ciphertext of record ${imp.record} of flow ${imp.flow} (${seqDiff(r.end, r.start) - TLS_HEADER_SIZE - f.explicitNonce - TLS_TAG_SIZE} bytes)`, { field: 'corruptCiphertext.byte', ...(packet !== undefined ? { packet } : {}) });
    }
    const at = seqDiff(target, seq);
    return at >= 0 && at < len ? at : -1;
  }
}

/** What the replay measured per connection, for the expectations. */
export type DeliveredRx = {
  local: string;
  rxBytes: number;
  rxSha256: string;
  rxMode: 'hw' | 'sw';
  /** The receiving socket's error (errno name) or null. */
  socketError: string | null;
  /** Capture application bytes before the first corrupted record and their SHA-256 (a corrupted flow only). */
  beforeCorrupt: { bytes: number; sha256: string } | null;
};

/** A received segment of `f` [seq, seq+len) was impaired at `atUs` (what owesRecovery() and quietEpisode() read). */
function impaired(f: ImpairFlow, atUs: number, seq: number, len: number): void {
  f.lastImpairmentUs = atUs;
  noteHit(f.hits, seq, seqAdd(seq, len));
}

/**
 * Scripted impairments that never found their segment (the scenario names something the capture lacks), link
 * downs after the capture's last packet, and frames that could not be held back, from what the impairments
 * did (`tallies`, summed over the queues of a multi-queue replay) and the frames not held (`overflow`).
 */
export function scenarioProblems(s: ReplayScenario, tallies: readonly ImpairmentTally[], overflow: number, maxHeldBytes: number): string[] {
  const out = overflow ? [`${overflow} received frame(s) could not be held back (over ${maxHeldBytes} bytes held at once): their impairments let them pass, or the down link lost them for good`] : [];
  s.impairments.forEach((imp, i) => {
    if (tallies[i]!.fired > 0) return;
    if (imp.kind === 'linkDown') out.push(`impairment #${i} (linkDown at ${imp.atUs} µs) comes after the capture's last packet`);
    else if (imp.kind !== 'random' && imp.kind !== 'tableFull') {
      const where = 'part' in imp ? ` ${imp.part}${imp.part === 'body' ? ` ${imp.nth}` : ''}` : '';
      out.push(`impairment #${i} (${imp.kind} flow ${imp.flow} record ${imp.record}${where}${imp.copy ? ` copy ${imp.copy}` : ''}) never matched a received segment`);
    }
  });
  return out;
}

/** Checks a replay under a scenario against its expectations; `problems`: scenarioProblems(). */
export function checkScenario(
  s: ReplayScenario, problems: readonly string[], flows: readonly ScenarioFlow[], delivered: readonly DeliveredRx[],
  ethtool: Record<string, number>, tlsStat: Record<string, number>,
): string[] {
  const fails = [...problems];
  flows.forEach((f, i) => {
    const d = delivered[i]!;
    const name = `flow ${f.flow} (${d.local})`;
    if (d.beforeCorrupt) {
      if (d.socketError !== 'EBADMSG') fails.push(`${name}: socket error ${d.socketError ?? 'none'}, expected EBADMSG for the corrupted record`);
      if (d.rxBytes !== d.beforeCorrupt.bytes || d.rxSha256 !== d.beforeCorrupt.sha256) {
        fails.push(`${name}: delivered ${d.rxBytes} bytes, expected exactly the ${d.beforeCorrupt.bytes} before the corrupted record`);
      }
    } else {
      if (d.socketError) fails.push(`${name}: socket error ${d.socketError}`);
      if (d.rxBytes !== f.captureRxBytes || d.rxSha256 !== f.captureRxSha256) {
        fails.push(`${name}: delivered ${d.rxBytes} of the capture's ${f.captureRxBytes} received bytes${d.rxBytes === f.captureRxBytes ? ', different bytes' : ''}`);
      }
    }
    for (const h of hintsTakenTooLate(f.resyncType, f.hints)) {
      fails.push(`${name}: resync hint for record ${h.record} taken with the device already ${h.passedBytes} bytes past it`);
    }
    if (s.expect.recovered && d.rxMode === 'hw' && !d.beforeCorrupt) {
      const open = f.episodes.filter((e) => e.recoveredSeq === null && owesRecovery(f.resyncType, f.hints, e.lostAtUs, f.rxRecords, f.lastImpairmentUs, { receivedAfter: e.receivedAfter, reach: f.scanReach }));
      if (open.length) {
        const e = open[0]!;
        fails.push(`${name}: device lost RX sync at seq ${e.lostSeq} and never decrypted again (${e.receivedAfter} bytes of the stream in a row reached it unimpaired after that point)`);
      }
    }
  });
  checkRanges('ethtool', s.expect.counters, (k) => ethtool[k] ?? 0, fails);
  checkRanges('tls_stat', s.expect.tlsStat, (k) => tlsStat[k] ?? 0, fails);
  return fails;
}
