// `tlsnic replay --workers N`: connections spread over N RSS queues, one worker thread each, and the merged
// result is the single-thread result: for every fixture capture the --json and text output are equal at
// N = 2 and 3; from source (tsx) and from the esbuild bundle; options that need one thread are refused
// with a ConfigError; a worker that throws gives the single-thread error and exit code, and no hang.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { buildCli } from '../scripts/bundles.mjs';
import { mlx5Driver } from '../driver-api/drivers/index.ts';
import { ConfigError } from '../emulator/errors.ts';
import { parseArgs, type ReplayArgs } from '../cli/args.ts';
import { replay, type ReplayResult } from '../cli/replay/engine.ts';
import { mergeQueueResults, replayParallel } from '../cli/replay/parallel.ts';
import { replayQueue, type QueueJob } from '../cli/replay/worker.ts';
import { toJson, toText } from '../cli/report.ts';

const run = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), 'tlsnic-workers-'));
const CAPTURES = 'fixtures/captures';
const fixtures = readdirSync(CAPTURES).filter((f) => /\.pcap(ng)?$/.test(f)).sort();
const MANY = `${CAPTURES}/tls12-many-v4`;
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

const keylogOf = (capture: string) => `${CAPTURES}/${basename(capture).replace(/\.pcap(ng)?$/, '')}.keylog`;
const tls13Of = (capture: string) => capture.startsWith('tls13');

function single(capture: string, tls13: boolean, local: QueueJob['local'] = null): Promise<ReplayResult> {
  return replay({ capture: `${CAPTURES}/${capture}`, keylog: keylogOf(capture), local, driver: mlx5Driver, tls13 });
}

function parallel(capture: string, tls13: boolean, workers: number, local: QueueJob['local'] = null): Promise<ReplayResult> {
  return replayParallel({ capture: `${CAPTURES}/${capture}`, keylog: keylogOf(capture), local, driver: 'mlx5', tls13, plaintextDir: null, workers });
}

test('the fixture set is the one this test was written against (a new capture is covered automatically)', (t) => {
  t.true(fixtures.length >= 8, fixtures.join(', '));
  t.true(fixtures.some((f) => f.endsWith('.pcapng')));
});

for (const capture of fixtures) {
  for (const workers of [2, 3]) {
    test.serial(`${capture}: --workers ${workers} gives the single-thread --json and text output`, async (t) => {
      const tls13 = tls13Of(capture);
      const [one, many] = await Promise.all([single(capture, tls13), parallel(capture, tls13, workers)]);
      t.true(one.flows.length > 0);
      t.deepEqual(toJson(many), toJson(one));
      t.is(JSON.stringify(toJson(many), null, 2), JSON.stringify(toJson(one), null, 2), 'key order too');
      t.is(toText(many, 'mlx5'), toText(one, 'mlx5'));
    });
  }
}

test.serial('--local picks the client side: flows the filter ignores stay ignored with workers too', async (t) => {
  const local = { ip: '10.77.0.2', port: null };
  const [one, many] = await Promise.all([single('tls12-many-v4.pcap', false, local), parallel('tls12-many-v4.pcap', false, 2, local)]);
  t.true(one.flows.length > 0 && one.flows.every((f) => f.local.startsWith('10.77.0.2:')), one.flows.map((f) => f.local).join(' '));
  t.deepEqual(toJson(many), toJson(one));
});

test.serial('tls12-many-v4 over 2 queues: both queues own connections, disjointly, and the merge interleaves them', async (t) => {
  const job = (queue: number): QueueJob => ({
    capture: `${MANY}.pcap`, keylog: `${MANY}.keylog`, local: null, driver: 'mlx5', tls13: false, queue, queues: 2, plaintextDir: null, progress: false,
  });
  const parts = [await replayQueue(job(0)), await replayQueue(job(1))];
  const one = await single('tls12-many-v4.pcap', false);
  t.true(parts[0]!.flows.length > 0 && parts[1]!.flows.length > 0, `${parts[0]!.flows.length} + ${parts[1]!.flows.length}`);
  t.is(parts[0]!.flows.length + parts[1]!.flows.length, one.flows.length);
  const locals = parts.map((p) => new Set(p.flows.map((f) => `${f.report.local}|${f.report.remote}`)));
  for (const k of locals[0]!) t.false(locals[1]!.has(k), `${k} on both queues`);
  // Queue of each flow in single-thread order: not all of queue 0 first (else the merge order is untested).
  const queueOrder = one.flows.map((f) => (locals[0]!.has(`${f.local}|${f.remote}`) ? 0 : 1));
  t.notDeepEqual(queueOrder, [...queueOrder].sort(), queueOrder.join(''));
  // Counters summed like per-ring statistics: each queue's share is real, the sum is the whole.
  t.true(parts.every((p) => p.ethtool.rx_tls_decrypted_packets! > 0));
  t.deepEqual(toJson(mergeQueueResults(`${MANY}.pcap`, parts)), toJson(one));
  // Reversed part order merges the same.
  t.deepEqual(toJson(mergeQueueResults(`${MANY}.pcap`, [parts[1]!, parts[0]!])), toJson(one));
});

// ---- the command line, from source and from the bundle ----

const BUNDLE_DIR = join(tmp, 'dist');
// Both bundles as scripts/build.mjs makes them, into a private directory (other tests may rebuild dist/).
const bundled = buildCli(BUNDLE_DIR);

async function cli(entry: 'source' | 'bundle', ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  if (entry === 'bundle') await bundled;
  const argv = entry === 'source' ? ['--import=tsx', 'cli/main.ts', ...args] : [join(BUNDLE_DIR, 'tlsnic.mjs'), ...args];
  try {
    const r = await run(process.execPath, argv, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 60_000 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string; killed?: boolean };
    if (x.killed) throw new Error(`tlsnic ${args.join(' ')} hung (killed after 60 s)`);
    return { code: x.code ?? -1, out: x.stdout ?? '', err: x.stderr ?? '' };
  }
}

for (const entry of ['source', 'bundle'] as const) {
  test(`${entry}: tlsnic replay --workers 2 prints what one thread prints (--json and text), exit 0`, async (t) => {
    const base = ['replay', `${MANY}.pcap`, '--keylog', `${MANY}.keylog`];
    const [j1, j2, x1, x2] = await Promise.all([
      cli(entry, ...base, '--json'), cli(entry, ...base, '--json', '--workers', '2'),
      cli(entry, ...base), cli(entry, ...base, '--workers=2'),
    ]);
    for (const r of [j1, j2, x1, x2]) t.is(r.code, 0, r.err);
    t.is(j2.out, j1.out);
    t.is(x2.out, x1.out);
    t.is(JSON.parse(j2.out).flows.length, 14);
  });
}

test('--workers 2 runs its queues in the node it was started in (no second node), same report as one queue', async (t) => {
  await bundled;
  // A hook every node of the run would load (flags pass on to a re-run): its main thread reports its flags.
  const hook = join(tmp, 'argv-hook.mjs');
  writeFileSync(hook, "import { isMainThread } from 'node:worker_threads';\nif (isMainThread) process.on('exit', () => process.stderr.write(`ARGV ${JSON.stringify(process.execArgv)}\\n`));\n");
  const argvOf = async (workers: string) => {
    const r = await run(process.execPath, [`--import=${hook}`, join(BUNDLE_DIR, 'tlsnic.mjs'), 'replay', `${MANY}.pcap`, '--keylog', `${MANY}.keylog`, '--json', '--workers', workers], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 60_000 });
    return { out: r.stdout, nodes: [...r.stderr.matchAll(/^ARGV (.*)$/gm)].map((m) => JSON.parse(m[1]!) as string[]) };
  };
  const one = await argvOf('1');
  t.is(one.nodes.length, 1);
  const two = await argvOf('2');
  t.is(two.nodes.length, 1, JSON.stringify(two.nodes));
  t.deepEqual(two.nodes[0], one.nodes[0]);
  t.is(two.out, one.out);
});

test('--plaintext-dir with --workers 3: each worker writes its flows, the files equal the single-thread ones', async (t) => {
  const d1 = join(tmp, 'pt1');
  const d3 = join(tmp, 'pt3');
  const base = ['replay', `${MANY}.pcap`, '--keylog', `${MANY}.keylog`];
  const [a, b] = await Promise.all([cli('source', ...base, '--plaintext-dir', d1), cli('source', ...base, '--plaintext-dir', d3, '--workers', '3')]);
  t.is(a.code, 0, a.err);
  t.is(b.code, 0, b.err);
  const names = readdirSync(d1).sort();
  t.is(names.length, 28);
  t.deepEqual(readdirSync(d3).sort(), names);
  for (const n of names) t.true(readFileSync(join(d3, n)).equals(readFileSync(join(d1, n))), n);
});

test('--out with --workers 2 to a path it cannot write: ConfigError naming the option, exit 2, before the replay', async (t) => {
  const base = ['replay', `${MANY}.pcap`, '--keylog', `${MANY}.keylog`, '--workers', '2'];
  const out = await cli('source', ...base, '--out', join(tmp, 'no', 'such', 'o.pcapng'));
  t.is(out.code, 2);
  t.regex(out.err, /ConfigError: cannot write .*o\.pcapng: ENOENT.*field --out/);
  t.is(out.out, '');
});

for (const entry of ['source', 'bundle'] as const) {
  test(`${entry}: --out with --workers 3 writes the file one thread writes, byte for byte`, async (t) => {
    const base = ['replay', `${MANY}.pcap`, '--keylog', `${MANY}.keylog`];
    const [one, three] = [join(tmp, `o1-${entry}.pcapng`), join(tmp, `o3-${entry}.pcapng`)];
    const [a, b] = await Promise.all([cli(entry, ...base, '--out', one), cli(entry, ...base, '--out', three, '--workers', '3')]);
    t.is(a.code, 0, a.err);
    t.is(b.code, 0, b.err);
    const file = readFileSync(one);
    t.true(file.length > 100_000);
    t.true(readFileSync(three).equals(file));
  });
}

for (const entry of ['source', 'bundle'] as const) {
  test(`${entry}: --timeline with --workers 3 draws the page one thread draws`, async (t) => {
    const base = ['replay', `${MANY}.pcap`, '--keylog', `${MANY}.keylog`];
    const [one, three] = [join(tmp, `t1-${entry}.html`), join(tmp, `t3-${entry}.html`)];
    const [a, b] = await Promise.all([cli(entry, ...base, '--timeline', one), cli(entry, ...base, '--timeline', three, '--workers', '3')]);
    t.is(a.code, 0, a.err);
    t.is(b.code, 0, b.err);
    const page = readFileSync(one, 'utf8');
    t.is((page.match(/<section class="flow"/g) ?? []).length, 14);
    t.is(readFileSync(three, 'utf8'), page);
  });
}

test('--workers needs an integer from 1 to 256: ConfigError naming --workers (exit 2 from the CLI)', async (t) => {
  const base = ['replay', 'c.pcap'];
  t.is((parseArgs(base) as ReplayArgs).workers, 1);
  t.is((parseArgs([...base, '--workers', '256']) as ReplayArgs).workers, 256);
  t.is((parseArgs([...base, '--workers=3']) as ReplayArgs).workers, 3);
  for (const v of ['0', 'two', '1.5', '-1', '257', '']) {
    const e = t.throws(() => parseArgs([...base, `--workers=${v}`]), { instanceOf: ConfigError }, v);
    t.is(e?.where.field, '--workers');
    t.regex(e?.message ?? '', new RegExp(`--workers needs an integer from 1 to 256, got '${v.replace('.', '\\.')}'`));
  }
  const r = await cli('source', ...base, '--workers', '0');
  t.is(r.code, 2);
  t.regex(r.err, /ConfigError: --workers needs an integer from 1 to 256, got '0' \(at field --workers\)/);
});

// ---- failures: the single-thread error and exit code, never a hang ----

async function sameFailure(t: import('ava').ExecutionContext, args: string[], code: number, pattern: RegExp) {
  const [one, two] = await Promise.all([cli('source', ...args), cli('source', ...args, '--workers', '2')]);
  t.is(one.code, code, one.err);
  t.is(two.code, code, two.err);
  t.regex(two.err, pattern);
  // The first line (what and where) is the same; an internal error's stack may differ.
  t.is(two.err.split('\n')[0], one.err.split('\n')[0]);
  t.is(two.out, one.out);
}

test('a file that is not a capture: every worker fails to open it, CaptureError with its place, exit 2', async (t) => {
  const bad = join(tmp, 'not-a-capture.pcap');
  writeFileSync(bad, Buffer.from('this is not a pcap file at all, just text\n'.repeat(4)));
  await sameFailure(t, ['replay', bad, '--keylog', `${MANY}.keylog`], 2, /tlsnic: CaptureError: .*not-a-capture\.pcap/);
});

test('a key log that cannot be read: CaptureError naming the file, exit 2', async (t) => {
  await sameFailure(t, ['replay', `${MANY}.pcap`, '--keylog', join(tmp, 'missing.keylog')], 2, /tlsnic: CaptureError: cannot read key log.*missing\.keylog/);
});

const engineUrl = (p: string) => pathToFileURL(resolve(p)).href;

test('a driver that throws a typed error mid-replay (ndo_start_xmit): same ContractError, exit 2, workers end', async (t) => {
  const drv = join(tmp, 'throwing-xmit.mjs');
  writeFileSync(drv, `import { mlx5Driver } from ${JSON.stringify(engineUrl('driver-api/drivers/index.ts'))};
import { ContractError } from ${JSON.stringify(engineUrl('emulator/errors.ts'))};
export default { name: 'throwing-xmit', probe(nic, kernel, opts) {
  const dev = mlx5Driver.probe(nic, kernel, opts);
  return { ...dev, isUp: () => dev.isUp(), startXmit: () => { throw new ContractError('test driver refuses ndo_start_xmit', { field: 'skb' }); } };
} };
`);
  await sameFailure(t, ['replay', `${MANY}.pcap`, '--keylog', `${MANY}.keylog`, '--driver', drv], 2, /tlsnic: ContractError: test driver refuses ndo_start_xmit \(at field skb\)/);
});

test('a driver whose probe throws an untyped error: internal error, exit 70, as one thread', async (t) => {
  const drv = join(tmp, 'throwing-probe.mjs');
  writeFileSync(drv, `export default { name: 'throwing-probe', probe() { throw new TypeError('probe exploded'); } };\n`);
  const [one, two] = await Promise.all([
    cli('source', 'replay', `${MANY}.pcap`, '--keylog', `${MANY}.keylog`, '--driver', drv),
    cli('source', 'replay', `${MANY}.pcap`, '--keylog', `${MANY}.keylog`, '--driver', drv, '--workers', '2'),
  ]);
  t.is(one.code, 70);
  t.is(two.code, 70);
  t.regex(one.err, /internal error: TypeError: probe exploded/);
  // The worker's own stack, marked with the queue it ran in.
  t.regex(two.err, /internal error: TypeError: probe exploded\n[\s\S]*throwing-probe\.mjs[\s\S]*\(in replay worker \d\)/);
});
