// Profile helper (not a benchmark): where the device TX or RX path allocates JS heap, per 1448-byte segment,
// over 1 MiB of records (V8's sampling heap profiler, collected objects included). `make bench` prints the
// total; this names the allocation sites (function <- caller <- its caller).
// usage: node --import=tsx bench/prof-alloc.ts tx|rx [record bytes, default 100]
import { Session } from 'node:inspector';
import { devicePass } from './device-pass.ts';

const which = process.argv[2] === 'rx' ? 'rx' : 'tx';
const RB = Number(process.argv[3] ?? 100);
const { frames, run } = devicePass(which, 1 << 20, RB);
run(); run();
const session = new Session();
session.connect();
session.post('HeapProfiler.startSampling', { samplingInterval: 128, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
run();
session.post('HeapProfiler.stopSampling', (err, r) => {
  if (err) throw err;
  const by = new Map<string, number>(); let total = 0;
  const walk = (n: any, stack: string[]) => {
    const cf = n.callFrame; const name = `${cf.functionName || '(anon)'} ${cf.url.split('/').slice(-1)}:${cf.lineNumber}`;
    total += n.selfSize;
    if (n.selfSize) { const k = `${name} <- ${stack.slice(-2).join(' <- ')}`; by.set(k, (by.get(k) ?? 0) + n.selfSize); }
    for (const c of n.children) walk(c, [...stack, name]);
  };
  walk(r.profile.head, []);
  const lines = [`total per segment ${(total / frames.length).toFixed(0)} B, ${frames.length} segments, records ${Math.ceil((1 << 20) / RB)}`];
  for (const [k, v] of [...by].sort((a, b) => b[1] - a[1]).slice(0, 22)) lines.push(`${(v / frames.length).toFixed(0).padStart(7)} ${k}`);
  process.stdout.write(lines.join('\n') + '\n');
});
