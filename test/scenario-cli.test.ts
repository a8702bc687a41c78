// `tlsnic run` as a user runs it: exit 0 when the scenario's expectations hold, 1 when not, 2 on a bad
// scenario (with file:line:col and the field), --json for scripts.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCaptureBytes } from '../emulator/capture/index.ts';
import { TcpSegmentView } from '../emulator/wire/packet.ts';

const tmp = mkdtempSync(join(tmpdir(), 'tlsnic-run-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

function tlsnic(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import=tsx', 'cli/main.ts', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('a library scenario whose expectations hold: exit 0 and the recovery per profile', (t) => {
  const r = tlsnic('run', 'fixtures/scenarios/loss-header.json');
  t.is(r.code, 0, r.err + r.out);
  t.regex(r.out, /^scenario loss-header: expectations hold/);
  t.regex(r.out, /nfp\/core_next_hint \(core_next_hint\), 1 flow: 1 resyncs, recovery records min \d+/);
  t.regex(r.out, /b calls: add rx 0, add tx 0, resync rx 0, del rx, del tx/);
});

test('--json gives the full result: counters, calls, flows', (t) => {
  const r = tlsnic('run', 'fixtures/scenarios/reorder-non-header.json', '--json');
  t.is(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  t.true(j.ok);
  t.is(j.runs.length, 3);
  t.is(j.runs[0].hosts.b.ethtool.rx_tls_resync_req_pkt, 0);
  t.deepEqual(j.runs[0].hosts.b.calls, ['add rx 0', 'add tx 0', 'del rx', 'del tx']);
  t.true(j.runs[0].flows[0].exact);
});

test('expectations that do not hold: exit 1 and each failure', (t) => {
  const s = JSON.parse(readFileSync('fixtures/scenarios/loss-header.json', 'utf8'));
  s.driver = { name: 'mlx5' };
  s.expectByProfile = undefined;
  s.expect.resyncEpisodes = 0;
  const f = join(tmp, 'wrong.json');
  writeFileSync(f, JSON.stringify(s, null, 2));
  const r = tlsnic('run', f);
  t.is(r.code, 1, r.err);
  t.regex(r.out, /EXPECTATIONS FAILED/);
  t.regex(r.out, /FAIL loss-of-sync episodes: 1, expected 0/);
});

test('a bad scenario: exit 2, file:line:col and the field path on stderr', (t) => {
  const f = join(tmp, 'bad.json');
  writeFileSync(f, '{\n  "name": "bad",\n  "driver": { "name": "nfp", "rxResyncType": "sometimes" },\n  "traffic": { "records": 2, "recordSize": 10 }\n}\n');
  const r = tlsnic('run', f);
  t.is(r.code, 2);
  t.regex(r.err, new RegExp(`ScenarioError: ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:46: driver\\.rxResyncType: Invalid option`));
  const g = join(tmp, 'syntax.json');
  writeFileSync(g, '{ "name": "x",, }');
  const s = tlsnic('run', g);
  t.is(s.code, 2);
  t.regex(s.err, /syntax\.json:1:15: JSON syntax: expected a "key"/);
  t.is(tlsnic('run').code, 2);
  t.is(tlsnic('run', 'fixtures/scenarios/soak.json', '--flows', 'many').code, 2);
  t.regex(tlsnic('run', join(tmp, 'missing.json')).err, /cannot read scenario/);
});

test('--flows runs a soak scenario at the given size', (t) => {
  const r = tlsnic('run', 'fixtures/scenarios/soak.json', '--flows', '4');
  t.is(r.code, 0, r.err + r.out);
  t.regex(r.out, /mlx5 \(driver_req_async\), 4 flows: /);
  t.regex(r.out, /nfp\/driver_req \(driver_req\), 4 flows: /);
});

test('--seed replays a soak from the CLI; --seconds runs it by time; bad values are exit 2 naming the flag', (t) => {
  const run = (...a: string[]) => tlsnic('run', 'fixtures/scenarios/soak-faults.json', '--json', ...a);
  const one = run('--flows', '4', '--seed', '7');
  const two = run('--flows', '4', '--seed', '7');
  const other = run('--flows', '4', '--seed=8');
  t.is(one.code, 0, one.err + one.out);
  const key = (r: { out: string }) => JSON.stringify(JSON.parse(r.out).runs.map((x: { seed: number; bytes: number }) => [x.seed, x.bytes]));
  t.is(key(one), key(two));
  t.not(key(one), key(other));
  const timed = tlsnic('run', 'fixtures/scenarios/soak-faults.json', '--seconds', '1');
  t.is(timed.code, 0, timed.err + timed.out);
  for (const [flag, v] of [['--seconds', '0'], ['--seed', '-1'], ['--seed', '99999999999'], ['--seconds', 'x']] as const) {
    const r = tlsnic('run', 'fixtures/scenarios/soak.json', flag, v);
    t.is(r.code, 2, `${flag} ${v}`);
    t.regex(r.err, new RegExp(flag));
  }
});

test('--out writes the world\'s wire as a pcapng: every frame with what the link did to it, the lost one and its retransmission', (t) => {
  const file = join(tmp, 'world.pcapng');
  const r = tlsnic('run', 'fixtures/scenarios/loss-header.json', '--driver', 'nfp', '--out', file);
  t.is(r.code, 0, r.err + r.out);
  const packets = [...readCaptureBytes(readFileSync(file))];
  t.true(packets.length > 1000, `${packets.length} frames`);
  const v = new TcpSegmentView();
  let last = -1n;
  const seen = new Map<string, number>(); // "dir seq" -> times sent (a retransmission may carry more bytes)
  let dropped: string | null = null;
  for (const p of packets) {
    t.true(p.tsNs >= last, 'in the order the link carried them');
    last = p.tsNs;
    const m = /^(a>b|b>a) frame \d+: (.*)$/.exec(p.comment ?? '');
    if (!m) return t.fail(`packet ${p.number}: comment ${p.comment}`);
    if (v.parse(p.data) !== 'tcp') return t.fail(`packet ${p.number} is not TCP`);
    t.is(v.srcIp(), m[1] === 'a>b' ? '10.4.0.1' : '10.4.0.2');
    const k = `${m[1]} ${v.seq}`;
    seen.set(k, (seen.get(k) ?? 0) + 1);
    if (m[2] === 'dropped by the link') {
      t.is(dropped, null, 'the scenario drops one segment');
      dropped = k;
    }
  }
  t.not(dropped, null);
  t.true(seen.get(dropped!)! >= 2, 'the dropped segment is sent again');
  // One profile only, and no soak: otherwise it says what to do.
  const three = tlsnic('run', 'fixtures/scenarios/loss-header.json', '--out', file);
  t.is(three.code, 2);
  t.regex(three.err, /runs 3 driver profiles: pick one with --driver/);
  const soak = tlsnic('run', 'fixtures/scenarios/soak.json', '--driver', 'mlx5', '--out', file);
  t.is(soak.code, 2);
  t.regex(soak.err, /a soak runs many/);
});

test('--timeline draws the world: the dropped header, the loss of sync, the resync call and the recovery, in that order', (t) => {
  const file = join(tmp, 'world.html');
  const r = tlsnic('run', 'fixtures/scenarios/loss-header.json', '--driver', 'mlx5', '--timeline', file);
  t.is(r.code, 0, r.err + r.out);
  const html = readFileSync(file, 'utf8');
  t.false(/<script|(src|href)="https?:/.test(html), 'self-contained: no script, nothing fetched');
  // The scenario sends A to B only: one section, the other direction carried no data.
  const sections = [...html.matchAll(/<section class="flow"[\s\S]*?<\/section>/g)].map((m) => m[0]);
  t.is(sections.length, 1);
  const sec = sections[0]!;
  t.regex(sec, /<h2>#1 connection 0, A 10\.4\.0\.1 → B 10\.4\.0\.2:4433<\/h2>/);
  const [rx, tx] = [...sec.matchAll(/<svg class="timeline" data-dir="(rx|tx)"[\s\S]*?<\/svg>/g)].map((m) => m[0]);
  t.regex(rx!, /data-dir="rx"/);
  t.regex(tx!, /data-dir="tx"/);
  // The receiving chart tells the story in document (= time) order: the link drops a segment, the device
  // loses sync, asks for a resync, the stack calls tls_dev_resync, the device decrypts again.
  const at = (re: RegExp) => rx!.search(re);
  const order = [/class="mark impair" data-op="drop"/, /class="mark lost"/, /class="mark resync"/, /class="mark call" data-op="tls_dev_resync"/, /class="regained"/].map(at);
  t.false(order.includes(-1), `every step drawn: ${order}`);
  t.deepEqual([...order].sort((a, b) => a - b), order);
  // Its packets are the receiving device's: as many decrypted as ethtool on B says, the rest passed up encrypted.
  const j = JSON.parse(tlsnic('run', 'fixtures/scenarios/loss-header.json', '--driver', 'mlx5', '--json').out);
  const decrypted = (rx!.match(/<rect class="mark decrypted"/g) ?? []).length;
  t.is(decrypted, j.runs[0].hosts.b.ethtool.rx_tls_decrypted_packets);
  t.true((rx!.match(/<rect class="mark not-decrypted"/g) ?? []).length > 0);
  t.regex(sec, new RegExp(`RX at B: <b>${decrypted}</b> of \\d+ packets decrypted by the device; <b class="bad">RX lost sync 1× and regained it 1×</b>`));
  // The sending chart: A's device encrypted every data segment, the retransmission included.
  t.is((tx!.match(/<rect class="mark encrypted"/g) ?? []).length, j.runs[0].hosts.a.ethtool.tx_tls_encrypted_packets);
  // The calls table: mlx5's resync is asynchronous (the driver opens a request, the device's answer ends it,
  // then the stack's tls_dev_resync), in that order after the add. At the end B's RX context goes at its
  // close(), A's TX context only when A's socket is destroyed, its FIN acknowledged (tls_device_sk_destruct()).
  const calls = [...sec.matchAll(/<td>(RX|TX)<\/td><td><code>([AB]: [a-z_]+)\(/g)].map((m) => `${m[1]} ${m[2]}`);
  t.deepEqual(calls, ['RX B: tls_dev_add', 'TX A: tls_dev_add', 'RX B: tls_offload_rx_resync_async_request_start',
    'RX B: tls_offload_rx_resync_async_request_end', 'RX B: tls_dev_resync', 'RX B: tls_dev_del', 'TX A: tls_dev_del']);
  t.regex(sec, /<td>RX<\/td><td><code>B: tls_dev_resync\(rx, seq \d+, rec \d+\) = 0<\/code>/);
  t.regex(html, /host B \(mlx5_\w+\): ethtool -S\nNIC statistics:\n[\s\S]*rx_tls_resync_res_ok: 1\n/);
  // Without the impairment the device stays in sync: every received packet decrypted, nothing else drawn.
  const s = JSON.parse(readFileSync('fixtures/scenarios/loss-header.json', 'utf8'));
  Object.assign(s, { driver: { name: 'nfp' }, impairments: [], expect: {}, expectByProfile: undefined });
  const clean = join(tmp, 'clean.json');
  writeFileSync(clean, JSON.stringify(s));
  const quiet = tlsnic('run', clean, '--timeline', file);
  t.is(quiet.code, 0, quiet.err + quiet.out);
  const page = readFileSync(file, 'utf8');
  t.regex(page, /RX at B: <b>\d+<\/b> of \d+ packets decrypted by the device; <b class="ok">RX stayed in sync<\/b>/);
  t.false(/class="mark (impair|lost|not-decrypted)"|class="regained"/.test(page));
  const [m] = [...page.matchAll(/RX at B: <b>(\d+)<\/b> of (\d+) packets/g)];
  t.is(m![1], m![2]);
  // One world only, and a path it can write: otherwise exit 2 before anything runs.
  const three = tlsnic('run', 'fixtures/scenarios/loss-header.json', '--timeline', file);
  t.is(three.code, 2);
  t.regex(three.err, /--timeline draws the timeline of one world, and this scenario runs 3 driver profiles: pick one with --driver/);
  const nowhere = tlsnic('run', 'fixtures/scenarios/loss-header.json', '--driver', 'mlx5', '--timeline', join(tmp, 'no/such/dir/x.html'));
  t.is(nowhere.code, 2);
  t.regex(nowhere.err, /ConfigError: cannot write .*no\/such\/dir\/x\.html: ENOENT/);
  t.is(nowhere.out, '', 'refused before the run');
});

test('--timeline of a soak draws one world, run again from its seed: a loss never recovered first, else the longest recovery', (t) => {
  const file = join(tmp, 'soak.html');
  const faults = tlsnic('run', 'fixtures/scenarios/soak-faults.json', '--driver', 'mlx5', '--flows', '40', '--timeline', file);
  t.is(faults.code, 0, faults.err + faults.out);
  t.regex(faults.out, /40 flows: \d+ resyncs, .*, [1-9]\d* loss\(es\) of sync never recovered/);
  let page = readFileSync(file, 'utf8');
  const why = /world (\d+) of the soak \(seed (\d+), .*?\), the first with a loss of sync never recovered/.exec(page);
  t.truthy(why, page.slice(0, 2000));
  t.regex(page, /out of sync, not regained/);
  // No loss left unrecovered in this soak: the world with the longest recovery, as long as the report's max.
  const plain = tlsnic('run', 'fixtures/scenarios/soak.json', '--driver', 'nfp', '--flows', '40', '--timeline', file);
  t.is(plain.code, 0, plain.err + plain.out);
  const max = /recovery records min \d+ median \d+ p95 \d+ max (\d+)/.exec(plain.out);
  t.truthy(max, plain.out);
  page = readFileSync(file, 'utf8');
  t.regex(page, new RegExp(`world \\d+ of the soak \\(seed \\d+, .*?\\), the longest recovery: ${max![1]} records`));
  t.regex(page, /class="regained"/);
  t.notRegex(page, /not regained/);
  // --out still writes one world only.
  const out = tlsnic('run', 'fixtures/scenarios/soak.json', '--driver', 'mlx5', '--out', join(tmp, 'soak.pcapng'));
  t.is(out.code, 2);
  t.regex(out.err, /a soak runs many/);
});

test('--flows and --seconds on a single-run scenario are refused (they size soaks); --seed reseeds it', (t) => {
  for (const [flag, v] of [['--flows', '5'], ['--seconds', '3']] as const) {
    const r = tlsnic('run', 'fixtures/scenarios/loss-header.json', '--driver', 'nfp', flag, v);
    t.is(r.code, 2, flag);
    t.regex(r.err, new RegExp(`this scenario is a single run .*\\(at field ${flag}\\)`), flag);
  }
  const seeded = tlsnic('run', 'fixtures/scenarios/loss-header.json', '--driver', 'nfp', '--seed', '7', '--json');
  t.is(seeded.code, 0, seeded.err);
  t.is(JSON.parse(seeded.out).runs[0].seed, 7);
  t.is(JSON.parse(tlsnic('run', 'fixtures/scenarios/loss-header.json', '--driver', 'nfp', '--json').out).runs[0].seed, 102, 'the file\'s seed otherwise');
});

test('--timeline-window draws a stretch of the world\'s virtual time; exit 2 without --timeline or for a bad window', (t) => {
  const all = join(tmp, 'all.html');
  const part = join(tmp, 'part.html');
  t.is(tlsnic('run', 'fixtures/scenarios/loss-header.json', '--driver', 'mlx5', '--timeline', all).code, 0);
  const html = readFileSync(all, 'utf8');
  // Packet bars, their time in their tooltip (to the µs).
  const barTimes = (page: string) => [...page.matchAll(/<rect class="mark [a-z-]+"[^>]*><title>[^<]*t=(\d+\.\d+) s\)<\/title>/g)].map((m) => Number(m[1]));
  const times = barTimes(html);
  t.true(times.length > 10, `${times.length} timed marks`);
  // The middle third of the run.
  const [lo, hi] = [Math.min(...times), Math.max(...times)];
  // Between whole microseconds, so no bar sits on an edge.
  const from = Math.floor((lo + (hi - lo) / 3) * 1e6) / 1e6 + 5e-7;
  const to = Math.floor((lo + (2 * (hi - lo)) / 3) * 1e6) / 1e6 + 5e-7;
  const r = tlsnic('run', 'fixtures/scenarios/loss-header.json', '--driver', 'mlx5', '--timeline', part, '--timeline-window', `${from}:${to}`);
  t.is(r.code, 0, r.err);
  const page = readFileSync(part, 'utf8');
  const drawn = barTimes(page);
  t.true(drawn.length > 0 && drawn.length < times.length, `${drawn.length} of ${times.length}`);
  t.true(drawn.every((x) => x >= from && x <= to));
  t.is(drawn.length, times.filter((x) => x >= from && x <= to).length);
  t.regex(page, /drawn: [\d.]+ s to [\d.]+ s of virtual time \(--timeline-window/);
  t.is(tlsnic('run', 'fixtures/scenarios/loss-header.json', '--driver', 'mlx5', '--timeline-window', '1:2').code, 2);
  const bad = tlsnic('run', 'fixtures/scenarios/loss-header.json', '--driver', 'mlx5', '--timeline', part, '--timeline-window', '2:1');
  t.is(bad.code, 2);
  t.regex(bad.err, /--timeline-window needs FROM:TO in seconds of virtual time/);
});
