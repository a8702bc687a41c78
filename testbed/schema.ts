// The scenario language (issue 5): traffic, impairments keyed to meaning (which record, header or body
// segment), the driver/device profile, and expectations. One zod schema; types are inferred from it.
import { z } from 'zod';
import { ETHTOOL_TLS_COUNTERS } from '../emulator/nic/counters.ts';
import { MAX_TABLE_CAPACITY } from '../emulator/nic/flow-table.ts';
import { TLS_STAT_NAMES } from '../driver-api/stack/tls-stat.ts';
import { VIOLATION_KINDS } from '../driver-api/stack/violations.ts';
import { FAULT_KINDS } from '../driver-api/drivers/faulty.ts';

const uint = z.number().int().nonnegative();
const u32 = uint.max(0xffff_ffff);
const side = z.enum(['a', 'b']);
const dir = z.enum(['a>b', 'b>a']);

/** A counter expectation: an exact value or an inclusive range. */
export const rangeSchema = z.union([
  uint,
  z.strictObject({ min: uint.optional(), max: uint.optional() }).refine((r) => r.min === undefined || r.max === undefined || r.min <= r.max, {
    message: 'min must not exceed max',
  }),
]);
export type { Range } from './range.ts';
export { checkRanges, inRange, showRange } from './range.ts';

/** netem-like rates per data segment (random impairments of `tlsnic run` and `tlsnic replay --scenario`). */
export const randomRates = {
  loss: z.number().min(0).max(0.5).default(0),
  reorder: z.number().min(0).max(0.5).default(0),
  duplicate: z.number().min(0).max(0.5).default(0),
  untilFraction: z.number().min(0).max(1).default(0.6),
};

/** Driver and the resync type it makes the stack use (tls_offload_rx_resync_set_type). */
export const driverSchema = z.discriminatedUnion('name', [
  z.strictObject({
    name: z.literal('mlx5'),
    /** GET_PSV completion latency (µs). */
    psvDelayUs: uint.optional(),
    /** Firmware fault: GET_PSV never completes; the driver cancels after psvTimeoutUs. */
    psvNeverAnswers: z.boolean().optional(),
    psvTimeoutUs: uint.optional(),
  }),
  z.strictObject({
    name: z.literal('nfp'),
    rxResyncType: z.enum(['driver_req', 'core_next_hint']).default('driver_req'),
  }),
  /**
   * Your own driver: a module whose default export is a DriverModule ({ name, probe(nic, kernel, opts) }).
   * `path` is relative to the scenario file (`tlsnic run`); from code, RunOptions.drivers maps it to the
   * module. `options` go to probe() as its knobs. The resync type is whatever the driver sets.
   */
  z.strictObject({
    name: z.literal('module'),
    path: z.string().min(1),
    /** The profile's name in reports and expectByProfile ("module:<id>"); default: the file name without extension. */
    id: z.string().regex(/^[A-Za-z0-9_.-]+$/).optional(),
    options: z.record(z.string(), z.unknown()).optional(),
  }),
]);
export type DriverProfile = z.infer<typeof driverSchema>;

export const deviceSchema = z.strictObject({
  /** Context table capacity per NIC (both directions). */
  maxContexts: z.number().int().min(0).max(MAX_TABLE_CAPACITY).optional(),
  tso: z.boolean().optional(),
  /** Stream-scan policy (emulator/nic/types.ts ScanPolicy). */
  scan: z.strictObject({
    confirmHeaders: z.number().int().min(1).optional(),
    rerequestEveryRecords: z.number().int().min(1).optional(),
    restartScanAfterRequests: z.number().int().min(1).optional(),
    skipOneMaxRecord: z.boolean().optional(),
  }).optional(),
});

export const trafficSchema = z.strictObject({
  keyBits: z.union([z.literal(128), z.literal(256)]).default(128),
  /** TLS 1.3 records (an opt-in, as in the proposed kernel series): both hosts' NICs and stacks offload them. */
  tls13: z.boolean().default(false),
  /** A->B application writes: `records` writes of `recordSize` bytes (each write <= 16384 is one record). */
  records: z.number().int().min(1).max(100_000).optional(),
  recordSize: z.number().int().min(1).max(16384).optional(),
  /** Or explicit write sizes (a write over 16384 bytes becomes several records, as tls_push_data cuts). */
  writes: z.array(z.number().int().min(1).max(1 << 20)).min(1).optional(),
  /** B->A application bytes (one write), so both directions carry TLS. */
  reverseBytes: uint.max(1 << 24).default(0),
  /** Client handshake flight (plain bytes before TLS_TX), server flight. */
  handshakeA: z.number().int().min(1).max(65535).default(517),
  handshakeB: z.number().int().min(1).max(65535).default(4000),
  /** Initial sequence numbers (e.g. near 2^32 to wrap the 32-bit seq mid-stream). */
  isnA: u32.optional(),
  isnB: u32.optional(),
  /** Connections in the world, each with this traffic, on ports 4433, 4434, ... */
  flows: z.number().int().min(1).max(64).default(1),
}).refine((t) => (t.writes !== undefined) !== (t.records !== undefined && t.recordSize !== undefined), {
  message: 'give either writes, or records with recordSize',
});

/** Which segment a segment-keyed impairment hits: the one holding record N's header, or the nth of its body. */
const segmentTarget = {
  record: uint,
  /** 'header': the segment carrying the record's first header byte; 'body': a segment with no header byte. */
  part: z.enum(['header', 'body']).default('header'),
  /** Body segments of the record, 0-based, in the order first sent. */
  nth: uint.default(0),
  /** Which transmission of that segment: 0 = the original, 1 = the first retransmit... */
  copy: uint.default(0),
  dir: dir.default('a>b'),
  flow: uint.default(0),
};

export const impairmentSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('drop'), ...segmentTarget }),
  /** Hold the segment back so the following ones overtake it. */
  z.strictObject({ kind: z.literal('reorder'), ...segmentTarget, delayUs: uint.default(200) }),
  z.strictObject({ kind: z.literal('delay'), ...segmentTarget, delayUs: uint }),
  z.strictObject({ kind: z.literal('duplicate'), ...segmentTarget }),
  /** Flip a ciphertext byte and fix the TCP checksum: TLS must see it and reject the record. */
  z.strictObject({
    kind: z.literal('corruptCiphertext'), record: uint, byte: uint.default(0), copy: uint.default(0),
    dir: dir.default('a>b'), flow: uint.default(0),
  }),
  /** Flip a payload byte without fixing the checksum: the NIC does no TLS on it, TCP drops it. */
  z.strictObject({ kind: z.literal('badChecksum'), ...segmentTarget }),
  /** NIC link down on `side` at `atUs` after both sides installed TLS; NETDEV_DOWN to the stack. */
  z.strictObject({
    kind: z.literal('linkDown'), side, atUs: uint, forUs: uint.default(3000), netdevDown: z.boolean().default(true),
  }),
  /** The side's context table holds `capacity` entries (0: every tls_dev_add gets -ENOSPC). */
  z.strictObject({ kind: z.literal('tableFull'), side, capacity: uint.max(MAX_TABLE_CAPACITY).default(0) }),
  /** netem-like random impairment of data segments up to `untilFraction` of each flow's stream. */
  z.strictObject({
    kind: z.literal('random'),
    ...randomRates,
    /** Pure ACKs coming back (receiver to sender of `dir`) dropped at this rate, up to `untilFraction` too. */
    ackLoss: z.number().min(0).max(0.5).default(0),
    reorderDelayUs: uint.default(300),
    dir: z.enum(['a>b', 'b>a', 'both']).default('a>b'),
  }),
]);
export type Impairment = z.infer<typeof impairmentSchema>;

/** A driver fault (driver-api/drivers/faulty.ts) on one side's driver, or both. */
export const faultSchema = z.strictObject({
  kind: z.enum(FAULT_KINDS),
  side: z.enum(['a', 'b', 'both']).default('b'),
  dir: z.enum(['rx', 'tx', 'both']).default('both'),
  /** Inject on the eligible call number `first`, then every `every` calls after it. */
  first: uint.default(0),
  every: z.number().int().min(1).default(1),
  delayUs: uint.max(10_000_000).optional(),
  errno: z.number().int().min(1).max(4095).optional(),
});
export type FaultInput = z.infer<typeof faultSchema>;

const violationName = z.enum(VIOLATION_KINDS as [string, ...string[]]);

export const ethtoolName = z.enum(ETHTOOL_TLS_COUNTERS);
export const tlsStatName = z.enum(TLS_STAT_NAMES);

export const expectSchema = z.strictObject({
  /**
   * 'exact': each application reads every byte once, in order. 'badTagRejected': the receiver of a corrupted
   * record reads an exact prefix ending before that record and its socket fails with EBADMSG.
   */
  delivery: z.enum(['exact', 'badTagRejected']).default('exact'),
  /** Every loss of sync ends with the device decrypting again, after the last impairment too. */
  recovered: z.boolean().default(true),
  counters: z.partialRecord(side, z.partialRecord(ethtoolName, rangeSchema)).optional(),
  tlsStat: z.partialRecord(side, z.partialRecord(tlsStatName, rangeSchema)).optional(),
  /**
   * Driver call log per side as "add rx 0", "resync rx 0", "del rx" lines; `pattern` is a regular
   * expression over the lines joined by ", "; `count` bounds how many lines start with each prefix.
   */
  calls: z.partialRecord(side, z.strictObject({
    pattern: z.string().optional(),
    count: z.record(z.string(), rangeSchema).optional(),
  })).optional(),
  /** Loss-of-sync episodes on the receiving device, summed over flows. */
  resyncEpisodes: rangeSchema.optional(),
  /** Recovery distance (records from the loss until the device decrypts again), for every episode. */
  recoveryRecords: rangeSchema.optional(),
  /**
   * Driver-contract violations per side and kind (occurrences). Whatever this says, a side whose driver has
   * no fault plan must report none, and every injected fault that breaks the contract must be reported.
   */
  violations: z.partialRecord(side, z.partialRecord(violationName, rangeSchema)).optional(),
});
export type Expectations = z.infer<typeof expectSchema>;

export const soakSchema = z.strictObject({
  flows: z.number().int().min(1).max(1_000_000),
  /** TLS 1.3 records in every world (see traffic.tls13). */
  tls13: z.boolean().default(false),
  flowsPerWorld: z.number().int().min(1).max(64).default(4),
  /** Application bytes A->B per flow, in random writes. */
  bytesPerFlow: z.number().int().min(1).max(1 << 24).default(120_000),
  maxWrite: z.number().int().min(1).max(1 << 20).default(20_000),
  /** Per world, each rate is drawn uniformly from [0, max]. */
  maxLoss: z.number().min(0).max(0.5).default(0.05),
  maxReorder: z.number().min(0).max(0.5).default(0.05),
  maxDuplicate: z.number().min(0).max(0.5).default(0.05),
  /** Pure ACKs back to the sender (0 by default: no draw, so older soaks keep their worlds). */
  maxAckLoss: z.number().min(0).max(0.5).default(0),
  untilFraction: z.number().min(0).max(1).default(0.6),
  /** Per world, up to this many link flaps (NIC down then up, NETDEV_DOWN to the stack) on a random side. */
  maxLinkFlaps: uint.max(100).default(0),
  /** Share of worlds that get 1-3 random driver faults (driver-api/drivers/faulty.ts) on a random side. */
  faultRate: z.number().min(0).max(1).default(0),
});

export const scenarioSchema = z.strictObject({
  name: z.string().min(1),
  description: z.string().optional(),
  seed: u32.default(1),
  /** One driver profile, or several: the scenario runs once per profile. */
  driver: z.union([driverSchema, z.array(driverSchema).min(1)]),
  device: deviceSchema.optional(),
  tcp: z.strictObject({
    mss: z.number().int().min(64).max(9000).optional(),
    rcvBuf: z.number().int().min(1).max(65535).optional(),
    tso: z.boolean().optional(),
  }).optional(),
  traffic: trafficSchema.optional(),
  impairments: z.array(impairmentSchema).default([]),
  /** Driver faults: each wraps a side's driver (faultyDriver) so the stack must contain and report them. */
  faults: z.array(faultSchema).default([]),
  expect: expectSchema.default({ delivery: 'exact', recovered: true }),
  /** Extra expectations for one profile ("mlx5", "nfp/driver_req", "nfp/core_next_hint", "module:<id>"). */
  expectByProfile: z.record(
    z.string().regex(/^(mlx5|nfp\/driver_req|nfp\/core_next_hint|module:[A-Za-z0-9_.-]+)$/, 'a profile: mlx5, nfp/driver_req, nfp/core_next_hint or module:<id>'),
    expectSchema.partial(),
  ).optional(),
  /** Randomized soak instead of `traffic`: many worlds with random loss/reorder/duplication. */
  soak: soakSchema.optional(),
}).refine((s) => (s.traffic === undefined) !== (s.soak === undefined), { message: 'give exactly one of traffic or soak' });

export type Scenario = z.infer<typeof scenarioSchema>;
export type ScenarioInput = z.input<typeof scenarioSchema>;
export type Traffic = z.infer<typeof trafficSchema>;
export type SoakSpec = z.infer<typeof soakSchema>;

export type ProfileId = 'mlx5' | 'nfp/driver_req' | 'nfp/core_next_hint' | `module:${string}`;

export function profileId(d: DriverProfile): ProfileId {
  if (d.name === 'module') return `module:${d.id ?? d.path.replace(/^.*[\\/]/, '').replace(/\.[^.]*$/, '')}`;
  return d.name === 'mlx5' ? 'mlx5' : d.rxResyncType === 'core_next_hint' ? 'nfp/core_next_hint' : 'nfp/driver_req';
}

/** The tls_offload_sync_type a built-in profile's driver sets for RX; null for a module (what it sets is seen in the run). */
export function resyncTypeOf(d: DriverProfile): 'driver_req_async' | 'driver_req' | 'core_next_hint' | null {
  if (d.name === 'module') return null;
  return d.name === 'mlx5' ? 'driver_req_async' : d.rxResyncType;
}
