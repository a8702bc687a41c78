// --json and the table take each connection's report as it becomes final and keep them, past a bound, in an
// unnamed temporary file (cli/replay/report-spill.ts): what comes back must be every report once, in the order
// the connections came, equal to what went in, however many times it is read; the CLI's output must not
// change by where the reports were kept; a TMPDIR that cannot take them is a ConfigError naming it.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { replicateCapture } from '../bench/many-capture.ts';
import { ConfigError } from '../emulator/errors.ts';
import { CAPTURES_DIR, loadManifest } from '../fixtures/manifest.ts';
import type { FlowReport } from '../cli/replay/engine.ts';
import { ReportSpill } from '../cli/replay/report-spill.ts';
import { buildCli } from '../scripts/bundles.mjs';

const tmp = mkdtempSync(join(tmpdir(), 'tlsnic-spill-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

function report(i: number, problems: string[] = []): FlowReport {
  const dir = { mode: 'hw' as const, reason: null, plaintextBytes: i * 7, plaintextSha256: `${i}`.padStart(64, '0') };
  return {
    local: `10.0.${i >> 8}.${i & 0xff}:443`, remote: `192.0.2.9:${1024 + i}`, ...(i % 5 === 0 ? { tupleReuse: i % 3 } : {}),
    version: i % 2 ? '1.2' : '1.3', cipher: 'TLS_AES_128_GCM_SHA256',
    tx: { ...dir, wireMatch: true, segments: i, matched: i, mismatched: 0, dropped: 0, notSent: 0 },
    rx: { ...dir, mode: 'sw', reason: 'no key for this direction', segments: i + 1, decrypted: 0 },
    problems,
  };
}

// A deterministic shuffle (xorshift): reports are handed over as connections end, not as they came.
function shuffled(n: number, seed: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  let x = seed;
  for (let i = n - 1; i > 0; i--) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

for (const inMemory of [0, 7, 1 << 20]) {
  test(`reports come back in first-packet order, each once and equal, read twice (${inMemory} kept in memory)`, (t) => {
    const dir = mkdtempSync(join(tmp, 'dir-'));
    const spill = new ReportSpill(inMemory, dir);
    const n = 3000;
    // First packets far apart and out of order; a report of non-ASCII text, one larger than the write buffer
    // (256 KiB) and one larger than the read block (1 MiB).
    const order = shuffled(n, 0x9e3779b9);
    const want = new Map<number, FlowReport>();
    for (const i of order) {
      const problems = i === 17 ? ['RX: Ü€ — 😀 record 3'] : i === 600 ? ['x'.repeat(300_000)] : i === 2100 ? ['y'.repeat(1_500_000), 'z'] : [];
      const r = report(i, problems);
      want.set(i, r);
      spill.add(r, 10 * i + 3);
    }
    t.is(spill.length, n);
    t.is(spill.spilled, inMemory < n);
    // The file has no name from the start: nothing in its directory while it is in use.
    t.deepEqual(readdirSync(dir), []);
    for (let pass = 0; pass < 2; pass++) {
      let k = 0;
      for (const r of spill) {
        t.deepEqual(r, want.get(k), `report ${k}, pass ${pass}`);
        k++;
      }
      t.is(k, n);
    }
    spill.close();
    t.throws(() => [...spill], { instanceOf: ConfigError });
    t.throws(() => spill.add(report(1), 1), { instanceOf: ConfigError });
  });
}

test('a TMPDIR that cannot take the reports: a ConfigError naming it', (t) => {
  const spill = new ReportSpill(2, join(tmp, 'no', 'such', 'dir'));
  spill.add(report(1), 1);
  spill.add(report(2), 2);
  const e = t.throws(() => spill.add(report(3), 3), { instanceOf: ConfigError });
  t.regex(e!.message, /cannot write .*no\/such\/dir.*ENOENT/);
  t.is((e as ConfigError).where.field, 'TMPDIR');
});

const many = (() => {
  const m = loadManifest(join(CAPTURES_DIR, 'tls12-many-v4.json'));
  return { capture: join(m.dir, m.capture), keylog: join(m.dir, m.keylog) };
})();

function cli(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, ['--import=tsx', 'cli/main.ts', 'replay', ...args], {
    encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20,
  });
}

test('CLI: --json and the table are the same whether the reports stayed in memory or went to disk, one queue or two', (t) => {
  // 6 copies of the fixture: 84 connections, with 2 kept in memory the rest go to the file.
  const capture = join(tmp, 'many-x6.pcap');
  t.is(replicateCapture(capture, 6), 84);
  for (const format of [['--json'], []]) {
    const base = cli([capture, '--keylog', many.keylog, ...format]);
    t.is(base.status, 0, base.stderr);
    if (format.length) t.is((JSON.parse(base.stdout) as { flows: unknown[] }).flows.length, 84);
    for (const workers of ['1', '2']) {
      for (const inMemory of ['0', '2']) {
        const r = cli([capture, '--keylog', many.keylog, ...format, '--workers', workers], { TLSNIC_REPORTS_IN_MEMORY: inMemory });
        t.is(r.status, 0, r.stderr);
        t.is(r.stdout, base.stdout, `${format.join('') || 'table'}, --workers ${workers}, ${inMemory} in memory`);
      }
    }
  }
});

// The bundle: tsx itself needs a TMPDIR (its cache).
const bundled = buildCli(join(tmp, 'dist'));

test('CLI: reports that cannot go to TMPDIR, or a bad TLSNIC_REPORTS_IN_MEMORY: exit 2 naming it', async (t) => {
  await bundled;
  writeFileSync(join(tmp, 'a-file'), '');
  for (const workers of ['1', '2']) {
    const gone = spawnSync(process.execPath, [join(tmp, 'dist', 'tlsnic.mjs'), 'replay', many.capture, '--keylog', many.keylog, '--json', '--workers', workers], {
      encoding: 'utf8', env: { ...process.env, TLSNIC_REPORTS_IN_MEMORY: '3', TMPDIR: join(tmp, 'a-file', 'sub') },
    });
    t.is(gone.status, 2, `--workers ${workers}: ${gone.stderr}`);
    t.regex(gone.stderr, /^tlsnic: ConfigError: cannot write .*a-file\/sub\/tlsnic-reports-.*ENOTDIR/);
    t.is(gone.stdout, '');
  }
  const bad = cli([many.capture, '--keylog', many.keylog], { TLSNIC_REPORTS_IN_MEMORY: 'lots' });
  t.is(bad.status, 2);
  t.regex(bad.stderr, /TLSNIC_REPORTS_IN_MEMORY must be an integer/);
});
