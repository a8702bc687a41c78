// The CLI as shipped (scripts/bundles.mjs): what the bundling leaves out or loads late must not change what a
// user sees, and a replay without a scenario must not load zod (cli/replay/scenario-schema.ts says why).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildCli } from '../scripts/bundles.mjs';

const FIX = 'fixtures/captures/tls12-aes128-v4';
const tmp = mkdtempSync(join(tmpdir(), 'tlsnic-cli-bundle-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));
const dist = join(tmp, 'dist');
const bundled = buildCli(dist);

// Node's module hooks report every file of the bundle a run loads, on stderr. The hooks run on a thread of
// their own, where process.stderr writes asynchronously: a run that exits at once (a bad scenario, exit 2)
// could end before the line was written, which a loaded machine showed. writeSync is done before the hook
// returns, so before the module it names runs.
const hooks = join(tmp, 'hooks.mjs');
writeFileSync(hooks, `import { writeSync } from 'node:fs';\nexport async function load(url, ctx, next) {\n  if (url.startsWith(${JSON.stringify(pathToFileURL(dist).href)})) writeSync(2, 'LOADED ' + url.slice(url.lastIndexOf('/') + 1) + '\\n');\n  return next(url, ctx);\n}\n`);
const register = join(tmp, 'register.mjs');
writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);

function run(argv: string[]) {
  const r = spawnSync(process.execPath, argv, { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status, out: r.stdout, err: r.stderr, loaded: [...r.stderr.matchAll(/^LOADED (.*)$/gm)].map((m) => m[1]!) };
}

/** The bundle's files holding zod (its English messages). */
function zodFiles(): string[] {
  return readdirSync(dist).filter((f) => f.endsWith('.mjs') && readFileSync(join(dist, f), 'utf8').includes('Too small: expected'));
}

test('zod comes in one chunk of English messages, loaded by a scenario and not by a plain replay', async (t) => {
  await bundled;
  const zod = zodFiles();
  t.is(zod.length, 1, zod.join(', '));
  t.not(zod[0], 'tlsnic.mjs');
  t.not(zod[0], 'tlsnic-replay-worker.mjs');
  const all = readdirSync(dist).filter((f) => f.endsWith('.mjs')).map((f) => readFileSync(join(dist, f), 'utf8')).join('\n');
  // de.js and fr.js of zod's locales
  t.false(all.includes('Ungültige Eingabe'));
  t.false(all.includes('Entrée invalide'));

  const base = ['--import', register, join(dist, 'tlsnic.mjs'), 'replay', `${FIX}.pcap`, '--keylog', `${FIX}.keylog`];
  const plain = run([...base, '--json']);
  t.is(plain.code, 0, plain.err);
  t.true(plain.loaded.includes('tlsnic.mjs'), plain.err);
  t.false(plain.loaded.includes(zod[0]!), plain.loaded.join(', '));
  const two = run([...base, '--json', '--workers', '2']);
  t.is(two.code, 0, two.err);
  t.false(two.loaded.includes(zod[0]!), two.loaded.join(', '));
  t.is(two.out, plain.out);

  const bad = join(tmp, 'bad-scenario.json');
  writeFileSync(bad, '{"name":"x","impairments":[{"kind":"drop","flow":-1}]}');
  const withScenario = run([...base, '--scenario', bad]);
  t.true(withScenario.loaded.includes(zod[0]!), withScenario.loaded.join(', '));
  t.is(withScenario.code, 2);
  t.regex(withScenario.err, /ScenarioError: .*impairments\[0\]\.flow: Too small: expected number to be >=0/);
  // The same error from source.
  const s = spawnSync(process.execPath, ['--import=tsx', 'cli/main.ts', 'replay', `${FIX}.pcap`, '--keylog', `${FIX}.keylog`, '--scenario', bad], { encoding: 'utf8' });
  t.is(withScenario.err.replace(/^LOADED .*\n/gm, ''), s.stderr);
});

test('the bundle\'s `run` loads its chunks and runs a testbed scenario', async (t) => {
  await bundled;
  const r = run([join(dist, 'tlsnic.mjs'), 'run', 'fixtures/scenarios/loss-header.json']);
  t.is(r.code, 0, r.err);
  t.regex(r.out, /bytes exact/);
});
