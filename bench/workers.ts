// Multi-queue replay scaling (issue 7, item 6): `tlsnic replay` of one capture at each worker count, in
// payload MB/s (application plaintext both ways, 1 MB = 1e6 bytes). One worker is the single-thread path a
// user gets without --workers; N > 1 is `--workers N` (RSS queues, worker start-up included). Runs go one
// after another in this process, in the order given.
//
// usage: node --import=tsx bench/workers.ts <capture> <keylog> [--workers 1,2] [--repeat N] [--json]
// --repeat N: the list N times over, interleaved (1,2,1,2,...), keeping each count's fastest run: on a
// shared machine the least disturbed run is the closest to the code's own figure.
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ConfigError } from '../emulator/errors.ts';
import { mlx5Driver } from '../driver-api/drivers/index.ts';
import { replay, type ReplayResult } from '../cli/replay/engine.ts';
import { replayParallel, workerEntry } from '../cli/replay/parallel.ts';
import { threadCpuSeconds, type QueueResult } from '../cli/replay/worker.ts';

/** One queue of a run: its connections, their payload and the CPU seconds of its thread (null: not measurable). */
export type QueueRow = { connections: number; payloadBytes: number; cpuSeconds: number | null };
/**
 * `splitCeiling`: the speedup the RSS split allows at best, total payload over the largest queue's (the
 * generated flows cost about the same per byte); 1 for one worker. `processCpuSeconds`: every thread of
 * the process over the run, V8's GC helper threads included (they take a second core even with one worker).
 */
export type WorkersRow = { workers: number; seconds: number; mbps: number; queues: QueueRow[]; splitCeiling: number; processCpuSeconds: number };

function payloadBytes(flows: ReplayResult['flows']): number {
  let n = 0;
  for (const f of flows) n += f.tx.plaintextBytes + f.rx.plaintextBytes;
  return n;
}

function queueRow(p: QueueResult): QueueRow {
  return { connections: p.flows.length, payloadBytes: payloadBytes(p.flows.map((f) => f.report)), cpuSeconds: p.cpu.thread };
}

export async function benchWorkers(opts: { capture: string; keylog: string; workers: number[]; repeat?: number }): Promise<WorkersRow[]> {
  const repeat = opts.repeat ?? 1;
  if (!Number.isInteger(repeat) || repeat < 1) throw new ConfigError(`--repeat must be a positive integer, got ${repeat}`, { field: '--repeat' });
  const best = new Map<number, WorkersRow>();
  for (let i = 0; i < repeat; i++) {
    for (const r of await benchOnce(opts)) {
      const b = best.get(r.workers);
      if (!b || r.seconds < b.seconds) best.set(r.workers, r);
    }
  }
  return opts.workers.map((w) => best.get(w)!);
}

async function benchOnce(opts: { capture: string; keylog: string; workers: number[] }): Promise<WorkersRow[]> {
  const rows: WorkersRow[] = [];
  let expect: number | null = null;
  // From source the worker script is bundled by esbuild once per process (~0.13 s); the CLI ships it built
  // (dist/tlsnic-replay-worker.mjs), so bundle before the clock starts. Workers still start inside it.
  if (opts.workers.some((w) => w > 1)) await workerEntry('mlx5');
  for (const workers of opts.workers) {
    if (!Number.isInteger(workers) || workers < 1) throw new ConfigError(`worker count must be a positive integer, got ${workers}`, { field: '--workers' });
    let parts: readonly QueueResult[] = [];
    const cpu0 = threadCpuSeconds();
    const proc0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const r = workers === 1
      ? await replay({ capture: opts.capture, keylog: opts.keylog, local: null, driver: mlx5Driver, tls13: false })
      : await replayParallel({
        capture: opts.capture, keylog: opts.keylog, local: null, driver: 'mlx5', tls13: false, plaintextDir: null, workers, onQueueResults: (p) => (parts = p),
      });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu1 = threadCpuSeconds();
    const proc = process.cpuUsage(proc0);
    const bytes = payloadBytes(r.flows);
    // A faster run that replayed less would be a wrong figure, not a speedup.
    if (expect !== null && bytes !== expect) throw new Error(`--workers ${workers} replayed ${bytes} payload bytes, the first run ${expect}`);
    expect = bytes;
    const queues = workers === 1
      ? [{ connections: r.flows.length, payloadBytes: bytes, cpuSeconds: cpu0 !== null && cpu1 !== null ? Math.round((cpu1 - cpu0) * 100) / 100 : null }]
      : parts.map(queueRow);
    const largest = Math.max(...queues.map((q) => q.payloadBytes));
    rows.push({ workers, seconds, mbps: bytes / 1e6 / seconds, queues, splitCeiling: largest > 0 ? bytes / largest : 1, processCpuSeconds: (proc.user + proc.system) / 1e6 });
  }
  return rows;
}

// One unit of pure CPU work (AES-GCM over 256 MiB in 1 MiB pieces), self-contained for an eval'd worker.
const UNIT = `const { createCipheriv } = require('node:crypto');
const c = createCipheriv('aes-128-gcm', Buffer.alloc(16), Buffer.alloc(12));
const b = Buffer.alloc(1 << 20);
for (let i = 0; i < 256; i++) c.update(b);
require('node:worker_threads').parentPort.postMessage(0);`;

async function units(threads: number): Promise<number> {
  const t0 = performance.now();
  await Promise.all(Array.from({ length: threads }, () => new Promise((res, rej) => {
    const w = new Worker(UNIT, { eval: true });
    w.once('message', res);
    w.once('error', rej);
  })));
  return (performance.now() - t0) / 1e3;
}

/**
 * How much work `threads` threads get done at once, relative to one thread (ideal: `threads`). On a shared
 * machine other processes take cores: a worker speedup means little without this figure from the same run.
 */
export async function parallelCapacity(threads: number): Promise<number> {
  const one = await units(1);
  const many = await units(threads);
  return (threads * one) / many;
}

function parseList(v: string): number[] {
  const xs = v.split(',').map(Number);
  if (xs.some((x) => !Number.isInteger(x) || x < 1)) throw new ConfigError(`--workers wants a list like 1,2, got '${v}'`, { field: '--workers' });
  return xs;
}

async function main(argv: string[]): Promise<void> {
  const positional: string[] = [];
  let workers = [1, 2];
  let json = false;
  let repeat = 1;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--workers') workers = parseList(argv[++i] ?? '');
    else if (a === '--repeat') repeat = Number(argv[++i]);
    else if (a.startsWith('--workers=')) workers = parseList(a.slice('--workers='.length));
    else if (a === '--json') json = true;
    else positional.push(a);
  }
  if (positional.length !== 2) throw new ConfigError('usage: bench/workers.ts <capture> <keylog> [--workers 1,2] [--repeat N] [--json]');
  const [capture, keylog] = positional as [string, string];
  const maxWorkers = Math.max(...workers);
  const capacityBefore = await parallelCapacity(maxWorkers);
  const rows = await benchWorkers({ capture, keylog, workers, repeat });
  const capacity = Math.min(capacityBefore, await parallelCapacity(maxWorkers));
  if (json) {
    process.stdout.write(JSON.stringify({ cores: availableParallelism(), capacity: { threads: maxWorkers, ratio: capacity }, repeat, rows }, null, 2) + '\n');
    return;
  }
  const base = rows[0]!;
  process.stdout.write(`replay scaling over RSS queues: ${capture}, ${availableParallelism()} cores${repeat > 1 ? `, fastest of ${repeat} runs each` : ''}\n`);
  process.stdout.write(`machine now: ${maxWorkers} threads of pure AES-GCM do ${capacity.toFixed(2)}x the work of one (ideal ${maxWorkers}x; lower = cores taken by other processes)\n`);
  process.stdout.write('workers  seconds   payload MB/s  speedup  split ceiling  process CPU s  per queue: connections, payload share, thread CPU s\n');
  const cpu = (s: number | null) => (s === null ? '?' : s.toFixed(2));
  for (const r of rows) {
    const total = r.queues.reduce((s, q) => s + q.payloadBytes, 0);
    const qs = r.queues.map((q) => `${q.connections}, ${((100 * q.payloadBytes) / total).toFixed(1)}%, ${cpu(q.cpuSeconds)}`).join(' | ');
    process.stdout.write(`${String(r.workers).padStart(7)}  ${r.seconds.toFixed(2).padStart(7)}  ${r.mbps.toFixed(1).padStart(13)}  ${(r.mbps / base.mbps).toFixed(2).padStart(6)}x  ${r.splitCeiling.toFixed(2).padStart(12)}x  ${r.processCpuSeconds.toFixed(2).padStart(13)}  ${qs}\n`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`bench/workers: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  });
}
