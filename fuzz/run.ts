// `make fuzz`: long seeded runs of every fuzz class (fuzz/targets.ts). Prints, per class, how many inputs
// it tried, how many were accepted and how many rejected with a typed error, and every failure with the
// seed that reproduces it (`--class X --seed S --count 1`). Exit 1 when anything failed.
//
// usage: node --import=tsx fuzz/run.ts [--count N] [--seconds S] [--class name[,name]] [--seed S]
import { Rng } from '../driver-api/host/rng.ts';
import { allTargets, FuzzFailure } from './targets.ts';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const count = Number(opt('--count') ?? 1_000_000);
const seconds = Number(opt('--seconds') ?? Infinity);
const seed0 = Number(opt('--seed') ?? 1);
const classes = opt('--class')?.split(',');
const HANG_MS = 2000;

let failedTotal = 0;
for (const target of allTargets()) {
  if (classes && !classes.includes(target.name)) continue;
  const t0 = Date.now();
  let tried = 0;
  let accepted = 0;
  let rejected = 0;
  const failures: string[] = [];
  let slowest = 0;
  let lastPrint = t0;
  const inputs = Math.max(1, Math.round(count * (target.perCount ?? 1)));
  for (let i = 0; i < inputs; i++) {
    if ((Date.now() - t0) / 1000 >= seconds) break;
    const seed = (seed0 + i) >>> 0;
    // CPU time, not wall time: on a shared machine a descheduled process is not a hang.
    const c0 = process.cpuUsage();
    try {
      if ((await target.one(new Rng(seed))) === 'accepted') accepted++;
      else rejected++;
    } catch (e) {
      failures.push(`seed ${seed}: ${e instanceof FuzzFailure ? e.message : `crash: ${e instanceof Error ? e.stack : String(e)}`}`);
    }
    const c = process.cpuUsage(c0);
    const ms = (c.user + c.system) / 1000;
    if (ms > slowest) slowest = ms;
    if (ms > HANG_MS) failures.push(`seed ${seed}: took ${ms.toFixed(0)} ms of CPU (hang threshold ${HANG_MS} ms)`);
    tried++;
    if (process.stderr.isTTY && Date.now() - lastPrint > 1000) {
      lastPrint = Date.now();
      process.stderr.write(`\r${target.name}: ${tried} inputs...`);
    }
  }
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  const secs = (Date.now() - t0) / 1000;
  console.log(
    `${target.name.padEnd(16)} ${String(tried).padStart(9)} inputs  ${String(accepted).padStart(9)} accepted  ${String(rejected).padStart(9)} rejected (typed)  ` +
      `${failures.length} failures  ${secs.toFixed(1)} s  slowest ${slowest.toFixed(1)} ms CPU   (${target.input})`,
  );
  for (const f of failures.slice(0, 20)) console.log(`  FAIL ${f}`);
  failedTotal += failures.length;
}
process.exit(failedTotal ? 1 : 0);
