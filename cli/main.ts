// tlsnic command line.
import { spawnSync } from 'node:child_process';
import { setFlagsFromString } from 'node:v8';
import { TlsnicError } from '../emulator/errors.ts';
import { USAGE, parseArgs } from './args.ts';
import { writeOut } from './output.ts';
import { REPLAY_HELP, runReplay } from './replay/command.ts';
import { runRun } from './run.ts';

/**
 * V8 lets the old generation grow to up to 4x what survived the last full GC when the program allocates fast
 * and GCs are cheap, which a replay does (~1.5 KB of short-lived objects per packet over a live heap of tens of
 * MB): the peak RSS of a long capture of short connections was mostly garbage waiting for a full GC (257 MB for
 * 37,800 connections, 200 MB with this; the 1 GiB capture of 16 flows peaks at 126 MB either way, as fast).
 * A fixed factor of 2. V8 reads it at each full GC, so setting it now works; it is process-wide, so the replay's
 * worker threads have it too.
 */
setFlagsFromString('--heap-growing-percent=100');

/**
 * A replay makes an ArrayBuffer with malloc'd memory for every node:crypto update() and one-shot open (tens of
 * thousands a second), and V8 frees the dead ones on a background thread by default: glibc's arena lock and
 * cross-thread frees then cost more than the frees themselves (malloc/free ~14% of a perf profile of the 1 GiB
 * download, and ~1 s of its 8 s in the kernel). Freed on the main thread as it sweeps: the 1 GiB download
 * 7.7-8.1 s -> 6.1-6.3 s, the upload 7.7-7.8 s -> 7.0-7.1 s in one noisier stretch, sys time halved, same peak
 * RSS. Read each time V8 sweeps, so setting it now works (a multi-queue replay's --single-threaded-gc measured the
 * same on one queue: no background sweeping either).
 */
setFlagsFromString('--no-concurrent-array-buffer-sweeping');

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  switch (args.command) {
    case 'help':
      writeOut([USAGE + '\n\n' + REPLAY_HELP + '\n']);
      return 0;
    case 'version':
      writeOut(['tlsnic 0.1.0\n']);
      return 0;
    case 'replay':
      if (args.workers > 1 && !process.execArgv.includes(SINGLE_THREADED_GC)) return again([SINGLE_THREADED_GC]);
      return runReplay(args);
    case 'run':
      return runRun(args);
  }
}

/**
 * V8's parallel and concurrent GC helper threads are process-wide, and worker threads cannot get V8 flags of
 * their own. With one replay queue per core they take a share of the cores the queues need: a 2-queue replay
 * of 1 GiB in 128 flows ran 1.44x faster than one queue with them and 1.84x without (bench/workers.ts; one
 * queue alone is as fast either way). So a multi-queue replay runs node again with this flag.
 */
const SINGLE_THREADED_GC = '--single-threaded-gc';

/** Runs this command line again in a node started with `flags` (same stdio, exit code, signal). */
function again(flags: string[]): number {
  const r = spawnSync(process.execPath, [...flags, ...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit' });
  if (r.error) throw r.error;
  if (r.signal) process.kill(process.pid, r.signal);
  return r.status ?? 70;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof TlsnicError) {
      process.stderr.write(`tlsnic: ${e.name}: ${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`tlsnic: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 70;
  },
);
