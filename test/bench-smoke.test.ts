// `make bench` with tiny sizes: every section runs in its own process and the table and --json agree and
// are sane (positive figures, ratios that are the quotients they claim, the replay verified against the
// generator). No time thresholds: figures depend on the machine.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildCli } from '../scripts/bundles.mjs';
import type { BenchResult, ReplayRow, TsharkRow } from '../bench/run.ts';
import { hasTshark } from './helpers/tools.ts';

const run = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), 'tlsnic-bench-smoke-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

// A private CLI bundle (other tests may rebuild dist/ while this runs), with the replay worker next to it as
// scripts/build.mjs lays them out.
const cli = join(tmp, 'tlsnic.mjs');
const bundled = buildCli(tmp);

const ARGS = ['--seconds', '0.05', '--mib', '1', '--flows', '3', '--record-size', '4000', '--mss', '1000', '--table-sizes', '1000,4000',
  '--only', 'raw,device,replay,tshark,table', '--cache', join(tmp, 'cache')];

async function bench(...extra: string[]): Promise<string> {
  await bundled;
  const r = await run(process.execPath, ['--import=tsx', 'bench/run.ts', ...ARGS, '--cli', cli, ...extra], { encoding: 'utf8', maxBuffer: 16 << 20, timeout: 110_000 });
  return r.stdout;
}

test('bench --json: every section present and sane', async (t) => {
  const r = JSON.parse(await bench('--json')) as BenchResult;
  t.true(r.machine.cores >= 1);
  t.is(r.machine.node, process.version);
  t.deepEqual(r.raw!.map((x) => x.recordSize), [4000, 100]);
  for (const x of r.raw!) t.true(x.oneShotMBps > 0 && x.streamedMBps > 0);
  t.deepEqual(r.device!.map((x) => x.recordSize), [4000, 100]);
  for (const x of r.device!) {
    t.true(x.txMBps > 0 && x.rxMBps > 0 && x.refMBps > 0);
    // Each ratio is the fastest device pass over the fastest reference pass; the per-round pairs are kept.
    t.true(x.txRatios.length >= 20 && x.txRatios.length === x.rxRatios.length);
    t.is(x.txRatio, x.txMBps / x.refMBps, 'TX ratio is the fastest TX pass over the fastest reference');
    t.is(x.rxRatio, x.rxMBps / x.refMBps);
    for (const r of [...x.txRatios, ...x.rxRatios]) t.true(r > 0 && Number.isFinite(r));
  }
  const rp = r.replay as ReplayRow;
  t.is(r.options.repeat, 2, 'replay and tshark ran twice each, the fastest kept');
  t.true(rp.verified, 'every flow replayed with wireMatch and the generator\'s plaintext hashes');
  t.is(rp.flows, 3);
  t.is(rp.payloadBytes, 2 ** 20);
  t.true(rp.packets > 2 ** 20 / 1000, 'at least one packet per MSS of payload');
  t.true(rp.seconds > 0 && rp.peakRssMB > 10, `peak RSS ${rp.peakRssMB} MB comes from the child's getrusage`);
  // Each run's ratio is to the streamed raw GCM measured right before it, beside the floor measured with it
  // (the replay's own node:crypto work; its opens check the records' tags).
  t.true(rp.refMBps > 0 && rp.floorRatio > 0);
  t.true(Math.abs(rp.ratioToStreamedRaw - rp.payloadMBps / rp.refMBps) < 1e-9);
  t.true(Math.abs(rp.payloadMBps - rp.payloadBytes / rp.seconds / 1e6) < 1e-6);
  // The upload: the same sizes the other way, its own capture, as checked against its generator.
  const upl = r.replayUpload!;
  t.is(rp.direction, 'download');
  t.is(upl.direction, 'upload');
  t.not(upl.capture, rp.capture);
  t.true(upl.verified);
  t.is(upl.flows, 3);
  t.is(upl.payloadBytes, 2 ** 20);
  t.true(upl.refMBps > 0 && upl.floorRatio > 0);
  t.true(Math.abs(upl.ratioToStreamedRaw - upl.payloadMBps / upl.refMBps) < 1e-9);
  if (hasTshark) {
    const ts = r.tshark as TsharkRow;
    t.is(ts.decryptedBytes, 2 ** 20, 'tshark decrypted every application byte');
    t.true(Math.abs(ts.tsharkOverTlsnic! - ts.seconds / rp.seconds) < 1e-9);
  } else t.deepEqual(r.tshark, { skipped: 'tshark not installed' });
  t.deepEqual(r.table!.map((x) => x.flows), [1000, 4000]);
  for (const x of r.table!) t.true(x.lookupNs > 0 && x.burstLookupNs > 0 && x.burstSize > 0 && x.addNs > 0 && x.delNs > 0 && x.lineNs > 0);
  // 1e3 entries start in a 1024-entry table (2048 cells of 16 bytes); 4e3 are sized for their capacity.
  t.deepEqual(r.table!.map((x) => x.bucketBytes), [32768, 131072]);
  t.is(r.workers, null, 'not asked for');
});

test('bench table: the sections asked for, in order, with the figures the JSON has', async (t) => {
  const text = await bench('--only', 'raw,table');
  t.regex(text, /^tlsnic bench: \d+ cores \(.*\), node v\d+/);
  const sections = [...text.matchAll(/^(\d)\. /gm)].map((m) => m[1]);
  t.deepEqual(sections, ['1', '5']);
  const rows = [...text.matchAll(/^\s+(4000|100)\s+(\d+)\s+(\d+)$/gm)];
  t.is(rows.length, 2, text);
  const rows5 = [...text.matchAll(/^\s+(1e\+3|4e\+3)\s+\d+\.\d\s+(\d+\.\d)\s+(\d+\.\d)\s+(\d+\.\d)\s+\d+\.\d\s+\d+\.\d$/gm)];
  t.deepEqual(rows5.map((m) => m[1]), ['1e+3', '4e+3'], text);
  const m = /lookup at 4e\+3 \/ at 1e\+3: (\d+\.\d\d) one by one, (\d+\.\d\d) in bursts of 64 \(target <= 1\.5, met (by neither|one by one|in bursts|one by one and in bursts)\)/.exec(text);
  t.truthy(m, text);
  // The ratios are the quotients of the printed columns (to their rounding), and the verdict follows them.
  const [a, z] = rows5.map((r) => [Number(r[2]), Number(r[3])] as const);
  t.true(Math.abs(Number(m![1]) - z![0] / a![0]) < 0.02 + 0.1 / a![0], `one by one ${m![1]}`);
  t.true(Math.abs(Number(m![2]) - z![1] / a![1]) < 0.02 + 0.1 / a![1], `in bursts ${m![2]}`);
  const [r1, r2] = [Number(m![1]), Number(m![2])];
  if (Math.abs(r1 - 1.5) > 0.01 && Math.abs(r2 - 1.5) > 0.01) { // a printed 1.50 may be either side
    t.is(m![3], [r1 <= 1.5 ? 'one by one' : '', r2 <= 1.5 ? 'in bursts' : ''].filter(Boolean).join(' and ') || 'by neither');
  }
  // The floor: the small table's burst plus what a random line read costs more in the large one.
  const allows = /the machine allows (\d+\.\d\d) in bursts/.exec(text);
  t.truthy(allows, text);
  const [lineA, lineZ] = rows5.map((r) => Number(r[4]));
  const want = (a![1] + Math.max(0, lineZ! - lineA!)) / a![1];
  t.true(Math.abs(Number(allows![1]) - want) < 0.02 + 0.2 / a![1], `allows ${allows![1]}, columns give ${want}`);
});

test('bench workers section: its own capture of --workers-flows connections, 1 and 2 workers, speedups the quotients they claim', async (t) => {
  await bundled;
  const args = ['--import=tsx', 'bench/run.ts', '--mib', '1', '--flows', '3', '--workers-flows', '6', '--record-size', '4000', '--mss', '1000',
    '--only', 'workers', '--cache', join(tmp, 'cache'), '--cli', cli];
  const r = JSON.parse((await run(process.execPath, [...args, '--json'], { encoding: 'utf8', maxBuffer: 16 << 20, timeout: 110_000 })).stdout) as BenchResult;
  t.is(r.replay, null);
  const w = r.workers!;
  t.deepEqual(w.map((x) => x.workers), [1, 2]);
  for (const x of w) {
    t.is(x.flows, 6, 'the workers capture, not the replay one');
    t.true(x.seconds > 0 && x.mbps > 0 && x.processCpuSeconds > 0);
    t.true(x.splitCeiling >= 1 && x.splitCeiling <= x.workers);
    t.true(x.machineCapacity > 0 && x.machineCapacity < x.workers * 1.5, `machine capacity ${x.machineCapacity}`);
    t.true(Math.abs(x.ceiling - (x.splitCeiling * x.machineCapacity) / x.workers) < 1e-9);
  }
  t.is(w[0]!.machineCapacity, 1);
  t.is(w[0]!.speedup, 1);
  t.true(Math.abs(w[1]!.speedup - w[1]!.mbps / w[0]!.mbps) < 1e-9);
  const text = (await run(process.execPath, args, { encoding: 'utf8', maxBuffer: 16 << 20, timeout: 110_000 })).stdout;
  t.regex(text, /6\. node \S+ replay --workers N \(RSS queues\), 6 TLS 1\.2 flows/);
  t.regex(text, /RSS split allows   machine allows   both allow/);
});

test('bench many section: the fixture written N times replays every connection, offloaded and as the fixture sent it', async (t) => {
  await bundled;
  const args = ['--import=tsx', 'bench/run.ts', '--only', 'many', '--many-copies', '2,5', '--repeat', '1', '--cache', join(tmp, 'cache'), '--cli', cli];
  const r = JSON.parse((await run(process.execPath, [...args, '--json'], { encoding: 'utf8', maxBuffer: 16 << 20, timeout: 110_000 })).stdout) as BenchResult;
  t.is(r.replay, null);
  const m = r.many!;
  t.deepEqual(m.map((x) => [x.copies, x.connections]), [[2, 28], [5, 70]]);
  for (const x of m) {
    t.true(x.verified, `${x.copies} copies`);
    t.true(x.seconds > 0 && x.peakRssMB > 10 && x.captureBytes > 0 && x.linesSeconds > 0 && x.linesPeakRssMB > 10);
    t.true(Math.abs(x.connectionsPerSec - x.connections / x.seconds) < 1e-6);
  }
  t.true(Math.abs(m[1]!.captureBytes / m[0]!.captureBytes - 2.5) < 0.01, 'each copy is the whole fixture');
  const text = (await run(process.execPath, args, { encoding: 'utf8', maxBuffer: 16 << 20, timeout: 110_000 })).stdout;
  t.regex(text, /7\. node \S+ replay of short connections one after another: the tls12-many-v4 fixture \(14 connections\) written N times/);
  t.regex(text, /^\s+5\s+70\s+\d+\s+\d+\.\d\d\s+\d+\s+\d+\s+\d+\.\d\d\s+\d+\s+yes$/m);
  t.regex(text, /peak RSS grows -?\d+\.\d MB per 1000 connections with --json, -?\d+\.\d MB with --json-lines, from \d+ to \d+ connections/);
});

test('bad bench options are ConfigErrors with exit 2', async (t) => {
  for (const bad of [['--only', 'nope'], ['--mss', '10'], ['--frobnicate', '1'], ['--seconds', 'x'], ['--workers-flows', '0'], ['--repeat', '0'], ['--many-copies', '0']]) {
    const e = await t.throwsAsync(run(process.execPath, ['--import=tsx', 'bench/run.ts', ...bad], { encoding: 'utf8' }));
    t.is((e as unknown as { code: number }).code, 2, bad.join(' '));
    t.regex((e as unknown as { stderr: string }).stderr, /^bench: /);
  }
});
