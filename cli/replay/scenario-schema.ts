// The replay scenario file's schema (`tlsnic replay --scenario <file>`, scenario.ts runs it) and its loaders.
// Apart from scenario.ts so that a replay without a scenario never loads zod: the CLI and each replay worker
// thread start ~70-90 ms sooner (zod is ~60% of the CLI bundle). command.ts imports this module when
// --scenario is given; the library's ava helpers import it directly.
import { z } from 'zod';
import { MAX_TABLE_CAPACITY } from '../../emulator/nic/flow-table.ts';
import { loadWithSchema, validateWithSchema } from '../../testbed/load.ts';
import { ethtoolName, randomRates, rangeSchema, tlsStatName } from '../../testbed/schema.ts';

const uint = z.number().int().nonnegative();
const after = z.number().int().min(1).max(10_000);

/** Which received segment: the one holding record N's first header byte, or the nth segment of its body. */
const segmentTarget = {
  /**
   * Connection, 0-based, in the order the replay learns their ends (from the SYN, or a hello): the order the
   * report lists them, unless the capture holds packets of a connection before its handshake.
   */
  flow: uint.default(0),
  /** Record of the received stream, 0-based from the first record after the handshake (where kTLS RX starts). */
  record: uint,
  part: z.enum(['header', 'body']).default('header'),
  /** Body segments of the record (no byte of its header or the next one's), 0-based in capture order. */
  nth: uint.default(0),
  /** Which transmission of that segment in the capture: 0 = the first. */
  copy: uint.default(0),
};

export const replayImpairmentSchema = z.discriminatedUnion('kind', [
  /** Lost on the way; the sender's retransmission arrives after `after` later segments of the connection. */
  z.strictObject({ kind: z.literal('drop'), ...segmentTarget, after: after.default(3) }),
  /** Held back until `after` later segments of the connection have overtaken it. */
  z.strictObject({ kind: z.literal('reorder'), ...segmentTarget, after: after.default(1) }),
  /** Arrives now and again after `after` later segments (a spurious retransmission). */
  z.strictObject({ kind: z.literal('duplicate'), ...segmentTarget, after: after.default(1) }),
  /** A payload byte flipped with the TCP checksum left bad: no TLS processing, TCP drops it; retransmitted intact. */
  z.strictObject({ kind: z.literal('badChecksum'), ...segmentTarget, after: after.default(3) }),
  /** A ciphertext byte of the record flipped and the TCP checksum fixed: TLS must reject the record. */
  z.strictObject({ kind: z.literal('corruptCiphertext'), flow: uint.default(0), record: uint, byte: uint.default(0), copy: uint.default(0) }),
  /** The NIC's context table holds `capacity` entries (0: every tls_dev_add fails with -ENOSPC). */
  z.strictObject({ kind: z.literal('tableFull'), capacity: uint.max(MAX_TABLE_CAPACITY).default(0) }),
  /**
   * The local NIC's link goes down `atUs` after the capture's first packet, for `forUs`, with NETDEV_DOWN to the
   * stack (tls_device_down: offloaded sockets go on in software). What arrives meanwhile is lost and arrives
   * again once the link is back (the senders' retransmissions); what the host sends meanwhile is dropped.
   */
  z.strictObject({ kind: z.literal('linkDown'), atUs: uint, forUs: uint.default(3000), netdevDown: z.boolean().default(true) }),
  /** netem-like: each received data segment of every connection, in the first `untilFraction` of the capture. */
  z.strictObject({
    kind: z.literal('random'),
    ...randomRates,
    /** Later segments a reordered one waits for, and after which a lost one is retransmitted. */
    after: after.default(3),
  }),
]);
export type ReplayImpairment = z.infer<typeof replayImpairmentSchema>;

export const replayScenarioSchema = z.strictObject({
  name: z.string().min(1),
  description: z.string().optional(),
  /** Seeds the random impairments (the same seed, the same run). */
  seed: uint.max(0xffff_ffff).default(1),
  impairments: z.array(replayImpairmentSchema),
  expect: z.strictObject({
    /** Every loss of RX sync ends with the device decrypting again (CORE_NEXT_HINT: once it got a hint it could take). */
    recovered: z.boolean().default(true),
    /** Ranges for the local NIC's `ethtool -S` counters and the host's tls_stat. */
    counters: z.partialRecord(ethtoolName, rangeSchema).optional(),
    tlsStat: z.partialRecord(tlsStatName, rangeSchema).optional(),
  }).default({ recovered: true }),
});
export type ReplayScenario = z.infer<typeof replayScenarioSchema>;

export function loadReplayScenario(path: string): ReplayScenario {
  return loadWithSchema(replayScenarioSchema, path);
}

/** A replay scenario given as an object (from code): a ScenarioError names the field of every problem. */
export function validateReplayScenario(input: unknown, label = '<object>'): ReplayScenario {
  return validateWithSchema(replayScenarioSchema, input, label);
}
