// `tlsnic replay --workers N`: the capture's connections spread over N receive queues by RSS (Toeplitz on
// the canonical 4-tuple, then the indirection table: emulator/nic/rss.ts), one worker thread per queue, as
// a NIC spreads flows over per-core queues. Every worker reads the capture itself and replays its own flows
// (worker.ts); this thread merges what they report into the result one thread would have given:
// connections in capture order (by first packet), ethtool and tls_stat counters summed as per-ring
// statistics are, the capture-wide notes once.
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ContractError, ConfigError, CaptureError, CryptoError, TlsError, WireError, type TlsnicError } from '../../emulator/errors.ts';
import { formatEthtool, type EthtoolCounters } from '../../emulator/nic/counters.ts';
import { BUILTIN_DRIVERS } from '../../driver-api/drivers/index.ts';
import { formatTlsStat, type TlsStat } from '../../driver-api/stack/tls-stat.ts';
import type { TimeWindow } from '../../testbed/timeline.ts';
import type { FlowReport, ReplayResult } from './engine.ts';
import { checkScenario, MAX_HELD_BYTES, scenarioProblems, type ReplayScenario, type ScenarioOutcome } from './scenario.ts';
import type { QueueFailure, QueueJob, QueueMessage, QueueResult, QueueWorkerData } from './worker.ts';

export type ParallelReplayOptions = Omit<QueueJob, 'queue' | 'queues' | 'progress' | 'streamReports'> & {
  workers: number;
  /** --json-lines: each connection's report from whichever queue has it, as it becomes final (ReplayOptions.onReport). */
  onReport?: (report: FlowReport, first: number) => void;
  onProgress?: (bytesRead: number) => void;
  /** Each queue's own result before the merge, in queue order (bench/workers.ts: the split and CPU per queue). */
  onQueueResults?: (parts: readonly QueueResult[]) => void;
};

export type WorkerEntry = { script: string | URL; eval: boolean; execArgv?: string[] };

/**
 * How to start a queue's worker. From the bundle: tlsnic-replay-worker.mjs, built next to dist/tlsnic.mjs
 * (behind tsx's register() for a TypeScript driver module).
 * From source (tests, bench, tsx), with a built-in driver: worker.ts bundled once per process by esbuild
 * into a temporary file (a worker then starts in ~60 ms; under tsx it takes ~500 ms of CPU to transform
 * the sources again in every worker). With a driver module: worker.ts under tsx, registered by a small
 * evaluated entry, since the module may import the project's TypeScript and must share its classes (a
 * typed error must stay typed). A Worker given a .ts file directly fails on Node 20
 * (ERR_UNKNOWN_FILE_EXTENSION) even with execArgv ['--import', 'tsx']: its entry loads before the hooks.
 */
export async function workerEntry(driver: string): Promise<WorkerEntry> {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) {
    // The bundle. A TypeScript driver module (the bundle run with `--import=tsx`) needs the loader in every
    // worker too: a worker does not get the main thread's hooks on Node 20, so it registers tsx itself first.
    const script = new URL('./tlsnic-replay-worker.mjs', here);
    const tsx = BUILTIN_DRIVERS[driver] || !TS_MODULE.test(driver) ? null : resolveTsx();
    return tsx ? { script: registeringEntry(tsx, script.href), eval: true, execArgv: [] } : { script, eval: false };
  }
  if (BUILTIN_DRIVERS[driver]) return { script: await bundledWorker(), eval: false, execArgv: [] };
  return { script: registeringEntry(import.meta.resolve('tsx/esm/api'), new URL('./worker.ts', here).href), eval: true, execArgv: [] };
}

/** A driver module's path that needs a TypeScript loader. */
const TS_MODULE = /\.[cm]?ts$/i;

/** An evaluated worker entry that registers tsx's hooks (module URL `tsx`), then imports the worker `entry`. */
function registeringEntry(tsx: string, entry: string): string {
  return `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
}

/**
 * tsx's register API as a worker's import names it, found as `node --import=tsx` finds tsx: from the working
 * directory, else next to the bundle. null when neither has it: the workers then fail to load the driver with a
 * ConfigError that says so.
 */
function resolveTsx(): string | null {
  try {
    // Found from here, so an evaluated worker's import (which resolves from the working directory) finds it
    // too, by its `import` export (the `require` one resolve() names cannot be imported as a module).
    createRequire(join(process.cwd(), 'tlsnic-worker.js')).resolve('tsx/esm/api');
    return 'tsx/esm/api';
  } catch {
    try {
      return import.meta.resolve('tsx/esm/api');
    } catch {
      return null;
    }
  }
}

let workerBundle: Promise<string> | null = null;

/** worker.ts bundled as scripts/build.mjs bundles it, into a directory removed when this process exits. */
function bundledWorker(): Promise<string> {
  workerBundle ??= (async () => {
    // A computed specifier: the CLI bundle must not pull esbuild in (this branch runs from source only).
    const pkg = 'esbuild';
    const { build } = (await import(pkg)) as typeof import('esbuild');
    const dir = mkdtempSync(join(tmpdir(), 'tlsnic-worker-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const outfile = join(dir, 'tlsnic-replay-worker.mjs');
    await build({
      entryPoints: [fileURLToPath(new URL('./worker.ts', import.meta.url))],
      outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'warning',
      banner: { js: "import { createRequire as __tlsnicCreateRequire } from 'node:module';\nconst require = __tlsnicCreateRequire(import.meta.url);" },
    });
    return outfile;
  })();
  return workerBundle;
}

const ERROR_CLASSES: Record<string, new (message: string) => TlsnicError> = {
  WireError, CaptureError, TlsError, CryptoError, ContractError, ConfigError,
};

/** The worker's error as this thread's: same class, message and place, so the exit code is the same. */
export function reviveError(f: QueueFailure, queue: number): Error {
  const Cls = f.typed ? ERROR_CLASSES[f.name] : undefined;
  if (Cls) {
    // The message already names the place: construct without it, then restore `where`.
    const e = new Cls(f.message);
    (e as { where: TlsnicError['where'] }).where = f.where;
    e.stack = `${f.stack}\n    (in replay worker ${queue})`;
    return e;
  }
  const e = new Error(`replay worker ${queue}: ${f.message}`);
  e.stack = `${f.stack}\n    (in replay worker ${queue})`;
  return e;
}

/**
 * Each queue's young generation (V8's nursery: two semi-spaces and the new large-object space), in MB. V8 lets
 * it grow to ~50 MB an isolate under a replay's allocation rate, which with two queues and the main thread came to
 * a third of the process: 1 GiB of 128 flows on 2 queues peaked at 230 MB, 37,800 short connections at 340
 * MB; with 12 MB, 155-165 and 230 MB, in the same time (both alternated over runs, bench/ and by hand).
 */
export const WORKER_YOUNG_GENERATION_MB = 12;

function runWorker(
  entry: WorkerEntry, job: QueueJob, onProgress: ((bytes: number) => void) | undefined, onReport?: (report: FlowReport, first: number) => void,
): Promise<QueueResult> {
  const data: QueueWorkerData = { tlsnicReplayQueue: job };
  return new Promise((resolve, reject) => {
    let result: QueueResult | null = null;
    let failure: Error | null = null;
    const worker = new Worker(entry.script, { workerData: data, eval: entry.eval, resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB }, ...(entry.execArgv ? { execArgv: entry.execArgv } : {}) });
    worker.on('message', (m: QueueMessage) => {
      if (m.kind === 'progress') onProgress?.(m.bytes);
      else if (m.kind === 'report') {
        if (failure) return;
        // What this thread does with a report (write it, keep it) failing ends the queue with that error.
        try {
          onReport?.(m.report, m.first);
        } catch (e) {
          failure = e as Error;
          void worker.terminate();
        }
      } else if (m.kind === 'done') result = m.result;
      else failure = reviveError(m.error, job.queue);
    });
    // An exception that escaped the replay's promise (or a worker that could not start).
    worker.on('error', (e) => {
      failure ??= reviveError({ name: e.name, message: e.message, where: {}, stack: e.stack ?? '', typed: false }, job.queue);
    });
    worker.on('exit', (code) => {
      if (failure) reject(failure);
      else if (result) resolve(result);
      else reject(new Error(`replay worker ${job.queue} exited with code ${code} without a result`));
    });
  });
}

/** Place of an error in capture order (errors before the first packet come first). */
function errorOrder(e: unknown): number {
  const w = (e as Partial<TlsnicError>).where;
  return w?.packet ?? w?.offset ?? -1;
}

/** Of the queues' failures (in queue order), the one one thread would have met first: the earliest in the capture, then the lowest queue. */
export function firstFailure(failures: readonly unknown[]): unknown {
  return failures.map((e, i) => ({ e, i })).sort((a, b) => errorOrder(a.e) - errorOrder(b.e) || a.i - b.i)[0]!.e;
}

export async function replayParallel(opts: ParallelReplayOptions): Promise<ReplayResult> {
  const { workers, onProgress, onQueueResults, onReport, ...common } = opts;
  if (!Number.isInteger(workers) || workers < 1) throw new ConfigError(`--workers must be a positive integer, got ${workers}`, { field: '--workers' });
  const entry = await workerEntry(common.driver);
  const settled = await Promise.allSettled(
    Array.from({ length: workers }, (_, queue) => runWorker(
      entry, { ...common, queue, queues: workers, progress: queue === 0 && onProgress !== undefined, streamReports: onReport !== undefined }, onProgress, onReport,
    )),
  );
  // Every worker ran to its end (none is left running).
  const failed = settled.flatMap((s, i) => (s.status === 'rejected' ? [s.reason as unknown] : []));
  if (failed.length) throw firstFailure(failed);
  const parts = settled.map((s) => (s as PromiseFulfilledResult<QueueResult>).value);
  onQueueResults?.(parts);
  return mergeQueueResults(opts.capture, parts, { scenario: common.scenario, timelineWindow: common.timelineWindow ?? null });
}

function sumInto(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

/** One result from the queues' results, as a single-thread replay of the whole capture reports it. */
export function mergeQueueResults(
  capture: string, parts: QueueResult[], opts: { scenario?: ReplayScenario | undefined; timelineWindow?: TimeWindow | null } = {},
): ReplayResult {
  const { scenario } = opts;
  if (parts.length === 0) throw new ContractError('merging the results of zero replay queues');
  const first = parts[0]!;
  const ethtool: Record<string, number> = {};
  const tlsStat: Record<string, number> = {};
  for (const p of parts) {
    sumInto(ethtool, p.ethtool);
    sumInto(tlsStat, p.tlsStat);
  }
  // Capture-wide notes (skipped packets, truncation) come before any flow filter: every queue has the
  // same ones. Keep each once, in order.
  const problems = [...new Set(parts.flatMap((p) => p.problems))];
  const ordered = parts.flatMap((p, q) => p.flows.map((f, i) => ({ ...f, key: `${q}:${i + 1}` }))).sort((a, b) => a.first - b.first);
  const flows = ordered.map((f) => f.report);
  // Each queue numbered its marks by its own flows: renumber them by the merged order.
  const position = new Map(ordered.map((f, i) => [f.key, i + 1]));
  const timeline = parts.flatMap((p, q) => p.timeline.map((m) => ({ ...m, flow: position.get(`${q}:${m.flow}`)! })));
  return {
    capture,
    packets: first.packets,
    flows,
    ethtool,
    tlsStat,
    ethtoolText: formatEthtool(ethtool as EthtoolCounters),
    tlsStatText: formatTlsStat(tlsStat as TlsStat),
    netdev: first.netdev,
    problems,
    timeline,
    timelineWindow: opts.timelineWindow ?? null,
    flowFirstPackets: ordered.map((f) => f.first),
    ...(scenario ? { scenario: mergeScenario(scenario, parts, ethtool, tlsStat) } : {}),
  };
}

/**
 * The scenario outcome of the whole capture: each queue impaired its own connections (their `flow` numbers are
 * already the capture's), every queue saw each link down; the expectations are checked again over all queues.
 */
function mergeScenario(s: ReplayScenario, parts: QueueResult[], ethtool: Record<string, number>, tlsStat: Record<string, number>): ScenarioOutcome {
  const outcomes = parts.map((p, q) => {
    if (!p.scenario || p.scenario.outcome.flows.length !== p.flows.length) throw new ContractError(`replay queue ${q} returned no scenario outcome for each of its flows`);
    return { ...p.scenario, flows: p.flows };
  });
  // A link down is one event on the host's link: every queue went through it. The rest fired in one queue each.
  const impairments = s.impairments.map((imp, index) => {
    const fired = outcomes.map((o) => o.outcome.impairments[index]!.fired);
    return { index, kind: imp.kind, fired: imp.kind === 'linkDown' ? Math.max(...fired) : fired.reduce((a, b) => a + b, 0) };
  });
  // In the report's order (by first packet), as one thread lists them: a queue's scenario flows are its flows.
  const flows = outcomes.flatMap((o) => o.outcome.flows.map((f, i) => ({ f, d: o.parts.delivered[i]!, first: o.flows[i]!.first }))).sort((a, b) => a.first - b.first);
  const overflow = outcomes.reduce((n, o) => n + o.parts.overflow, 0);
  const problems = scenarioProblems(s, impairments, overflow, MAX_HELD_BYTES);
  const failures = checkScenario(s, problems, flows.map((x) => x.f), flows.map((x) => x.d), ethtool, tlsStat);
  return { name: s.name, seed: s.seed, impairments, flows: flows.map((x) => x.f), failures };
}
