// Multi-queue replay scaling (issue 7, item 6): `tlsnic replay` of one capture at each worker count, in
// payload MB/s (application plaintext both ways, 1 MB = 1e6 bytes). One worker is the single-thread path a
// user gets without --workers; N > 1 is `--workers N` (RSS queues, worker start-up included). Runs go one
// after another in this process, in the order given.
//
// usage: node --import=tsx bench/workers.ts <capture> <keylog> [--workers 1,2] [--json]
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ConfigError } from '../emulator/errors.ts';
import { mlx5Driver } from '../driver-api/drivers/index.ts';
import { replay, type ReplayResult } from '../cli/replay/engine.ts';
import { replayParallel } from '../cli/replay/parallel.ts';

export type WorkersRow = { workers: number; seconds: number; mbps: number };

function payloadBytes(r: ReplayResult): number {
  let n = 0;
  for (const f of r.flows) n += f.tx.plaintextBytes + f.rx.plaintextBytes;
  return n;
}

export async function benchWorkers(opts: { capture: string; keylog: string; workers: number[] }): Promise<WorkersRow[]> {
  const rows: WorkersRow[] = [];
  let expect: number | null = null;
  for (const workers of opts.workers) {
    if (!Number.isInteger(workers) || workers < 1) throw new ConfigError(`worker count must be a positive integer, got ${workers}`, { field: '--workers' });
    const t0 = process.hrtime.bigint();
    const r = workers === 1
      ? await replay({ capture: opts.capture, keylog: opts.keylog, local: null, driver: mlx5Driver, tls13: false })
      : await replayParallel({ capture: opts.capture, keylog: opts.keylog, local: null, driver: 'mlx5', tls13: false, plaintextDir: null, workers });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const bytes = payloadBytes(r);
    // A faster run that replayed less would be a wrong figure, not a speedup.
    if (expect !== null && bytes !== expect) throw new Error(`--workers ${workers} replayed ${bytes} payload bytes, the first run ${expect}`);
    expect = bytes;
    rows.push({ workers, seconds, mbps: bytes / 1e6 / seconds });
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
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--workers') workers = parseList(argv[++i] ?? '');
    else if (a.startsWith('--workers=')) workers = parseList(a.slice('--workers='.length));
    else if (a === '--json') json = true;
    else positional.push(a);
  }
  if (positional.length !== 2) throw new ConfigError('usage: bench/workers.ts <capture> <keylog> [--workers 1,2] [--json]');
  const [capture, keylog] = positional as [string, string];
  const maxWorkers = Math.max(...workers);
  const capacityBefore = await parallelCapacity(maxWorkers);
  const rows = await benchWorkers({ capture, keylog, workers });
  const capacity = Math.min(capacityBefore, await parallelCapacity(maxWorkers));
  if (json) {
    process.stdout.write(JSON.stringify({ cores: availableParallelism(), capacity: { threads: maxWorkers, ratio: capacity }, rows }, null, 2) + '\n');
    return;
  }
  const base = rows[0]!;
  process.stdout.write(`replay scaling over RSS queues: ${capture}, ${availableParallelism()} cores\n`);
  process.stdout.write(`machine now: ${maxWorkers} threads of pure AES-GCM do ${capacity.toFixed(2)}x the work of one (ideal ${maxWorkers}x; lower = cores taken by other processes)\n`);
  process.stdout.write('workers  seconds   payload MB/s  speedup\n');
  for (const r of rows) {
    process.stdout.write(`${String(r.workers).padStart(7)}  ${r.seconds.toFixed(2).padStart(7)}  ${r.mbps.toFixed(1).padStart(13)}  ${(r.mbps / base.mbps).toFixed(2).padStart(6)}x\n`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`bench/workers: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  });
}
