// Loaded with `node --import` by bench/run.ts: reports the process's peak RSS (getrusage ru_maxrss) and CPU
// time on stderr at exit, so the bench measures the real CLI and not a wrapper. A CLI that runs node again
// (replay --workers) passes its flags on, so each process reports: the bench takes the largest RSS and the
// sum of the CPU.
import { isMainThread } from 'node:worker_threads';

// Worker threads load --import modules too; resource usage is the process's, so only the main thread reports.
if (isMainThread) process.on('exit', () => {
  const u = process.resourceUsage();
  process.stderr.write(`TLSNIC_MAXRSS_KB ${u.maxRSS} CPU_US ${u.userCPUTime + u.systemCPUTime}\n`);
});
