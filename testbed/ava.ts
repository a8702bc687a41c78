// ava helpers: a resync test in a few lines.
//
//   import test from 'ava';
//   import { runScenario, assertRecovered } from 'tlsnic/testbed/ava';
//   test('lost header segment resyncs', (t) => assertRecovered(t, runScenario('fixtures/scenarios/loss-header.json')));
//
// runScenario takes a scenario file path, or a scenario object (validated with the same schema; errors name
// the field path). The result exposes counters, the driver call log and per-flow state per driver profile.
// Your own driver is a `{ name: 'module', path }` profile: pass the module in `drivers` (keyed by path), or
// let runScenarioWithModules load the paths a scenario file names:
//
//   test('my driver resyncs', (t) => assertRecovered(t, runScenario(
//     { ...scenario, driver: { name: 'module', path: 'mine' } }, { drivers: { mine: myDriver } })));
//
// With a real capture instead of the two-host world (`tlsnic replay --scenario`), for a driver of your own:
//
//   test('my driver resyncs on a real capture', async (t) => assertScenarioHolds(t, await replayScenario({
//     capture: 'c.pcap', keylog: 'c.keylog', local: '10.0.0.2', driver: 'my-driver.mjs',
//     scenario: { name: 'drop', impairments: [{ kind: 'drop', record: 3 }] },
//   })));
import type { ExecutionContext } from 'ava';
import { parseLocal } from '../cli/replay/command.ts';
import { replay, type ReplayResult } from '../cli/replay/engine.ts';
import { loadReplayScenario, validateReplayScenario } from '../cli/replay/scenario-schema.ts';
import { loadDriver, type DriverModule } from '../driver-api/drivers/index.ts';
import { loadScenarioFile, validateScenario } from './load.ts';
import { dirname } from 'node:path';
import { loadScenarioDrivers, runScenarioObject, type ProfileRun, type RunOptions, type ScenarioResult } from './runner.ts';
import type { ScenarioInput } from './schema.ts';

export type { ScenarioResult, ProfileRun, RunOptions } from './runner.ts';

export function runScenario(input: string | ScenarioInput, o: RunOptions = {}): ScenarioResult {
  const s = typeof input === 'string' ? loadScenarioFile(input) : validateScenario(input);
  return runScenarioObject(s, o);
}

/**
 * runScenario for scenarios that name driver modules (`{ name: 'module', path }`): loads them first, from
 * paths relative to the scenario file (or to `baseDir`, default the working directory, for an object).
 * Modules given in `o.drivers` are used as they are.
 */
export async function runScenarioWithModules(input: string | ScenarioInput, o: RunOptions & { baseDir?: string } = {}): Promise<ScenarioResult> {
  const s = typeof input === 'string' ? loadScenarioFile(input) : validateScenario(input);
  const { baseDir, ...rest } = o;
  const loaded = await loadScenarioDrivers(s, typeof input === 'string' ? dirname(input) : baseDir ?? '.');
  return runScenarioObject(s, { ...rest, drivers: { ...loaded, ...o.drivers } });
}

/** Recovery distances of one run: count, min, median, p95, max (records). */
export type RecoveryStats = { episodes: number; min: number; median: number; p95: number; max: number };

export function recoveryStats(d: readonly number[]): RecoveryStats | null {
  if (d.length === 0) return null;
  const s = [...d].sort((x, y) => x - y);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { episodes: s.length, min: s[0]!, median: q(0.5), p95: q(0.95), max: s[s.length - 1]! };
}

/** One line per profile: "mlx5 (driver_req_async): 3 resyncs, recovery records min 4 median 5 p95 9 max 9". */
export function formatRecovery(r: ScenarioResult): string[] {
  return r.runs.map((run: ProfileRun) => {
    const st = recoveryStats(run.recovery);
    const head = `${run.profile} (${run.resyncType}), ${run.flowCount} flow${run.flowCount === 1 ? '' : 's'}`;
    const excused = run.unrecoveredNotOwed ? ` (${run.unrecoveredNotOwed} not owed: no unimpaired stretch after them long enough to scan back in, or no hint the device could take)` : '';
    const never = run.unrecovered ? `, ${run.unrecovered} loss(es) of sync never recovered${excused}` : '';
    return st
      ? `${head}: ${st.episodes} resyncs, recovery records min ${st.min} median ${st.median} p95 ${st.p95} max ${st.max}${never}`
      : `${head}: ${never ? never.slice(2) : 'no loss of sync'}`;
  });
}

/**
 * The scenario's expectations hold for every driver profile: with the defaults that is every byte read exactly
 * once and in order, no record with a bad tag accepted, and every loss of RX sync followed by the device
 * decrypting again (also after the last impairment). Logs the recovery distance per profile.
 */
export function assertRecovered(t: ExecutionContext, r: ScenarioResult): void {
  for (const line of formatRecovery(r)) t.log(line);
  t.true(r.runs.length > 0, 'the scenario ran');
  t.deepEqual(r.failures, [], `${r.name}: expectations`);
}

export type ReplayScenarioOptions = {
  capture: string;
  keylog: string;
  /** A replay scenario file, or the object (validated: errors name the field). */
  scenario: string | object;
  /** The local host as `ip[:port]` (default: the side that accepted each connection). */
  local?: string;
  /** 'mlx5', 'nfp', a driver module path, or the module itself (default mlx5). */
  driver?: string | DriverModule;
  tls13?: boolean;
};

/** `tlsnic replay --scenario` as a function: the result's `scenario` says what the impairments did and what failed. */
export async function replayScenario(o: ReplayScenarioOptions): Promise<ReplayResult> {
  const scenario = typeof o.scenario === 'string' ? loadReplayScenario(o.scenario) : validateReplayScenario(o.scenario);
  const driver = typeof o.driver === 'object' ? o.driver : await loadDriver(o.driver ?? 'mlx5');
  return replay({
    capture: o.capture, keylog: o.keylog, local: o.local ? parseLocal(o.local) : null, driver, tls13: o.tls13 ?? false, scenario,
  });
}

/** Logs what each impairment did and each connection's losses of sync, then asserts every expectation held. */
export function assertScenarioHolds(t: ExecutionContext, r: ReplayResult): void {
  const s = r.scenario;
  if (!s) {
    t.fail('the replay ran without a scenario');
    return;
  }
  for (const f of s.flows) {
    const back = f.episodes.filter((e) => e.recoveredSeq !== null).length;
    t.log(`flow ${f.flow} (${f.resyncType ?? 'no RX offload'}): ${f.rxRecords} records, lost sync ${f.episodes.length}x, decrypting again after ${back}`);
  }
  t.true(s.flows.length > 0, 'the capture had connections to replay');
  t.deepEqual(s.failures, [], `${s.name}: expectations`);
}
