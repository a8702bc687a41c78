// The CLI as shipped (scripts/bundles.mjs): what the bundling leaves out must not change what a user sees.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildCli } from '../scripts/bundles.mjs';

const FIX = 'fixtures/captures/tls12-aes128-v4';
const tmp = mkdtempSync(join(tmpdir(), 'tlsnic-cli-bundle-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));
const bundled = buildCli(tmp);

function run(argv: string[]) {
  const r = spawnSync(process.execPath, argv, { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('the bundles carry zod\'s English messages alone, and a scenario error reads as from source', async (t) => {
  await bundled;
  for (const file of ['tlsnic.mjs', 'tlsnic-replay-worker.mjs']) {
    const text = readFileSync(join(tmp, file), 'utf8');
    t.true(text.includes('Too small: expected'), `${file}: English messages`);
    // de.js and fr.js of zod's locales
    t.false(text.includes('Ungültige Eingabe'), `${file}: no German locale`);
    t.false(text.includes('Entrée invalide'), `${file}: no French locale`);
  }
  const bad = join(tmp, 'bad-scenario.json');
  writeFileSync(bad, '{"name":"x","impairments":[{"kind":"drop","flow":-1}]}');
  const args = ['replay', `${FIX}.pcap`, '--keylog', `${FIX}.keylog`, '--scenario', bad];
  const b = run([join(tmp, 'tlsnic.mjs'), ...args]);
  const s = run(['--import=tsx', 'cli/main.ts', ...args]);
  t.is(b.code, 2);
  t.regex(b.err, /ScenarioError: .*impairments\[0\]\.flow: Too small: expected number to be >=0/);
  t.is(b.err, s.err);
});
