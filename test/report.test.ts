// The CLI writes its report in pieces (a connection at a time), so that a capture of many connections never
// has its whole report as one object or string: the pieces must make exactly what JSON.stringify makes of
// the report object (`--json` is a stable interface), with connections, with none, and under a scenario.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { replicateCapture } from '../bench/many-capture.ts';
import { mlx5Driver } from '../driver-api/drivers/index.ts';
import { CAPTURES_DIR, loadManifest } from '../fixtures/manifest.ts';
import { replay } from '../cli/replay/engine.ts';
import { replayScenarioSchema } from '../cli/replay/scenario-schema.ts';
import { jsonPieces, textPieces, toJson } from '../cli/report.ts';

const fixture = (name: string) => {
  const m = loadManifest(join(CAPTURES_DIR, `${name}.json`));
  return { capture: join(m.dir, m.capture), keylog: join(m.dir, m.keylog) };
};

const cases = {
  'many connections': { ...fixture('tls12-many-v4'), local: null, flows: 14 },
  'no connection (--local names no end)': { ...fixture('tls12-aes128-v4'), local: { ip: '192.0.2.1', port: null }, flows: 0 },
  'a scenario': {
    ...fixture('tls12-aes128-v4'), local: null, flows: 1,
    scenario: replayScenarioSchema.parse({ name: 'drops', seed: 3, impairments: [{ kind: 'drop', flow: 0, record: 2 }, { kind: 'random', loss: 0.05 }] }),
  },
};

for (const [name, c] of Object.entries(cases)) {
  test(`--json in pieces is JSON.stringify of the report: ${name}`, async (t) => {
    const { flows: _, ...opts } = c;
    const r = await replay({ ...opts, driver: mlx5Driver, tls13: false });
    t.is(r.flows.length, c.flows);
    t.is(r.scenario !== undefined, name === 'a scenario');
    const pieces = [...jsonPieces(r)];
    t.true(pieces.length >= r.flows.length + 2);
    t.is(pieces.join(''), JSON.stringify(toJson(r), null, 2) + '\n');
    const text = [...textPieces(r, 'mlx5')].join('');
    t.true(text.endsWith('\n') && !text.endsWith('\n\n'));
    // One table row per connection, numbered, whatever the rows' widths.
    r.flows.forEach((f, i) => t.regex(text, new RegExp(`^${i + 1} +${f.local.replaceAll('.', '\\.')} +`, 'm')));
  });
}

// The CLI's stdout: a reader that goes away takes what it read (exit as usual, nothing on stderr); a failing
// stdout is the ConfigError naming it (exit 2), not a crash from an unhandled 'error' event.
const tmp = mkdtempSync(join(tmpdir(), 'tlsnic-report-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

test('CLI: a report larger than a pipe holds, read in part (| head): exit 0, nothing on stderr', async (t) => {
  // 20 copies of the fixture: 280 connections, a --json report of ~200 KB (a pipe holds 64 KB).
  const capture = join(tmp, 'many-x20.pcap');
  t.is(replicateCapture(capture, 20), 280);
  const child = spawn(process.execPath, ['--import=tsx', 'cli/main.ts', 'replay', capture, '--keylog', fixture('tls12-many-v4').keylog, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  let got = 0;
  child.stdout.once('data', (d: Buffer) => {
    got = d.length;
    child.stdout.destroy();
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  t.true(got > 0);
  t.is(stderr, '');
  t.is(code, 0);
});

// --json-lines with --workers writes each line from the main thread as a queue's report comes in: a failing
// write there ends the run the same way (it was an uncaught exception in the worker's message handler).
for (const flags of [['--json'], ['--json-lines', '--workers', '2']]) {
  test(`CLI: stdout that cannot be written (/dev/full), ${flags.join(' ')}: exit 2 and a ConfigError naming stdout`, (t) => {
    const f = fixture(flags.length > 1 ? 'tls12-many-v4' : 'tls12-aes128-v4');
    const full = openSync('/dev/full', 'w');
    try {
      const r = spawnSync(process.execPath, ['--import=tsx', 'cli/main.ts', 'replay', f.capture, '--keylog', f.keylog, ...flags], { stdio: ['ignore', full, 'pipe'], encoding: 'utf8' });
      t.is(r.status, 2);
      t.regex(r.stderr, /^tlsnic: ConfigError: cannot write stdout: ENOSPC/);
    } finally {
      closeSync(full);
    }
  });
}
