// tlsnic command line.
import { setFlagsFromString } from 'node:v8';
import { TlsnicError } from '../emulator/errors.ts';
import { USAGE, parseArgs } from './args.ts';
import { writeOut } from './output.ts';
import { REPLAY_HELP, runReplay } from './replay/command.ts';

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
      if (args.workers > 1) setFlagsFromString(NO_PARALLEL_SCAVENGE);
      return runReplay(args);
    case 'run':
      // The testbed's scenario language is zod schemas: loaded for `run` only (replay/scenario-schema.ts says why).
      return (await import('./run.ts')).runRun(args);
  }
}

/**
 * V8's GC helper threads are process-wide, and worker threads cannot get V8 flags of their own. With one replay
 * queue per core the helpers of each queue's young-generation GC (a scavenge every few MB a queue allocates)
 * take a share of the cores the queues need. Set before the queues' isolates exist; V8 reads it at each
 * scavenge. Until 2026-12-02 the CLI ran node again with `--single-threaded-gc` (1 GiB in 128 flows on two
 * queues: 1.44x one queue with the helpers, 1.84x without, same process for both counts), which cost a
 * second node's start, ~0.3 s a run. That flag cannot be set from here: it also turns concurrent marking off,
 * and V8 aborts when that changes under a marking in progress (tried). Full GCs, whose concurrent helpers
 * stay, are rare in a replay. That 1 GiB run on two queues, alternating, fastest of each: 4.55 s with this
 * flag, 4.79 s without, 4.87 s with the second node (sys time 0.6-0.8 s with the flag, 0.76-0.9 without).
 */
const NO_PARALLEL_SCAVENGE = '--no-parallel-scavenge';

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
