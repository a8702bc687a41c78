// Impairments keyed to meaning (issue 5): "drop the segment holding record N's header", "drop the nth body
// segment of record N", reorder, delay, duplicate, corrupt a ciphertext byte (TCP checksum fixed so TLS sees
// it), bad TCP checksum, random netem-like loss. The link calls one ImpairFn per frame; it finds the flow by
// port, the stream offset from the ISN learned off the SYN, and the record from the flow's record layout.
import { ConfigError } from '../emulator/errors.ts';
import { TLS_1_3_VERSION } from '../emulator/tls/crypto-info.ts';
import { TLS_HEADER_SIZE, TLS_TAG_SIZE } from '../emulator/tls/record.ts';
import { TcpSegmentView } from '../emulator/wire/packet.ts';
import { seqAdd, seqDiff } from '../emulator/wire/seq.ts';
import { randomImpairment, type ImpairFn, type Impairment as LinkFate, type LinkDirection } from '../driver-api/host/link.ts';
import type { Rng } from '../driver-api/host/rng.ts';
import type { Sim } from '../driver-api/host/sim.ts';
import type { Impairment } from './schema.ts';
import type { Flow, FlowDir } from './world.ts';
import { noteHit } from './recovery.ts';

const EXPLICIT_NONCE = 8;

type SegmentImpairment = Exclude<Impairment, { kind: 'linkDown' | 'tableFull' | 'random' }>;
type RandomImpairment = Extract<Impairment, { kind: 'random' }>;

/** What happened to each scripted impairment: how often it fired and when last (µs). */
export type ImpairTally = { index: number; kind: Impairment['kind']; fired: number; lastAtUs: number | null };

type Compiled = {
  tally: ImpairTally;
  flow: number;
  dir: LinkDirection;
  /** Returns the fate for a frame at stream [off, off+len) that is copy `copy` of its seq, or null. */
  match(off: number, len: number, copy: number, seq: number, payloadOffset: number): LinkFate | null;
};

export type CompiledImpairments = {
  fn: ImpairFn;
  tallies: ImpairTally[];
  /** Virtual time of the last scripted or random impairment that hit flow `i` direction `dir`, or null. */
  lastHit(flow: number, dir: LinkDirection): number | null;
  /** The segments of that direction impairments hit, flat [start seq, end seq, ...] (an ACK loss: up to the seq it acked). */
  hitSpans(flow: number, dir: LinkDirection): readonly number[];
};

function dirOf(f: Flow, d: LinkDirection): FlowDir {
  return d === 'a>b' ? f.ab : f.ba;
}

/** Compile the frame-level impairments of a scenario against the world's flows. Index = position in the list. */
export function compileImpairments(list: readonly Impairment[], flows: readonly Flow[], sim: Sim, rng: Rng): CompiledImpairments {
  const compiled: Compiled[] = [];
  const randoms: Array<{ imp: RandomImpairment; fn: ImpairFn; tally: ImpairTally; ackRng: Rng }> = [];
  const tallies: ImpairTally[] = [];
  const hits = new Map<string, number>();
  const spans = new Map<string, number[]>();
  /** Flow direction `key` was impaired now, over [start, end). */
  const hitAt = (key: string, start: number, end: number) => {
    hits.set(key, sim.now);
    let s = spans.get(key);
    if (!s) spans.set(key, (s = []));
    noteHit(s, start, end);
  };
  list.forEach((imp, index) => {
    const tally: ImpairTally = { index, kind: imp.kind, fired: 0, lastAtUs: null };
    if (imp.kind === 'linkDown' || imp.kind === 'tableFull') return; // world-level, applied by the runner
    tallies.push(tally);
    if (imp.kind === 'random') {
      randoms.push({ imp, tally, ackRng: rng.fork(`random-${index}-ack`), fn: randomImpairment(rng.fork(`random-${index}`), {
        loss: imp.loss, reorder: imp.reorder, duplicate: imp.duplicate, reorderDelayUs: imp.reorderDelayUs,
      }) });
      return;
    }
    compiled.push(compileSegment(imp, index, tally, flows));
  });

  const byPort = new Map<number, Flow>();
  for (const f of flows) byPort.set(f.port, f);
  const state = new Map<string, Map<number, number>>();
  const v = new TcpSegmentView();
  const fn: ImpairFn = (frame, dir) => {
    if (v.parse(frame) !== 'tcp') return 'pass';
    const flow = byPort.get(dir === 'a>b' ? v.dstPort : v.srcPort);
    if (!flow) return 'pass';
    if (v.payloadLength === 0 && !v.syn && !v.fin && !v.rst) return ackFate(flow, dir);
    const d = dirOf(flow, dir);
    // Stream offset 0 is the sender's ISS + 1 (the SYN may have left before this hook was installed).
    if (!d.txTcp || v.syn || v.payloadLength === 0) return 'pass';
    const key = `${flow.index}${dir}`;
    let copies = state.get(key);
    if (!copies) state.set(key, (copies = new Map()));
    const seq = v.seq;
    const copy = copies.get(seq) ?? 0;
    copies.set(seq, copy + 1);
    const off = seqDiff(seq, seqAdd(d.txTcp.iss, 1));
    const len = v.payloadLength;
    let fate: LinkFate = 'pass';
    let hit: ImpairTally | null = null;
    for (const c of compiled) {
      if (c.flow !== flow.index || c.dir !== dir) continue;
      const f = c.match(off, len, copy, seq, v.payloadOffset);
      if (f !== null && fate === 'pass') {
        fate = f;
        hit = c.tally;
      }
    }
    if (fate === 'pass') {
      for (const r of randoms) {
        if (r.imp.dir !== 'both' && r.imp.dir !== dir) continue;
        if (off >= r.imp.untilFraction * d.end) continue; // clean tail: the device must come back
        const f = r.fn(frame, dir, 0);
        if (f !== 'pass') {
          fate = f;
          hit = r.tally;
          break;
        }
      }
    }
    if (hit) {
      hit.fired++;
      hit.lastAtUs = sim.now;
      hitAt(key, seq, seqAdd(seq, len));
    }
    return fate;
  };
  /** A pure ACK going `dir`: it acknowledges the data going the other way, which `ackLoss` may impair. */
  function ackFate(flow: Flow, dir: LinkDirection): LinkFate {
    const dataDir: LinkDirection = dir === 'a>b' ? 'b>a' : 'a>b';
    const d = dirOf(flow, dataDir);
    if (!d.txTcp) return 'pass';
    for (const r of randoms) {
      if (r.imp.ackLoss === 0 || (r.imp.dir !== 'both' && r.imp.dir !== dataDir)) continue;
      if (seqDiff(v.ack, seqAdd(d.txTcp.iss, 1)) >= r.imp.untilFraction * d.end) continue;
      if (r.ackRng.next() / 0x1_0000_0000 < r.imp.ackLoss) {
        r.tally.fired++;
        r.tally.lastAtUs = sim.now;
        hitAt(`${flow.index}${dataDir}`, v.ack, v.ack);
        return 'drop';
      }
    }
    return 'pass';
  }
  return {
    fn, tallies, lastHit: (flow, dir) => hits.get(`${flow}${dir}`) ?? null, hitSpans: (flow, dir) => spans.get(`${flow}${dir}`) ?? [],
  };
}

function compileSegment(imp: SegmentImpairment, index: number, tally: ImpairTally, flows: readonly Flow[]): Compiled {
  const field = (f: string) => ({ field: `impairments[${index}].${f}` });
  const flow = flows[imp.flow];
  if (!flow) throw new ConfigError(`flow ${imp.flow} does not exist (the scenario has ${flows.length})`, field('flow'));
  const d = dirOf(flow, imp.dir);
  const n = d.starts.length;
  if (imp.record >= n) throw new ConfigError(`record ${imp.record} does not exist: direction ${imp.dir} carries ${n} records`, field('record'));
  const start = d.starts[imp.record]!;
  const next = imp.record + 1 < n ? d.starts[imp.record + 1]! : d.end;
  const base = { tally, flow: imp.flow, dir: imp.dir };

  if (imp.kind === 'corruptCiphertext') {
    // TLS 1.2 AES-GCM records carry an 8-byte explicit nonce before the ciphertext; TLS 1.3 records none.
    const nonce = d.info.version === TLS_1_3_VERSION ? 0 : EXPLICIT_NONCE;
    const target = start + TLS_HEADER_SIZE + nonce + imp.byte;
    if (target >= next - TLS_TAG_SIZE) {
      throw new ConfigError(`byte ${imp.byte} is past record ${imp.record}'s ciphertext (${next - TLS_TAG_SIZE - start - TLS_HEADER_SIZE - nonce} bytes)`, field('byte'));
    }
    const v = new TcpSegmentView();
    return {
      ...base,
      match(off, len, copy, _seq, payloadOffset) {
        if (copy !== imp.copy || target < off || target >= off + len) return null;
        const at = payloadOffset + (target - off);
        return {
          corrupt: (f: Uint8Array) => {
            f[at] = f[at]! ^ 0x01;
            // Fix the TCP checksum so TCP accepts it and TLS is what must notice (unlike badChecksum).
            if (v.parse(f) === 'tcp') v.updateTcpChecksum();
          },
        };
      },
    };
  }

  const fate = (payloadOffset: number): LinkFate => {
    switch (imp.kind) {
      case 'drop':
        return 'drop';
      case 'reorder':
      case 'delay':
        return { delayUs: imp.delayUs };
      case 'duplicate':
        return { duplicate: true };
      case 'badChecksum':
        return { corrupt: (f: Uint8Array) => { f[payloadOffset] = f[payloadOffset]! ^ 0x01; } };
    }
  };

  if (imp.part === 'header') {
    return {
      ...base,
      match: (off, len, copy, _seq, po) => (copy === imp.copy && off <= start && start < off + len ? fate(po) : null),
    };
  }
  // Body: no byte of this record's header nor of the next one's; numbered in the order first sent.
  const bodyFirst = start + TLS_HEADER_SIZE;
  const seen = new Map<number, number>();
  return {
    ...base,
    match(off, len, copy, seq, po) {
      if (off < bodyFirst || off + len > next) return null;
      let k = seen.get(seq);
      if (k === undefined) seen.set(seq, (k = seen.size));
      return k === imp.nth && copy === imp.copy ? fate(po) : null;
    },
  };
}
