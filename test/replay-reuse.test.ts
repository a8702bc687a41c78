// A 4-tuple used by one connection after another (a client that reuses its port, TIME_WAIT reuse): the replay
// takes a client SYN with a new ISN as a new connection, closes the old one (tls_dev_del) and installs the new
// one's contexts. Made from tls12-many-v4 by moving later connections onto the first one's client port: each
// must be replayed with the bytes and counters of the unmodified capture. Before, the later connections were
// folded into the first: one row, their TX dropped by the device as out of sequence (tx_tls_drop_no_sync_data).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mlx5Driver } from '../driver-api/drivers/index.ts';
import { CAPTURES_DIR, loadManifest } from '../fixtures/manifest.ts';
import { replay, TIME_WAIT_NS, type ReplayResult } from '../cli/replay/engine.ts';
import { replayParallel } from '../cli/replay/parallel.ts';
import { replayScenarioSchema } from '../cli/replay/scenario-schema.ts';
import { toJson, toText } from '../cli/report.ts';
import { openCapture, PcapWriter, type CapturedPacket } from '../emulator/capture/index.ts';
import { TcpSegmentView } from '../emulator/wire/packet.ts';

const tmp = mkdtempSync(join(tmpdir(), 'tlsnic-reuse-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

const many = loadManifest(join(CAPTURES_DIR, 'tls12-many-v4.json'));
const original = join(many.dir, many.capture);
const keylog = join(many.dir, many.keylog);
const SERVER_PORT = 4776;
// Connections of the capture (by client port) that start after 55050 has closed, one after another.
const LATER = [55060, 55068, 55080];

/** The capture's packets, each passed to `edit` (a parsed copy; return false to leave it out), written to a new file. */
function rewrite(name: string, edit: (v: TcpSegmentView, p: CapturedPacket, i: number) => boolean | void, extra?: (w: PcapWriter, p: CapturedPacket, v: TcpSegmentView) => void): string {
  const pkts = [...openCapture(original, { copy: true })];
  const path = join(tmp, name);
  const w = new PcapWriter(path, { linkType: pkts[0]!.linkType });
  const v = new TcpSegmentView();
  pkts.forEach((p, i) => {
    if (v.parse(p.data) !== 'tcp') return void w.write({ data: p.data, tsNs: p.tsNs });
    if (edit(v, p, i) === false) return;
    w.write({ data: p.data, tsNs: p.tsNs });
    extra?.(w, p, v);
  });
  w.close();
  return path;
}

/** The client port of a parsed packet of the capture. */
const clientPort = (v: TcpSegmentView) => (v.srcPort === SERVER_PORT ? v.dstPort : v.srcPort);

/** Moves the connections of LATER onto client port 55050 (ports rewritten, TCP checksums made right again). */
function reused(v: TcpSegmentView): void {
  if (!LATER.includes(clientPort(v))) return;
  const at = v.l4Offset + (v.srcPort === SERVER_PORT ? 2 : 0);
  v.buf[at] = 55050 >>> 8;
  v.buf[at + 1] = 55050 & 0xff;
  v.updateTcpChecksum();
}

const run = (capture: string) => replay({ capture, keylog, local: null, driver: mlx5Driver, tls13: false });

/** What a connection's replay says about its bytes, without its client port. */
const bytesOf = (r: ReplayResult) => r.flows.map((f) => ({ local: f.local, version: f.version, cipher: f.cipher, tx: f.tx, rx: f.rx }));

test('later connections on a reused 4-tuple are connections of their own, with the bytes and counters of the capture without reuse', async (t) => {
  const [before, after] = await Promise.all([run(original), run(rewrite('reused.pcap', reused))]);
  t.is(after.flows.length, 14);
  t.is(after.flows.filter((f) => f.remote === '10.77.0.2:55050').length, 4);
  t.deepEqual(bytesOf(after), bytesOf(before));
  for (const f of after.flows) {
    t.true(f.tx.mode === 'hw' && f.rx.mode === 'hw' && f.tx.wireMatch, `${f.remote} ${f.tx.mode}/${f.rx.mode}`);
  }
  // Each received and sent stream is the one the fixture's manifest lists for the original client port.
  const ports = before.flows.map((f) => f.remote);
  after.flows.forEach((f, i) => {
    const c = many.connections.find((x) => x.client === ports[i])!;
    t.is(f.rx.plaintextSha256, c.clientToServer.sha256, ports[i]);
    t.is(f.tx.plaintextSha256, c.serverToClient.sha256, ports[i]);
  });
  t.deepEqual(after.ethtool, before.ethtool);
  t.deepEqual(after.tlsStat, before.tlsStat);
  t.is(after.ethtool.tx_tls_drop_no_sync_data, 0);
  t.is(after.ethtool.rx_tls_ctx, 14);
  // The three taken over say so, with the packet of the SYN that took the tuple; the last one does not.
  const on55050 = after.flows.filter((f) => f.remote === '10.77.0.2:55050');
  t.deepEqual(on55050.map((f) => f.problems.filter((p) => /took over its 4-tuple at packet \d+$/.test(p)).length), [1, 1, 1, 0]);
  t.regex(toText(after, 'mlx5'), /#\d+ a new connection took over its 4-tuple at packet \d+\n/);
});

test('CLI: --json numbers the reuses of a 4-tuple; --plaintext-dir writes each connection to files of its own', (t) => {
  const path = rewrite('reused-cli.pcap', reused);
  const dir = mkdtempSync(join(tmp, 'plain-'));
  const r = spawnSync(process.execPath, ['--import=tsx', 'cli/main.ts', 'replay', path, '--keylog', keylog, '--json', '--plaintext-dir', dir], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { flows: Array<{ remote: string; tupleReuse?: number }> };
  t.deepEqual(j.flows.filter((f) => f.remote === '10.77.0.2:55050').map((f) => f.tupleReuse), [undefined, 1, 2, 3]);
  t.false(j.flows.some((f) => f.remote !== '10.77.0.2:55050' && 'tupleReuse' in f));
  const files = readdirSync(dir).filter((f) => f.includes('10.77.0.2_55050')).sort();
  t.deepEqual(files, ['', '-2', '-3', '-4'].flatMap((n) => ['rx', 'tx'].map((d) => `10.77.0.1_4776_10.77.0.2_55050${n}.${d}.bin`)).sort());
  ['55050', ...LATER.map(String)].forEach((port, i) => {
    const c = many.connections.find((x) => x.client === `10.77.0.2:${port}`)!;
    const rx = readFileSync(join(dir, `10.77.0.1_4776_10.77.0.2_55050${i ? `-${i + 1}` : ''}.rx.bin`));
    t.is(createHash('sha256').update(rx).digest('hex'), c.clientToServer.sha256, port);
  });
});

test('a retransmitted SYN (the same ISN) stays in its connection', async (t) => {
  let syns = 0;
  const path = rewrite('syn-again.pcap', () => undefined, (w, p, v) => {
    // Every client SYN written twice.
    if (v.syn && !v.ackFlag) {
      syns++;
      w.write({ data: p.data, tsNs: p.tsNs + 1000n });
    }
  });
  t.is(syns, 14);
  const [before, after] = await Promise.all([run(original), run(path)]);
  t.is(after.flows.length, 14);
  t.deepEqual(bytesOf(after), bytesOf(before));
  t.deepEqual(after.ethtool, before.ethtool);
  t.false(after.flows.some((f) => f.problems.some((p) => /took over/.test(p))));
});

test('a connection whose SYN the capture missed ends with its FINs: the next SYN on its 4-tuple opens a new one', async (t) => {
  const path = rewrite('no-first-syn.pcap', (v) => {
    // 55050's own SYN and SYN-ACK left out (before LATER's move onto its port): its roles come from the ClientHello.
    if (clientPort(v) === 55050 && v.syn) return false;
    reused(v);
    return true;
  });
  const r = await run(path);
  const on55050 = r.flows.filter((f) => f.remote === '10.77.0.2:55050');
  t.is(on55050.length, 4);
  t.is(r.flows.length, 14);
  const c = many.connections.find((x) => x.client === '10.77.0.2:55050')!;
  t.is(on55050[0]!.rx.plaintextSha256, c.clientToServer.sha256);
  t.is(on55050[0]!.tx.plaintextSha256, c.serverToClient.sha256);
  for (const [i, port] of LATER.entries()) {
    const later = many.connections.find((x) => x.client === `10.77.0.2:${port}`)!;
    t.is(on55050[i + 1]!.rx.plaintextSha256, later.clientToServer.sha256, String(port));
  }
  t.is(r.ethtool.tx_tls_drop_no_sync_data, 0);
  // With workers, the queues that do not own the tuple see its FINs end it too (their connection numbers agree).
  const scenario = replayScenarioSchema.parse({ name: 'fins', impairments: [{ kind: 'drop', flow: 13, record: 1 }, { kind: 'drop', flow: 8, record: 0 }] });
  const one = await replay({ capture: path, keylog, local: null, driver: mlx5Driver, tls13: false, scenario });
  t.deepEqual(one.scenario!.impairments.map((x) => x.fired), [1, 1]);
  for (const workers of [2, 3]) {
    const par = await replayParallel({ capture: path, keylog, local: null, driver: 'mlx5', tls13: false, plaintextDir: null, workers, scenario });
    t.deepEqual(toJson(par), toJson(one), `--workers ${workers}`);
  }
});

test('--workers 2 and 3 on a reused 4-tuple: one thread\'s report and scenario outcome (other queues count the reuses)', async (t) => {
  const path = rewrite('reused-workers.pcap', reused);
  // The last connections of the capture: numbered after the four on 55050; a miscount hits another one.
  const scenario = replayScenarioSchema.parse({
    name: 'reuse', seed: 5, impairments: [
      { kind: 'drop', flow: 2, record: 1 }, { kind: 'drop', flow: 12, record: 1 }, { kind: 'reorder', flow: 13, record: 0 },
      { kind: 'random', loss: 0.02 },
    ],
  });
  const one = await replay({ capture: path, keylog, local: null, driver: mlx5Driver, tls13: false, scenario });
  t.is(one.scenario!.flows.length, 14);
  t.deepEqual(one.scenario!.impairments.slice(0, 3).map((x) => x.fired), [1, 1, 1]);
  for (const workers of [2, 3]) {
    const par = await replayParallel({ capture: path, keylog, local: null, driver: 'mlx5', tls13: false, plaintextDir: null, workers, scenario });
    t.deepEqual(toJson(par), toJson(one), `--workers ${workers}`);
    t.is(toText(par, 'mlx5'), toText(one, 'mlx5'));
  }
});

/** The capture with every packet from the first of each LATER connection on `gapNs` later than the one before. */
function reusedAfter(name: string, gapNs: bigint): string {
  let shift = 0n;
  const started = new Set<number>();
  return rewrite(name, (v, p) => {
    const port = clientPort(v);
    if (LATER.includes(port) && !started.has(port)) {
      started.add(port);
      shift += gapNs;
    }
    p.tsNs += shift;
    reused(v);
  });
}

test('a 4-tuple reused after TIME_WAIT (60 s): the old connection was let go, the new one is numbered as a reuse', async (t) => {
  const [before, late] = await Promise.all([run(original), run(reusedAfter('reused-late.pcap', TIME_WAIT_NS + 1_000_000_000n))]);
  t.is(late.flows.length, 14);
  t.deepEqual(bytesOf(late), bytesOf(before));
  const on55050 = late.flows.filter((f) => f.remote === '10.77.0.2:55050');
  t.deepEqual(on55050.map((f) => f.tupleReuse), [undefined, 1, 2, 3]);
  // Nothing took over a live connection: each one's state was gone when the next SYN came.
  t.false(late.flows.some((f) => f.problems.some((p) => /took over/.test(p))));
  t.deepEqual(late.ethtool, before.ethtool);
});

test('late packets of a closed connection: within TIME_WAIT they reach it (TX data not sent), after it they are strays of no connection', async (t) => {
  const pkts = [...openCapture(original, { copy: true })];
  const v = new TcpSegmentView();
  // The last segment with data the server (the local end) sent to 55050.
  const last = pkts.filter((p) => v.parse(p.data) === 'tcp' && v.srcPort === SERVER_PORT && v.dstPort === 55050 && v.payloadLength > 0).at(-1)!;
  const end = pkts.at(-1)!.tsNs;
  const withLate = (name: string, afterNs: bigint) => {
    const path = join(tmp, name);
    const w = new PcapWriter(path, { linkType: pkts[0]!.linkType });
    for (const p of pkts) w.write({ data: p.data, tsNs: p.tsNs });
    w.write({ data: last.data, tsNs: end + afterNs });
    w.close();
    return path;
  };
  const [before, soon, after] = await Promise.all([run(original), run(withLate('late-soon.pcap', 1_000_000_000n)), run(withLate('late-after.pcap', TIME_WAIT_NS + 1_000_000_000n))]);
  const of55050 = (r: ReplayResult) => r.flows.find((f) => f.remote === '10.77.0.2:55050')!;
  t.is(of55050(soon).tx.notSent, 1);
  t.true(of55050(soon).problems.some((p) => /came after the connection closed: not sent/.test(p)));
  t.is(after.flows.length, 14);
  t.deepEqual(after.flows, before.flows);
  t.deepEqual(after.ethtool, before.ethtool);
});

test('connections not replayed (--local names another end) are let go after TIME_WAIT too; numbering stays one thread\'s with --workers', async (t) => {
  const local = { ip: '10.77.0.2', port: 55050 };
  const soon = rewrite('reused-local.pcap', reused);
  const late = reusedAfter('reused-local-late.pcap', TIME_WAIT_NS + 1_000_000_000n);
  const [a, b] = await Promise.all([soon, late].map((capture) => replay({ capture, keylog, local, driver: mlx5Driver, tls13: false })));
  t.is(a.flows.length, 4);
  t.deepEqual(bytesOf(b!), bytesOf(a!));
  t.deepEqual(b!.flows.map((f) => f.tupleReuse), [undefined, 1, 2, 3]);
  // Under a scenario (nothing is evicted there) the queues count the other queues' connections as one thread.
  const scenario = replayScenarioSchema.parse({ name: 'late', seed: 2, impairments: [{ kind: 'drop', flow: 1, record: 1 }, { kind: 'drop', flow: 3, record: 0 }] });
  const one = await replay({ capture: late, keylog, local, driver: mlx5Driver, tls13: false, scenario });
  t.deepEqual(one.scenario!.impairments.map((x) => x.fired), [1, 1]);
  for (const workers of [2, 3]) {
    const par = await replayParallel({ capture: late, keylog, local, driver: 'mlx5', tls13: false, plaintextDir: null, workers, scenario });
    t.deepEqual(toJson(par), toJson(one), `--workers ${workers}`);
  }
});

test('--json-lines: each connection\'s report as it becomes final (TIME_WAIT after its end), then a summary; the same reports as --json', async (t) => {
  const path = reusedAfter('reused-lines.pcap', TIME_WAIT_NS + 1_000_000_000n);
  const whole = await run(path);
  // In the engine: a report is handed over while the capture is still being read, and the result keeps none.
  let lastPacket = 0;
  const got: Array<{ first: number; at: number; report: ReplayResult['flows'][number] }> = [];
  const streamed = await replay({
    capture: path, keylog, local: null, driver: mlx5Driver, tls13: false,
    onFrame: (f) => void (lastPacket = Math.max(lastPacket, f.packet)),
    onReport: (report, first) => got.push({ first, at: lastPacket, report }),
  });
  t.deepEqual(streamed.flows, []);
  t.true(got[0]!.at < whole.packets, 'the first report came before the last packet');
  t.deepEqual(got.map((g) => g.first).sort((a, b) => a - b), whole.flowFirstPackets);
  const byFirst = new Map(got.map((g) => [g.first, g.report]));
  t.deepEqual(whole.flowFirstPackets.map((p) => byFirst.get(p)), whole.flows);
  t.deepEqual(streamed.ethtool, whole.ethtool);
  // The CLI: one line per connection (its --json entry and firstPacket), the summary last.
  const cli = (...a: string[]) => spawnSync(process.execPath, ['--import=tsx', 'cli/main.ts', 'replay', path, '--keylog', keylog, ...a], { encoding: 'utf8' });
  const lines = cli('--json-lines');
  t.is(lines.status, 0, lines.stderr);
  const parsed = lines.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const json = JSON.parse(cli('--json').stdout);
  const { summary } = parsed.pop();
  const { flows, ...rest } = json;
  t.deepEqual(summary, { connections: 14, ...rest });
  t.deepEqual(parsed.sort((a, b) => a.firstPacket - b.firstPacket).map(({ firstPacket: _, ...f }) => f), flows);
  // With --workers each queue's lines as it makes them: the same lines, the same summary.
  for (const workers of ['2', '3']) {
    const par = cli('--json-lines', '--workers', workers);
    t.is(par.status, 0, par.stderr);
    const got = par.stdout.trim().split('\n').map((l) => JSON.parse(l));
    t.deepEqual(got.pop(), { summary: { connections: 14, ...rest } }, `--workers ${workers}`);
    t.deepEqual(got.sort((a, b) => a.firstPacket - b.firstPacket), parsed, `--workers ${workers}`);
  }
  // Options that need every connection at the end are refused.
  for (const bad of [['--json'], ['--timeline', join(tmp, 't.html')], ['--scenario', 'fixtures/replay-scenarios/drop-header.json']]) {
    const r = cli('--json-lines', ...bad);
    t.is(r.status, 2, bad.join(' '));
    t.regex(r.stderr, /ConfigError: --json-lines: /, bad.join(' '));
  }
  await t.throwsAsync(replay({ capture: path, keylog, local: null, driver: mlx5Driver, tls13: false, onReport: () => {}, scenario: replayScenarioSchema.parse({ name: 'x', impairments: [] }) }), { message: /scenario checks every connection/ });
});
