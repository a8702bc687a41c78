// Your own driver in the two-host testbed: a `{ name: 'module', path }` profile runs any DriverModule, from
// code (RunOptions.drivers) or from a file `tlsnic run` loads (path relative to the scenario). The resync
// type the checks use is the one the driver set, and a driver that never passes the stack's answer on to
// its device fails the recovery expectation.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { nfpDriver, type DriverModule } from '../driver-api/drivers/index.ts';
import { ConfigError } from '../emulator/errors.ts';
import { ScenarioError } from '../testbed/load.ts';
import { runScenario, runScenarioWithModules } from '../testbed/ava.ts';
import type { ScenarioInput } from '../testbed/schema.ts';

const run = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), 'tlsnic-module-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

/** fixtures/scenarios/loss-header.json with one driver profile instead of the three built-in ones. */
function lossHeader(driver: object, extra: object = {}): ScenarioInput {
  const s = JSON.parse(readFileSync('fixtures/scenarios/loss-header.json', 'utf8')) as Record<string, unknown>;
  return { ...s, driver, expectByProfile: undefined, ...extra } as ScenarioInput;
}

/** nfp with CORE_NEXT_HINT, under a name of its own: a "third-party" driver. */
const hinted: DriverModule = { name: 'hinted', probe: (nic, kernel, opts) => nfpDriver.probe(nic, kernel, { ...opts, rxResyncType: 'core_next_hint' }) };

/** nfp whose tls_dev_resync(RX) says 0 and never tells the device: the device stays lost. */
const deaf: DriverModule = {
  name: 'deaf',
  probe(nic, kernel, opts) {
    const dev = nfpDriver.probe(nic, kernel, opts);
    return { ...dev, tlsdevOps: { ...dev.tlsdevOps!, tlsDevResync: (netdev, sk, seq, rcdSn, dir) => (dir === 'rx' ? 0 : dev.tlsdevOps!.tlsDevResync(netdev, sk, seq, rcdSn, dir)) } };
  },
};

test('a module profile runs the module from RunOptions.drivers; the resync type is the one it set', (t) => {
  const r = runScenario(lossHeader({ name: 'module', path: 'drivers/hinted.mjs', options: { note: 'knobs reach probe()' } }), { drivers: { 'drivers/hinted.mjs': hinted } });
  t.deepEqual(r.failures, []);
  const run = r.runs[0]!;
  t.is(run.profile, 'module:hinted');
  t.is(run.resyncType, 'core_next_hint');
  t.is(run.recovery.length, 1, 'one loss of sync, recovered');
  t.true(run.hosts.b.calls.some((c) => c.startsWith('resync rx')), run.hosts.b.calls.join(', '));
});

test('a module whose tls_dev_resync(RX) never reaches the device fails the recovery expectation', (t) => {
  const r = runScenario(lossHeader({ name: 'module', path: 'deaf.mjs', id: 'deaf' }), { drivers: { 'deaf.mjs': deaf } });
  t.false(r.ok);
  t.is(r.runs[0]!.resyncType, 'driver_req');
  t.true(r.failures.some((f) => /^module:deaf: flow 0 a>b: device lost RX sync at record \d+ and never decrypted again/.test(f)), r.failures.join('\n'));
  // The bytes still arrive (software decrypts what the device does not): delivery is not what failed.
  t.false(r.failures.some((f) => /delivery/.test(f)), r.failures.join('\n'));
});

test('a loss too near the end of the stream for a scan to come back is not held against the device, even a deaf one', (t) => {
  // 40 records of 16 KiB: the header of record 38 lost. A scanning device skips one maximum record, then
  // chains headers: the two records left are not enough, whatever the driver does.
  const late = (driver: object) => lossHeader(driver, { impairments: [{ kind: 'drop', record: 38, part: 'header' }], expect: { recovered: true } });
  const r = runScenario(late({ name: 'module', path: 'deaf.mjs', id: 'deaf' }), { drivers: { 'deaf.mjs': deaf } });
  t.deepEqual(r.failures, []);
  const f = r.runs[0]!.flows[0]!;
  t.is(f.episodes.length, 1);
  t.is(f.episodes[0]!.recoveredRecord, null);
  t.true(f.episodes[0]!.receivedAfter > 0 && f.episodes[0]!.receivedAfter <= f.scanReach, `${f.episodes[0]!.receivedAfter} past the loss, reach ${f.scanReach}`);
  // The loss at record 10 of the test above leaves the room: there the deaf driver fails (and mlx5 recovers).
  t.true(f.scanReach < 10 * 16384, `reach ${f.scanReach}: a few records`);
});

test('expectByProfile takes module:<id>; a key that names no profile is refused with its place', (t) => {
  const r = runScenario(lossHeader({ name: 'module', path: 'x/hinted.ts' }, { expectByProfile: { 'module:hinted': { resyncEpisodes: 5 } } }), { drivers: { 'x/hinted.ts': hinted } });
  t.deepEqual(r.failures, ['module:hinted: loss-of-sync episodes: 1, expected 5']);
  t.throws(() => runScenario(lossHeader({ name: 'mlx5' }, { expectByProfile: { mlx6: {} } })), { instanceOf: ScenarioError, message: /expectByProfile/ });
  t.throws(() => runScenario(lossHeader({ name: 'module', path: 'not-loaded.mjs' })), { instanceOf: ConfigError, message: /not-loaded\.mjs was not loaded/ });
});

test('tlsnic run loads the module from a path relative to the scenario file; a missing one is exit 2', async (t) => {
  const drv = join(tmp, 'my-driver.ts');
  writeFileSync(drv, `import { nfpDriver } from ${JSON.stringify(pathToFileURL(resolve('driver-api/drivers/index.ts')).href)};
export default { name: 'mine', probe: (nic, kernel, opts) => nfpDriver.probe(nic, kernel, { ...opts, rxResyncType: 'core_next_hint' }) };
`);
  const file = join(tmp, 'mine.json');
  writeFileSync(file, JSON.stringify(lossHeader({ name: 'module', path: './my-driver.ts' })));
  const ok = await run(process.execPath, ['--import=tsx', 'cli/main.ts', 'run', file], { encoding: 'utf8' });
  t.regex(ok.stdout, /^scenario loss-header: expectations hold\n  module:my-driver \(core_next_hint\), 1 flow: 1 resyncs/);
  const viaHelper = await runScenarioWithModules(file);
  t.deepEqual(viaHelper.failures, []);
  writeFileSync(file, JSON.stringify(lossHeader({ name: 'module', path: './missing.mjs' })));
  const bad = await run(process.execPath, ['--import=tsx', 'cli/main.ts', 'run', file], { encoding: 'utf8' }).catch((e: { code: number; stderr: string }) => e);
  t.is((bad as { code: number }).code, 2);
  t.regex((bad as { stderr: string }).stderr, /tlsnic: ConfigError: cannot load driver module/);
});

test('a soak with faults runs a module profile too: the fault wrapper wraps it, every byte exact', (t) => {
  const s = JSON.parse(readFileSync('fixtures/scenarios/soak-faults.json', 'utf8')) as Record<string, unknown>;
  const r = runScenario({ ...s, driver: { name: 'module', path: 'hinted.mjs' }, expectByProfile: undefined } as ScenarioInput, {
    drivers: { 'hinted.mjs': hinted }, soakFlows: 24,
  });
  t.deepEqual(r.failures, []);
  const run = r.runs[0]!;
  t.is(run.profile, 'module:hinted');
  t.is(run.resyncType, 'core_next_hint');
  t.is(run.flowCount, 24);
  t.true(run.faultedWorlds > 0, `${run.faultedWorlds} worlds with faults`);
});

test('tlsnic run --driver runs any scenario file with one driver instead of its profiles', async (t) => {
  const drv = join(tmp, 'flag-driver.ts');
  writeFileSync(drv, `import { nfpDriver } from ${JSON.stringify(pathToFileURL(resolve('driver-api/drivers/index.ts')).href)};
export default { name: 'flagged', probe: (nic, kernel, opts) => nfpDriver.probe(nic, kernel, { ...opts, rxResyncType: 'core_next_hint' }) };
`);
  const cli = (...args: string[]) => run(process.execPath, ['--import=tsx', 'cli/main.ts', 'run', 'fixtures/scenarios/loss-header.json', ...args], { encoding: 'utf8' });
  const mine = await cli('--driver', drv);
  t.regex(mine.stdout, /^scenario loss-header: expectations hold\n  module:flag-driver \(core_next_hint\), 1 flow: 1 resyncs/);
  t.notRegex(mine.stdout, /mlx5|nfp\//, 'the file\'s three profiles are not run');
  const nfp = await cli('--driver=nfp', '--json');
  t.deepEqual((JSON.parse(nfp.stdout) as { runs: Array<{ profile: string }> }).runs.map((r) => r.profile), ['nfp/driver_req']);
  const bad = await cli('--driver').catch((e: { code: number; stderr: string }) => e);
  t.is((bad as { code: number }).code, 2);
  t.regex((bad as { stderr: string }).stderr, /--driver needs a value/);
});
