// Runs a scenario: builds the world per driver profile, applies the impairments, runs the virtual clock to
// idle, closes every flow, and reports what a driver author wants to see: ethtool -S and tls_stat per host,
// the tlsdev_ops call log, per-flow state, delivered bytes and their check, and the recovery distance of
// every loss of RX sync (records from the loss until the device decrypts again). Then checks expectations.
import { TlsnicError } from '../emulator/errors.ts';
import { EBADMSG } from '../emulator/errno.ts';
import { formatEthtool, type EthtoolCounters } from '../emulator/nic/counters.ts';
import type { NicEvent, NicProfile, ScanPolicy } from '../emulator/nic/types.ts';
import { seqAdd, seqDiff } from '../emulator/wire/seq.ts';
import { TLS_HEADER_SIZE } from '../emulator/tls/record.ts';
import type { LinkDirection, LinkLogEntry } from '../driver-api/host/link.ts';
import { Rng } from '../driver-api/host/rng.ts';
import type { TcpCounters } from '../driver-api/host/tcp.ts';
import type { DriverCall, TlsStackEvent } from '../driver-api/stack/stack.ts';
import { FAULT_KINDS, type FaultKind, type FaultPlan, type FaultSpec, type FaultTally } from '../driver-api/drivers/faulty.ts';
import type { DriverModule } from '../driver-api/drivers/common.ts';
import { loadDriver } from '../driver-api/drivers/index.ts';
import { resolve } from 'node:path';
import { emptyViolationCounts, formatViolation, type ViolationCounts } from '../driver-api/stack/violations.ts';
import type { TlsStat } from '../driver-api/stack/tls-stat.ts';
import { recSeqToBigInt } from '../emulator/tls/crypto-info.ts';
import { compileImpairments, type ImpairTally } from './impair.ts';
import {
  checkRanges, inRange, profileId, resyncTypeOf, showRange, type DriverProfile, type Expectations, type FaultInput, type Impairment, type ProfileId, type Scenario,
  type SoakSpec,
} from './schema.ts';
import { hintsTakenTooLate, owesRecovery, quietEpisode, RxSyncWatch, scanReach } from './recovery.ts';
import { TIMELINE_MARKS_CAP, WorldTimelineRecorder, type TimeWindow, type WorldTimelineDir } from './timeline.ts';
import { buildWorld, connectFlow, nicProfileFrom, serverPortOf, type Flow, type FlowDir, type Side, type TbHost, type TbWorld } from './world.ts';

export type ResyncType = 'driver_req_async' | 'driver_req' | 'core_next_hint';

/** One loss of RX sync on a receiving device, in records of the flow's stream. */
export type Episode = {
  /** Record holding the seq where the device lost sync. */
  lostRecord: number;
  /** Record holding the first packet the device decrypted again; null if it never did. */
  recoveredRecord: number | null;
  /** recoveredRecord - lostRecord. */
  distance: number | null;
  lostAtUs: number;
  recoveredAtUs: number | null;
  /**
   * Bytes of the stream past the loss point that reached the device by its recovery; never recovered, the longest
   * stretch of them with no impaired segment in it (quietEpisode()).
   */
  receivedAfter: number;
};

export type FlowReport = {
  flow: number;
  port: number;
  dir: LinkDirection;
  records: number;
  /** Records whose plaintext the application read whole (the stack delivers record by record). */
  recordsRead: number;
  bytesWritten: number;
  bytesRead: number;
  /** Read bytes equal the written ones from the first byte on (a prefix, or everything). */
  inOrder: boolean;
  /** Every byte read exactly once, in order, and nothing else. */
  exact: boolean;
  /** The receiving TLS socket's error (errno name) or null. */
  socketError: string | null;
  rxMode: 'hw' | 'sw' | null;
  txMode: 'hw' | 'sw' | null;
  /** The receiving device's RX context state before close (from its table dump), or null if none. */
  deviceRxState: string | null;
  episodes: Episode[];
  /**
   * Every tls_dev_resync(RX) the receiving stack made for this flow: the record its seq names (its start, or with
   * DRIVER_REQ its header's last byte; -1: none) and whether the record number it passed is that record's.
   */
  resyncs: Array<{ seq: number; record: number; rcdSnOk: boolean }>;
  /**
   * Every resync the receiving device was given for this flow, in order: when, the record it names, the
   * device's answer, and how many bytes past that record's start the device had already received (from the
   * frames the testbed saw reach it, not from the device's own state; 0 when it had not reached it).
   */
  hints: Array<{ atUs: number; record: number; result: string; passedBytes: number }>;
  /** Packets the receiving device decrypted after the last impairment that hit this direction. */
  decryptedAfterLastImpairment: number;
  lastImpairmentUs: number | null;
  /**
   * Bytes past a loss a device that scans for headers may need before it decrypts again (scanReach()): a loss
   * with no more of the stream after it is not held against it.
   */
  scanReach: number;
};

export type HostReport = {
  ethtool: EthtoolCounters;
  tlsStat: TlsStat;
  tcp: TcpCounters;
  /** tlsdev_ops calls: "add rx 0", "resync rx 0", "del rx" (errno as a negative number). */
  calls: string[];
  /** The device's context table before the flows closed (netdevsim-style dump). */
  table: string;
  /** Driver-contract violations the stack reported, one line each (formatViolation), at most 50 listed. */
  violations: string[];
  /** Every violation occurrence by kind. */
  violationCounts: ViolationCounts;
  /** Faults the side's driver injected by kind, or null when it had no fault plan. */
  faultsInjected: FaultTally | null;
};

export type ProfileRun = {
  profile: ProfileId;
  resyncType: ResyncType;
  seed: number;
  worlds: number;
  flowCount: number;
  hosts: Record<Side, HostReport>;
  /** Every flow direction with application data (a soak keeps only the failing ones). */
  flows: FlowReport[];
  impairments: ImpairTally[];
  /** Recovery distance of every closed episode, in order. */
  recovery: number[];
  /** Losses of sync after which the device never decrypted again. */
  unrecovered: number;
  /** Of those, the ones the device did not owe a recovery (owesRecovery: the stream ended too soon after, or no usable hint). */
  unrecoveredNotOwed: number;
  /** Application bytes written over every flow and direction. */
  bytes: number;
  /** Link flaps (NIC down, NETDEV_DOWN, NIC up) scheduled over every world. */
  linkFlaps: number;
  /** Worlds whose drivers had a fault plan. */
  faultedWorlds: number;
  /** Wall time the run took (ms): the soak's time mode stops starting worlds once its budget is spent. */
  elapsedMs: number;
  failures: string[];
};

export type ScenarioResult = {
  name: string;
  ok: boolean;
  runs: ProfileRun[];
  /** Every failure, prefixed with its profile. */
  failures: string[];
};

export type RunOptions = {
  /** Soak: override the scenario's flow count (the `make soak` knob). */
  soakFlows?: number;
  /**
   * Soak time mode: start worlds until this many seconds of wall time have passed (split evenly over the
   * driver profiles), instead of a flow count. Each world still replays bit for bit from its seed.
   */
  soakSeconds?: number;
  /** Soak: override the scenario's seed (reproduce a run: the report prints the seed it used). */
  soakSeed?: number;
  /** Hard cap on simulator events per world (a livelock fails instead of hanging). */
  maxEvents?: number;
  /** The modules of `{ name: 'module', path }` driver profiles, by path (tlsnic run loads them from the file). */
  drivers?: Readonly<Record<string, DriverModule>>;
  /**
   * Called after each plain (not soak) run with every frame the link carried: when it was sent, which way, what
   * the link did with it (pass, drop, delay, duplicate, corrupt) and the frame as sent. tlsnic run --out.
   */
  onWire?: (profile: ProfileId, log: readonly LinkLogEntry[]) => void;
  /**
   * Called after each run with what each direction of each connection went through (device events of both
   * hosts, link impairments, tlsdev_ops calls and resync helpers) and both hosts' counters. tlsnic run
   * --timeline. A soak draws one of its worlds, run again from its seed (`why` says which and why): the first
   * that failed, else the first with a loss of sync never recovered, else the one with the longest recovery.
   */
  onTimeline?: (profile: ProfileId, timeline: WorldTimeline, why?: string) => void;
  /** With onTimeline: keep only the marks of this stretch of the world's virtual time (seconds). */
  timelineWindow?: TimeWindow | null;
};

/** One world's timeline (RunOptions.onTimeline): marks per connection direction, counters per host. */
export type WorldTimeline = {
  dirs: WorldTimelineDir[];
  hosts: Record<Side, { ethtool: string; tlsStat: string; netdev: string }>;
  /** RunOptions.timelineWindow: the stretch of virtual time the marks cover, null: all of it. */
  window: TimeWindow | null;
};

/** What one world needs: resolved traffic sizes and a profile. */
type WorldSpec = {
  seed: number;
  driver: DriverProfile;
  device: Scenario['device'];
  tcp: Scenario['tcp'];
  keyBits: 128 | 256;
  /** TLS 1.3 records, offloaded by both hosts' NICs and stacks. */
  tls13: boolean;
  /** Keep every frame the link carries (RunOptions.onWire). */
  captureWire?: boolean;
  /** Record the world's timeline (RunOptions.onTimeline). */
  timeline?: boolean;
  writesA: number[];
  writesB: number[];
  handshakeA: number;
  handshakeB: number;
  isnA?: number | undefined;
  isnB?: number | undefined;
  flows: number;
  impairments: readonly Impairment[];
  faults: readonly FaultInput[];
};

type WorldOutcome = {
  hosts: Record<Side, HostReport>;
  flows: FlowReport[];
  impairments: ImpairTally[];
  /** Problems found while running (the simulation threw, an impairment never matched). */
  errors: string[];
  /** The RX resync type the receiving driver set (tls_offload_rx_resync_set_type), null if no flow offloaded RX. */
  rxResyncType: ResyncType | null;
  /** The link's log with frames (WorldSpec.captureWire), else null. */
  wire: readonly LinkLogEntry[] | null;
  /** WorldSpec.timeline: the world's timeline, else null. */
  timeline: WorldTimeline | null;
};

/** The profile's resync type: what a built-in driver sets, or what a module's driver was seen to set (default DRIVER_REQ, as the kernel's). */
function resyncOf(d: DriverProfile, seen: ResyncType | null): ResyncType {
  return resyncTypeOf(d) ?? seen ?? 'driver_req';
}

/** The modules of a scenario's `{ name: 'module', path }` profiles, by path; paths are relative to `baseDir`. */
export async function loadScenarioDrivers(s: Scenario, baseDir: string): Promise<Record<string, DriverModule>> {
  const drivers: Record<string, DriverModule> = {};
  for (const d of Array.isArray(s.driver) ? s.driver : [s.driver]) {
    if (d.name === 'module' && !drivers[d.path]) drivers[d.path] = await loadDriver(resolve(baseDir, d.path));
  }
  return drivers;
}

export function runScenarioObject(s: Scenario, o: RunOptions = {}): ScenarioResult {
  const profiles = Array.isArray(s.driver) ? s.driver : [s.driver];
  const runs = profiles.map((d) => (s.soak ? runSoak(s, s.soak, d, o, profiles.length) : runPlain(s, d, o)));
  const failures = runs.flatMap((r) => r.failures.map((f) => `${r.profile}: ${f}`));
  return { name: s.name, ok: failures.length === 0, runs, failures };
}

function expectFor(s: Scenario, d: DriverProfile): Expectations {
  return { ...s.expect, ...s.expectByProfile?.[profileId(d)] };
}

function runPlain(s: Scenario, d: DriverProfile, o: RunOptions): ProfileRun {
  const t = s.traffic!;
  const started = Date.now();
  const writesA = t.writes ?? Array.from({ length: t.records! }, () => t.recordSize!);
  const out = runWorld({
    seed: s.seed, driver: d, device: s.device, tcp: s.tcp, keyBits: t.keyBits, tls13: t.tls13, captureWire: o.onWire !== undefined, timeline: o.onTimeline !== undefined, writesA,
    writesB: t.reverseBytes > 0 ? [t.reverseBytes] : [], handshakeA: t.handshakeA, handshakeB: t.handshakeB,
    isnA: t.isnA, isnB: t.isnB, flows: t.flows, impairments: s.impairments, faults: s.faults,
  }, o);
  const failures = [...out.errors, ...checkExpectations(expectFor(s, d), out, s.impairments, resyncOf(d, out.rxResyncType))];
  if (out.wire) o.onWire?.(profileId(d), out.wire);
  if (out.timeline) o.onTimeline?.(profileId(d), out.timeline);
  const never = unrecovered(out.flows);
  return {
    profile: profileId(d), resyncType: resyncOf(d, out.rxResyncType), seed: s.seed, worlds: 1, flowCount: t.flows, hosts: out.hosts,
    flows: out.flows, impairments: out.impairments, recovery: distances(out.flows), unrecovered: never,
    unrecoveredNotOwed: never - owedUnrecovered(out.flows, resyncOf(d, out.rxResyncType)),
    bytes: out.flows.reduce((n, f) => n + f.bytesWritten, 0), linkFlaps: s.impairments.filter((i) => i.kind === 'linkDown').length,
    faultedWorlds: s.faults.length ? 1 : 0, elapsedMs: Date.now() - started, failures,
  };
}

/**
 * Seeded randomized soak: `flows` connections (or, in time mode, as many as fit in `soakSeconds`),
 * `flowsPerWorld` per world, each world with its own random loss/reorder/duplication rates up to the maxima
 * on the first `untilFraction` of every stream, up to `maxLinkFlaps` link flaps, and with probability
 * `faultRate` random driver faults. The invariant holds in every world: every application byte exactly once,
 * in order, nothing accepted with a bad tag, every injected contract violation reported and none without one.
 * Recovery after a loss of sync is checked only in worlds without flaps or faults (those may leave RX in software).
 */
function runSoak(s: Scenario, k: SoakSpec, d: DriverProfile, o: RunOptions, profiles: number): ProfileRun {
  const started = Date.now();
  const seed0 = o.soakSeed ?? s.seed;
  const deadline = o.soakSeconds !== undefined ? started + (o.soakSeconds * 1000) / profiles : null;
  const total = deadline === null ? o.soakFlows ?? k.flows : Infinity;
  const rng = new Rng(seed0).fork(`soak-${profileId(d)}`);
  const exp = expectFor(s, d);
  const failures: string[] = [];
  const flows: FlowReport[] = [];
  const recovery: number[] = [];
  let open = 0;
  let notOwed = 0;
  let hosts: Record<Side, HostReport> | null = null;
  let flowCount = 0;
  let bytes = 0;
  let linkFlaps = 0;
  let faultedWorlds = 0;
  let resync: ResyncType | null = null;
  // The world --timeline draws (RunOptions.onTimeline): rank 3 failed, 2 left a loss unrecovered that the device
  // owed a recovery, 1 recovered from one (the longest recovery wins), 0 nothing happened.
  let drawn: { spec: WorldSpec; rank: number; distance: number; why: string } | null = null;
  for (let i = 0; flowCount < total && (deadline === null || i === 0 || Date.now() < deadline); i++) {
    const seed = rng.next();
    const wr = new Rng(seed).fork('writes');
    const writesA: number[] = [];
    for (let n = 0; n < k.bytesPerFlow;) {
      const len = 1 + wr.int(k.maxWrite);
      writesA.push(len);
      n += len;
    }
    const rate = (max: number) => Math.round(wr.int(1_000_001) * max) / 1_000_000;
    const impairments: Impairment[] = [{
      kind: 'random', loss: rate(k.maxLoss), reorder: rate(k.maxReorder), duplicate: rate(k.maxDuplicate), ackLoss: k.maxAckLoss > 0 ? rate(k.maxAckLoss) : 0,
      reorderDelayUs: 300, untilFraction: k.untilFraction, dir: 'a>b',
    }];
    const wk = new Rng(seed).fork('chaos');
    const flaps = k.maxLinkFlaps ? wk.int(k.maxLinkFlaps + 1) : 0;
    for (let f = 0; f < flaps; f++) {
      impairments.push({ kind: 'linkDown', side: wk.chance(0.5) ? 'a' : 'b', atUs: wk.int(4000), forUs: 200 + wk.int(3000), netdevDown: true });
    }
    const faults = k.faultRate > 0 && wk.chance(k.faultRate) ? randomFaults(wk) : [];
    const n = Math.min(k.flowsPerWorld, total - flowCount);
    const spec: WorldSpec = {
      seed, driver: d, device: s.device, tcp: s.tcp, keyBits: i % 2 ? 256 : 128, tls13: k.tls13, writesA, writesB: [], handshakeA: 517,
      handshakeB: 4000, flows: n, impairments, faults,
    };
    const out = runWorld(spec, o);
    const chaos = flaps > 0 || faults.length > 0;
    // A random impairment that never fired is fine in a soak (rates may be 0).
    const fails = [...out.errors.filter((e) => !e.includes('never matched')), ...checkExpectations({
      ...exp, recovered: exp.recovered && !chaos, counters: undefined, tlsStat: undefined, calls: undefined, resyncEpisodes: undefined,
      violations: undefined,
    }, out, impairments, resyncOf(d, out.rxResyncType))];
    resync ??= out.rxResyncType;
    const ri = impairments[0] as Extract<Impairment, { kind: 'random' }>;
    const what = `loss ${ri.loss}, reorder ${ri.reorder}, dup ${ri.duplicate}${ri.ackLoss ? `, ack loss ${ri.ackLoss}` : ''}, ${flaps} link flap(s)`
      + `${faults.length ? `, faults ${faults.map((f) => `${f.kind}@${f.side}/${f.dir}/every ${f.every}`).join(' ')}` : ''}`;
    for (const f of fails) failures.push(`world ${i} (seed ${seed}, ${what}): ${f}`);
    const never = unrecovered(out.flows);
    // A loss with no unimpaired stretch after it to scan back in (or, CORE_NEXT_HINT, no hint the device could
    // take) is not the device's failure: a world with only those is no more interesting than one without.
    const owed = owedUnrecovered(out.flows, resyncOf(d, out.rxResyncType));
    if (o.onTimeline) {
      const longest = Math.max(-1, ...distances(out.flows));
      const rank = fails.length ? 3 : owed ? 2 : longest >= 0 ? 1 : 0;
      if (!drawn || rank > drawn.rank || (rank === 1 && drawn.rank === 1 && longest > drawn.distance)) {
        const why = rank === 3 ? `the first that failed: ${fails[0]}` : rank === 2 ? `the first with a loss of sync never recovered${chaos ? ' (it had link flaps or driver faults)' : ''}`
          : rank === 1 ? `the longest recovery: ${longest} records` : 'no loss of sync in any world: the first';
        drawn = { spec, rank, distance: longest, why: `world ${i} of the soak (seed ${seed}, ${what}), ${why}` };
      }
    }
    recovery.push(...distances(out.flows));
    open += never;
    notOwed += never - owed;
    if (fails.length) flows.push(...out.flows.filter((f) => !f.exact || f.episodes.some((e) => e.distance === null)));
    hosts = hosts ? sumHosts(hosts, out.hosts) : out.hosts;
    flowCount += n;
    bytes += out.flows.reduce((x, f) => x + f.bytesWritten, 0);
    linkFlaps += flaps;
    if (faults.length) faultedWorlds++;
  }
  // Drawn from its seed again, with the recorder on (a world replays bit for bit).
  if (drawn && o.onTimeline) {
    const again = runWorld({ ...drawn.spec, timeline: true }, o);
    if (again.timeline) o.onTimeline(profileId(d), again.timeline, drawn.why);
  }
  // Counter expectations apply to the sums over every world.
  const summed: WorldOutcome = { hosts: hosts!, flows: [], impairments: [], errors: [], rxResyncType: null, wire: null, timeline: null };
  failures.push(...checkExpectations({ delivery: 'exact', recovered: false, counters: exp.counters, tlsStat: exp.tlsStat, violations: exp.violations }, summed, []));
  return {
    profile: profileId(d), resyncType: resyncOf(d, resync), seed: seed0, worlds: Math.max(1, Math.ceil(flowCount / k.flowsPerWorld)), flowCount,
    hosts: hosts!, flows, impairments: [], recovery, unrecovered: open, unrecoveredNotOwed: notOwed, bytes, linkFlaps, faultedWorlds, elapsedMs: Date.now() - started, failures,
  };
}

/** Faults a soak world may draw; get-record-bad-seq and add-late every other call at most (see faulty.ts). */
const SOAK_FAULTS: readonly FaultKind[] = FAULT_KINDS;

/** 1-3 random driver faults on a random side and direction, each hitting every 1st..8th eligible call. */
function randomFaults(r: Rng): FaultInput[] {
  const n = 1 + r.int(3);
  const out: FaultInput[] = [];
  for (let i = 0; i < n; i++) {
    const kind = SOAK_FAULTS[r.int(SOAK_FAULTS.length)]!;
    // A bad tls_get_record answer on every call would drop every out-of-order segment forever (mlx5 drops
    // what it cannot sync): leave the retransmit a chance.
    const every = (kind === 'get-record-bad-seq' ? 2 : 1) + r.int(8);
    out.push({
      kind, side: (['a', 'b', 'both'] as const)[r.int(3)]!, dir: (['rx', 'tx', 'both'] as const)[r.int(3)]!, first: r.int(3), every,
      delayUs: 50 + r.int(5000),
    });
  }
  return out;
}

/** Per-side fault plans from a scenario's `faults` list. */
function faultPlans(list: readonly FaultInput[]): Partial<Record<Side, FaultPlan>> {
  const plans: Record<Side, FaultSpec[]> = { a: [], b: [] };
  for (const f of list) {
    const spec: FaultSpec = {
      kind: f.kind, dir: f.dir, first: f.first, every: f.every,
      ...(f.delayUs !== undefined ? { delayUs: f.delayUs } : {}), ...(f.errno !== undefined ? { errno: f.errno } : {}),
    };
    if (f.side !== 'b') plans.a.push(spec);
    if (f.side !== 'a') plans.b.push(spec);
  }
  return plans;
}

function sumHosts(x: Record<Side, HostReport>, y: Record<Side, HostReport>): Record<Side, HostReport> {
  const add = <T extends object>(p: T, q: T): T => {
    const r = { ...p } as Record<string, number>;
    for (const [k, v] of Object.entries(q)) r[k] = (r[k] ?? 0) + (v as number);
    return r as T;
  };
  const one = (p: HostReport, q: HostReport): HostReport => ({
    ethtool: add(p.ethtool, q.ethtool), tlsStat: add(p.tlsStat, q.tlsStat), tcp: add(p.tcp, q.tcp), calls: [], table: '',
    violations: [...p.violations, ...q.violations].slice(0, 50), violationCounts: add(p.violationCounts, q.violationCounts),
    faultsInjected: p.faultsInjected && q.faultsInjected ? add(p.faultsInjected, q.faultsInjected) : p.faultsInjected ?? q.faultsInjected,
  });
  return { a: one(x.a, y.a), b: one(x.b, y.b) };
}

function unrecovered(flows: readonly FlowReport[]): number {
  return flows.reduce((n, f) => n + f.episodes.filter((e) => e.distance === null).length, 0);
}

/** Losses of sync never recovered that the device owed a recovery (owesRecovery). */
function owedUnrecovered(flows: readonly FlowReport[], resyncType: ResyncType | null): number {
  return flows.reduce((n, f) => n + f.episodes.filter((e) => e.distance === null && owesRecoveryOf(f, e, resyncType)).length, 0);
}

function distances(flows: readonly FlowReport[]): number[] {
  const out: number[] = [];
  for (const f of flows) for (const e of f.episodes) if (e.distance !== null) out.push(e.distance);
  return out;
}

/** Per receiving RX context: the flow direction it serves and what its sync went through. */
type RxWatch = { flow: Flow; dir: FlowDir; sync: RxSyncWatch };

function runWorld(spec: WorldSpec, o: RunOptions): WorldOutcome {
  const nicProfile: Partial<Record<Side, Partial<NicProfile>>> = { a: nicProfileFrom(spec.device), b: nicProfileFrom(spec.device) };
  for (const imp of spec.impairments) {
    if (imp.kind === 'tableFull') nicProfile[imp.side] = { ...nicProfile[imp.side], maxContexts: imp.capacity };
  }
  const driverModule = spec.driver.name === 'module' ? o.drivers?.[spec.driver.path] : undefined;
  if (spec.tls13) for (const side of ['a', 'b'] as const) nicProfile[side] = { ...nicProfile[side], tls13: true };
  const flows: Flow[] = [];
  // The world's clock, once there is a world (the recorder is made first: the stacks log to it from the start).
  let clock = () => 0;
  const recorder = spec.timeline
    ? new WorldTimelineRecorder(() => clock(), (port) => flows.find((f) => f.port === port)?.index ?? null, TIMELINE_MARKS_CAP, o.timelineWindow ?? null)
    : null;
  const w = buildWorld({
    seed: spec.seed, driver: spec.driver, nicProfile, faults: faultPlans(spec.faults), ...(driverModule ? { driverModule } : {}),
    ...(spec.tls13 ? { tls13: true } : {}), ...(spec.captureWire ? { captureWire: true } : {}),
    ...(recorder ? { stackLog: (side: Side, ev: TlsStackEvent) => recorder.stackEvent(side, ev) } : {}),
    ...(spec.tcp ? { tcp: Object.fromEntries(Object.entries(spec.tcp).filter(([, v]) => v !== undefined)) } : {}),
  });
  clock = () => w.sim.now;
  const watches = new Map<string, RxWatch>();
  const errors: string[] = [];
  for (const h of [w.a, w.b]) {
    h.nic.onEvent((ev) => {
      recorder?.nicEvent(h.side, ev);
      onNicEvent(w, h, ev, flows, watches);
    });
  }
  const linkDowns = spec.impairments.filter((i): i is Extract<Impairment, { kind: 'linkDown' }> => i.kind === 'linkDown');
  for (let i = 0; i < spec.flows; i++) {
    flows.push(connectFlow(w, i, {
      keyBits: spec.keyBits, tls13: spec.tls13, writesA: spec.writesA, writesB: spec.writesB, handshakeA: spec.handshakeA, handshakeB: spec.handshakeB,
      isnA: spec.isnA, isnB: spec.isnB,
    }, i === 0 ? () => scheduleLinkDowns(w, linkDowns) : undefined));
  }
  const compiled = compileImpairments(spec.impairments, flows, w.sim, w.rng.fork('impair'));
  w.link.impair = recorder
    ? (frame, dir, index) => {
      const fate = compiled.fn(frame, dir, index);
      recorder.linkFate(frame, dir, fate);
      return fate;
    }
    : compiled.fn;
  const tables: Record<Side, string> = { a: '', b: '' };
  try {
    runIdle(w, o.maxEvents);
    tables.a = w.a.nic.dumpTable();
    tables.b = w.b.nic.dumpTable();
    for (const f of flows) {
      f.client.close();
      f.server?.close();
    }
    runIdle(w, o.maxEvents);
  } catch (e) {
    if (!(e instanceof TlsnicError)) throw e;
    errors.push(`the simulation failed at ${w.sim.now} µs: ${e.name}: ${e.message}`);
  }
  for (const t of compiled.tallies) {
    if (t.fired === 0) errors.push(`impairment #${t.index} (${t.kind}) never matched a segment`);
  }
  for (const h of [w.a, w.b]) errors.push(...violationProblems(h));
  const reports: FlowReport[] = [];
  for (const f of flows) {
    for (const d of [f.ab, f.ba]) {
      if (d.writes.length === 0) continue;
      const rxSide: Side = d.dir === 'a>b' ? 'b' : 'a';
      const watch = [...watches.values()].find((x) => x.dir === d);
      const rxHost = rxSide === 'a' ? w.a : w.b;
      const sk = d.rxTls?.sk.id;
      const calls = rxHost.stack.callLog.filter((c) => c.op === 'tls_dev_resync' && c.dir === 'rx' && c.sk === sk);
      const hit = { atUs: compiled.lastHit(f.index, d.dir), spans: compiled.hitSpans(f.index, d.dir) };
      reports.push(flowReport(f, d, watch, tables[rxSide], hit, calls, rxHost.nic.profile.scan));
    }
  }
  // What the receiving driver set for RX resync, read from the first socket that offloaded RX.
  let rxResyncType: ResyncType | null = null;
  for (const f of flows) {
    for (const d of [f.ab, f.ba]) if (rxResyncType === null && d.rxTls?.rx) rxResyncType = d.rxTls.rx.resync.type;
  }
  return {
    hosts: { a: hostReport(w.a, tables.a), b: hostReport(w.b, tables.b) }, flows: reports, impairments: compiled.tallies, errors, rxResyncType,
    wire: spec.captureWire ? w.link.log : null,
    timeline: recorder ? worldTimeline(w, flows, recorder) : null,
  };
}

function worldTimeline(w: TbWorld, flows: readonly Flow[], recorder: WorldTimelineRecorder): WorldTimeline {
  const dirs = recorder.finish((side, sk) => flows.find((f) => (side === 'a' ? f.client : f.server)?.sk.id === sk)?.port ?? null);
  const host = (h: TbHost) => ({ ethtool: formatEthtool(h.nic.counters), tlsStat: h.stack.formatTlsStat(), netdev: h.netdev.name });
  return { dirs, hosts: { a: host(w.a), b: host(w.b) }, window: recorder.window };
}

/** Run to idle; a livelock hits the event cap and throws SimEventCapError (a ContractError), reported. */
function runIdle(w: TbWorld, maxEvents = 20_000_000): void {
  w.sim.run({ maxEvents });
}

/** NETDEV_DOWN on a side at a time after the first flow installed TLS (device down mid-stream, SPEC 8). */
function scheduleLinkDowns(w: TbWorld, list: ReadonlyArray<Extract<Impairment, { kind: 'linkDown' }>>): void {
  for (const l of list) {
    const h = l.side === 'a' ? w.a : w.b;
    w.sim.schedule(l.atUs, () => {
      h.nic.setLink(false);
      if (l.netdevDown) h.stack.netdevDown(h.netdev);
      w.sim.schedule(l.forUs, () => h.nic.setLink(true));
    });
  }
}

function onNicEvent(w: TbWorld, h: TbHost, ev: NicEvent, flows: readonly Flow[], watches: Map<string, RxWatch>): void {
  switch (ev.kind) {
    case 'ctx-add': {
      if (ev.dir !== 'rx') return;
      // B's RX context is keyed by its local (server) port; A's by the remote one.
      const port = serverPortOf(h.side, ev.tuple);
      const flow = flows.find((f) => f.port === port);
      if (!flow) return;
      const dir = h.side === 'b' ? flow.ab : flow.ba;
      const sync = new RxSyncWatch(() => w.sim.now, (seq) => recordStarting(dir, seq), { decryptedTimes: true });
      watches.set(`${h.side}${ev.ctx}`, { flow, dir, sync });
      return;
    }
    case 'rx-lost':
    case 'rx-resync':
    case 'rx':
      watches.get(`${h.side}${ev.ctx}`)?.sync.onEvent(ev);
      return;
    case 'ctx-del':
      // A deleted context's handle may be reused by a later add.
      if (ev.dir === 'rx') {
        const x = watches.get(`${h.side}${ev.ctx}`);
        if (x) watches.set(`${h.side}${ev.ctx}#${x.flow.port}`, x);
        watches.delete(`${h.side}${ev.ctx}`);
      }
      return;
    default:
      return;
  }
}

/** Seq of the first payload byte after the SYN of `d`'s sender (0 before it connected). */
function firstSeq(d: FlowDir): number {
  return d.txTcp ? seqAdd(d.txTcp.iss, 1) : 0;
}

/** The record starting at `seq` (-1: none); CORE_NEXT_HINT may name the record after the last, at the stream's end. */
function recordStarting(d: FlowDir, seq: number): number {
  const off = seqDiff(seq, firstSeq(d));
  return off === d.end ? d.starts.length : d.starts.indexOf(off);
}

/** Bytes of the direction's longest record, header included (a loop: a spread of every record's length can overflow the stack). */
function longestRecord(d: FlowDir): number {
  let max = 0;
  for (let i = 0; i < d.starts.length; i++) max = Math.max(max, (d.starts[i + 1] ?? d.end) - d.starts[i]!);
  return max;
}

/** Index of the record holding stream offset `off` (the last record starting at or before it). */
function recordAt(d: FlowDir, off: number): number {
  let lo = 0;
  let hi = d.starts.length - 1;
  if (hi < 0 || off < d.starts[0]!) return -1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (d.starts[mid]! <= off) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function flowReport(
  f: Flow, d: FlowDir, watch: RxWatch | undefined, table: string, hit: { atUs: number | null; spans: readonly number[] }, calls: readonly DriverCall[],
  scan: ScanPolicy,
): FlowReport {
  const lastHit = hit.atUs;
  const isn1 = firstSeq(d);
  const sn0 = recSeqToBigInt(d.info.recSeq);
  // A DRIVER_REQ answer names the seq the device asked about, its header's last byte (tls_device_rx_resync_new_rec()).
  const back = d.rxTls?.rx?.resync.type === 'driver_req' ? TLS_HEADER_SIZE - 1 : 0;
  const resyncs = calls.map((c) => {
    const record = recordStarting(d, seqAdd(c.seq!, -back));
    return { seq: c.seq!, record, rcdSnOk: record >= 0 && c.rcdSn === sn0 + BigInt(record) };
  });
  const sync = watch?.sync;
  const hints = sync ? [...sync.hints] : [];
  const episodes: Episode[] = (sync?.episodes ?? []).map((raw) => {
    const e = quietEpisode(raw, hit.spans);
    const lostRecord = recordAt(d, seqDiff(e.lostSeq, isn1));
    const recoveredRecord = e.recoveredSeq === null ? null : recordAt(d, seqDiff(e.recoveredSeq, isn1));
    return {
      lostRecord, recoveredRecord, distance: recoveredRecord === null ? null : recoveredRecord - lostRecord, lostAtUs: e.lostAtUs,
      recoveredAtUs: e.recoveredAtUs, receivedAfter: e.receivedAfter,
    };
  });
  const written = d.writes.reduce((n, x) => n + x.length, 0);
  const { read, inOrder } = comparePrefix(d.writes, d.received);
  const rx = d.rxTls;
  const tx = d.dir === 'a>b' ? f.client : f.server;
  let deviceRxState: string | null = null;
  const ctxLine = table.split('\n').find((l) => l.includes('dir=rx') && l.includes(`:${f.port}`));
  if (ctxLine) deviceRxState = /state=(\w+)/.exec(ctxLine)?.[1] ?? null;
  return {
    flow: f.index, port: f.port, dir: d.dir, records: d.starts.length, recordsRead: d.plainEnds.filter((n) => n <= read).length, bytesWritten: written, bytesRead: read, inOrder,
    exact: inOrder && read === written && d.handshakeReceived === d.handshake.length,
    socketError: rx?.error == null ? null : rx.error === EBADMSG ? 'EBADMSG' : `errno ${rx.error}`,
    rxMode: rx?.rxMode ?? null, txMode: tx?.txMode ?? null, deviceRxState, episodes, resyncs, hints,
    decryptedAfterLastImpairment: sync?.decryptedAtUs ? sync.decryptedAtUs.filter((t) => lastHit === null || t > lastHit).length : 0,
    lastImpairmentUs: lastHit,
    scanReach: scanReach(scan, longestRecord(d)),
  };
}

/** How many bytes were read, and whether they equal the written bytes from the start. */
function comparePrefix(writes: readonly Uint8Array[], received: readonly Uint8Array[]): { read: number; inOrder: boolean } {
  let wi = 0;
  let wo = 0;
  let read = 0;
  for (const r of received) {
    for (let j = 0; j < r.length; j++) {
      while (wi < writes.length && wo === writes[wi]!.length) {
        wi++;
        wo = 0;
      }
      if (wi >= writes.length || writes[wi]![wo++] !== r[j]) return { read: read + r.length, inOrder: false };
    }
    read += r.length;
  }
  return { read, inOrder: true };
}

/**
 * The contract check of one host: a driver without faults breaks no rule (a violation there is a stack,
 * device or reference-driver bug), and every fault injected that breaks one is reported as such.
 */
function violationProblems(h: TbHost): string[] {
  const list = h.stack.violations;
  if (!h.faulty) return list.slice(0, 10).map((v) => `${h.side}: contract violation without an injected fault: ${formatViolation(v)}`);
  const out: string[] = [];
  for (const f of h.faulty.expected) {
    if (list.some((v) => v.sk === f.sk && f.expect.includes(v.kind))) continue;
    out.push(`${h.side}: injected fault ${f.kind} (sk ${f.sk} ${f.dir}) was not reported as a contract violation (expected ${f.expect.join(' or ')})`);
    if (out.length >= 10) break;
  }
  return out;
}

function hostReport(h: TbHost, table: string): HostReport {
  return {
    violations: h.stack.violations.slice(0, 50).map(formatViolation), violationCounts: { ...emptyViolationCounts(), ...h.stack.violationCounts },
    faultsInjected: h.faulty ? { ...h.faulty.injected } : null,
    ethtool: { ...h.nic.counters }, tlsStat: { ...h.stack.tlsStat }, tcp: { ...h.host.counters },
    calls: h.stack.callLog.map((c) => {
      const op = c.op.replace('tls_dev_', '');
      return c.op === 'tls_dev_del' ? `${op} ${c.dir}` : `${op} ${c.dir} ${c.threw ? 'threw' : c.result}`;
    }),
    table,
  };
}

function owesRecoveryOf(f: FlowReport, ep: Episode, resyncType: ResyncType | null): boolean {
  return owesRecovery(resyncType, f.hints, ep.lostAtUs, f.records, f.lastImpairmentUs, { receivedAfter: ep.receivedAfter, reach: f.scanReach });
}

function checkExpectations(
  e: Partial<Expectations>, out: WorldOutcome, impairments: readonly Impairment[], resyncType: ResyncType | null = null,
): string[] {
  const fails: string[] = [];
  const corrupted = impairments.filter((i): i is Extract<Impairment, { kind: 'corruptCiphertext' }> => i.kind === 'corruptCiphertext');
  for (const f of out.flows) {
    const name = `flow ${f.flow} ${f.dir}`;
    const bad = corrupted.filter((c) => c.flow === f.flow && c.dir === f.dir);
    if (e.delivery === 'badTagRejected' && bad.length > 0) {
      // No record with a bad tag may be accepted: the reader stops right before the first corrupted one.
      if (!f.inOrder) fails.push(`${name}: bytes read differ from bytes written`);
      if (f.socketError !== 'EBADMSG') fails.push(`${name}: socket error ${f.socketError ?? 'none'}, expected EBADMSG`);
      const first = Math.min(...bad.map((c) => c.record));
      if (f.recordsRead !== first) fails.push(`${name}: the reader got ${f.recordsRead} records, expected exactly the ${first} before the corrupted one`);
    } else if (e.delivery !== undefined) {
      if (!f.exact) fails.push(`${name}: delivery not exact: read ${f.bytesRead} of ${f.bytesWritten} bytes, ${f.inOrder ? 'in order' : 'WRONG BYTES'}`);
      if (f.socketError) fails.push(`${name}: socket error ${f.socketError}`);
    }
    // Always checked: a resync that names a wrong record start or number is a driver or stack bug.
    for (const r of f.resyncs) {
      if (r.record < 0) fails.push(`${name}: tls_dev_resync(RX) at seq ${r.seq}, which is not a record start (DRIVER_REQ: its header's last byte)`);
      else if (!r.rcdSnOk) fails.push(`${name}: tls_dev_resync(RX) for record ${r.record} passed a wrong record number`);
    }
    for (const h of hintsTakenTooLate(resyncType, f.hints)) {
      fails.push(`${name}: resync hint for record ${h.record} at ${h.atUs} µs taken with the device already ${h.passedBytes} bytes past it`);
    }
    if (e.recovered) {
      const open = f.episodes.filter((x) => x.distance === null && owesRecoveryOf(f, x, resyncType));
      if (open.length) fails.push(`${name}: device lost RX sync at record ${open[0]!.lostRecord} and never decrypted again`);
      const lastOpen = f.episodes.at(-1);
      const excused = lastOpen !== undefined && lastOpen.distance === null && !owesRecoveryOf(f, lastOpen, resyncType);
      if (f.lastImpairmentUs !== null && f.rxMode === 'hw' && f.decryptedAfterLastImpairment === 0 && !excused) {
        fails.push(`${name}: the device decrypted nothing after the last impairment (${f.lastImpairmentUs} µs)`);
      }
    }
    if (e.recoveryRecords !== undefined) {
      for (const x of f.episodes) {
        if (x.distance !== null && !inRange(x.distance, e.recoveryRecords)) {
          fails.push(`${name}: recovery distance ${x.distance} records (lost at record ${x.lostRecord}) outside ${showRange(e.recoveryRecords)}`);
        }
      }
    }
  }
  if (e.resyncEpisodes !== undefined) {
    const n = out.flows.reduce((s, f) => s + f.episodes.length, 0);
    if (!inRange(n, e.resyncEpisodes)) fails.push(`loss-of-sync episodes: ${n}, expected ${showRange(e.resyncEpisodes)}`);
  }
  for (const side of ['a', 'b'] as const) {
    const h = out.hosts[side];
    checkRanges(`${side}: ethtool`, e.counters?.[side], (k) => h.ethtool[k as keyof EthtoolCounters], fails);
    checkRanges(`${side}: tls_stat`, e.tlsStat?.[side], (k) => h.tlsStat[k as keyof TlsStat], fails);
    checkRanges(`${side}: contract violations`, e.violations?.[side], (k) => h.violationCounts[k as keyof ViolationCounts], fails);
    const c = e.calls?.[side];
    if (c?.pattern !== undefined) {
      const joined = h.calls.join(', ');
      let re: RegExp;
      try {
        re = new RegExp(c.pattern);
      } catch (err) {
        fails.push(`${side}: calls.pattern is not a regular expression: ${(err as Error).message}`);
        continue;
      }
      if (!re.test(joined)) fails.push(`${side}: driver calls "${joined}" do not match /${c.pattern}/`);
    }
    for (const [prefix, r] of Object.entries(c?.count ?? {})) {
      const n = h.calls.filter((x) => x.startsWith(prefix)).length;
      if (r !== undefined && !inRange(n, r)) fails.push(`${side}: ${n} driver calls "${prefix}…", expected ${showRange(r)}`);
    }
  }
  return fails;
}
