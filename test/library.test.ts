// tlsnic as a dependency: package.json's exports name the library build (scripts/bundles.mjs), plain ESM and
// declarations, so a driver or an ava test in JavaScript, or in TypeScript without a loader, can import it.
// Built here into a directory of its own and installed into a consumer project as npm would lay it out
// (node_modules/tlsnic with package.json, its dependencies beside it): plain node imports it by name and gets
// what the TypeScript sources give, and tsc type-checks a consumer against the declarations.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { TlsnicError } from '../index.ts';
import { formatRecovery, replayScenario, runScenario } from '../testbed/ava.ts';
import { mlx5Driver } from '../driver-api/drivers/index.ts';
import { buildLibrary, buildTypes } from '../scripts/bundles.mjs';

const run = promisify(execFile);
const ROOT = resolve('.');
const tmp = mkdtempSync(join(tmpdir(), 'tlsnic-library-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

// The package as installed: its package.json and dist/, its dependencies in the consumer's node_modules.
const pkg = join(tmp, 'consumer/node_modules/tlsnic');
const built = (async () => {
  mkdirSync(pkg, { recursive: true });
  writeFileSync(join(pkg, 'package.json'), readFileSync('package.json'));
  await buildLibrary(join(pkg, 'dist/lib'));
  buildTypes(join(pkg, 'dist/types'));
  for (const dep of ['zod', '@noble', 'pcap-parser', 'ava', '@types']) symlinkSync(join(ROOT, 'node_modules', dep), join(tmp, 'consumer/node_modules', dep));
})();

const SCENARIO = join(ROOT, 'fixtures/scenarios/loss-header.json');
const CAPTURE = join(ROOT, 'fixtures/captures/tls12-aes128-v4');
const REPLAY = { name: 'drop', impairments: [{ kind: 'drop', record: 3 }] };

test('every path package.json exports is one the build writes', async (t) => {
  await built;
  const exp = JSON.parse(readFileSync('package.json', 'utf8')).exports as Record<string, Record<string, string>>;
  t.deepEqual(Object.keys(exp), ['.', './testbed/ava']);
  for (const [name, conds] of Object.entries(exp)) {
    t.deepEqual(Object.keys(conds), ['types', 'import'], name);
    for (const p of Object.values(conds)) t.true(existsSync(join(pkg, p)), `${name}: ${p}`);
  }
});

test('plain node (no TypeScript loader) imports tlsnic and tlsnic/testbed/ava by name and gets what the sources give', async (t) => {
  await built;
  const script = join(tmp, 'consumer/use.mjs');
  writeFileSync(script, `
import { TlsnicError, mlx5Driver, Nic } from 'tlsnic';
import { runScenario, formatRecovery, replayScenario } from 'tlsnic/testbed/ava';
const [scenario, capture, replay] = process.argv.slice(2);
const r = runScenario(scenario);
let bad = null;
try { runScenario({ name: 'x', flows: 'many' }); } catch (e) { bad = { tlsnic: e instanceof TlsnicError, name: e.name, message: e.message }; }
const rr = await replayScenario({ capture: capture + '.pcap', keylog: capture + '.keylog', scenario: JSON.parse(replay), driver: mlx5Driver });
console.log(JSON.stringify({ nic: typeof Nic, recovery: formatRecovery(r), failures: r.failures, bad,
  replay: { failures: rr.scenario.failures, flows: rr.flows.map((f) => [f.rx.plaintextSha256, f.tx.wireMatch, f.rx.decrypted]) } }));
`);
  const { stdout } = await run(process.execPath, [script, SCENARIO, CAPTURE, JSON.stringify(REPLAY)], { cwd: join(tmp, 'consumer') });
  const got = JSON.parse(stdout);
  // The same from the TypeScript sources, in this process.
  const r = runScenario(SCENARIO);
  let bad: unknown = null;
  try {
    runScenario({ name: 'x', flows: 'many' } as never);
  } catch (e) {
    bad = { tlsnic: e instanceof TlsnicError, name: (e as Error).name, message: (e as Error).message };
  }
  const rr = await replayScenario({ capture: `${CAPTURE}.pcap`, keylog: `${CAPTURE}.keylog`, scenario: REPLAY, driver: mlx5Driver });
  t.deepEqual(got, {
    nic: 'function', recovery: formatRecovery(r), failures: r.failures, bad,
    replay: { failures: rr.scenario!.failures, flows: rr.flows.map((f) => [f.rx.plaintextSha256, f.tx.wireMatch, f.rx.decrypted]) },
  });
  // An error the testbed entry point throws is an instance of the class the main entry point exports.
  t.like(got.bad, { tlsnic: true });
  t.true(got.recovery.length > 0);
});

test('tsc type-checks a TypeScript consumer against the declarations: right uses pass, a wrong one is caught', async (t) => {
  await built;
  const dir = join(tmp, 'consumer');
  writeFileSync(join(dir, 'c.ts'), `
import { Nic, mlx5Driver, TlsnicError, type TlsDevOps } from 'tlsnic';
import { runScenario, assertRecovered, type ScenarioResult } from 'tlsnic/testbed/ava';
export const name: string = mlx5Driver.name;
export const run: (s: string) => ScenarioResult = (s) => runScenario(s);
export const classes = [Nic, TlsnicError, assertRecovered];
export type Ops = TlsDevOps;
export const wrong: number = mlx5Driver.name;
`);
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, types: ['node'], skipLibCheck: true },
    files: ['c.ts'],
  }));
  const r = await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', '.'], { cwd: dir }).then(() => ({ stdout: '' }), (e: { stdout: string }) => e);
  const errors = r.stdout.trim().split('\n').filter(Boolean);
  t.is(errors.length, 1, r.stdout);
  t.regex(errors[0]!, /^c\.ts\(8,14\): error TS2322: Type 'string' is not assignable to type 'number'\./);
});
