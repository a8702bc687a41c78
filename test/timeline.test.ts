// The `--timeline` page, read back from its HTML: one section per replayed flow; per flow as many decrypted /
// not-decrypted packet marks as the replay counted; on a capture where a record header arrives late (the
// segment delayed past later ones, as a loss before the NIC and its retransmission look), the device's
// sync loss, the shaded out-of-sync stretch, its end where decryption resumes, and every driver call the
// counters imply; and nothing on the page loads from the network.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openCapture, PcapWriter } from '../emulator/capture/index.ts';
import { mlx5Driver, nfpDriver, type DriverModule } from '../driver-api/drivers/index.ts';
import { replay, type ReplayResult } from '../cli/replay/engine.ts';
import { renderTimeline } from '../cli/timeline.ts';
import { WorldTimelineRecorder } from '../testbed/timeline.ts';
import { generateCapture } from '../bench/gen-capture.ts';

const tmp = mkdtempSync(join(tmpdir(), 'tlsnic-timeline-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));
const FIX = 'fixtures/captures/tls12-aes128-v4';

/**
 * The capture with packet `n` moved to just after packet `after`: the receiving NIC sees the segments
 * around it first (a loss before the NIC) and it later (the retransmission).
 */
function delayPacket(src: string, dst: string, n: number, after: number): void {
  const pkts = [...openCapture(src, { copy: true })];
  const w = new PcapWriter(dst, { linkType: pkts[0]!.linkType, resolution: 'ns' });
  const moved = pkts[n - 1]!;
  for (const p of pkts) {
    if (p.number === n) continue;
    w.write({ data: p.data, tsNs: p.tsNs });
    if (p.number === after) w.write({ data: moved.data, tsNs: p.tsNs + 1000n });
  }
  w.close();
}

// Packet 26 carries the header of the client's second record (seq 16673 in 16188..17636): delayed past
// packet 40, the device sees the next segment beyond a header it never parsed.
const LOSSY = join(tmp, 'late-header.pcap');
delayPacket(`${FIX}.pcap`, LOSSY, 26, 40);

type Section = { local: string; remote: string; html: string };

function sections(html: string): Section[] {
  return [...html.matchAll(/<section class="flow" data-flow="\d+" data-local="([^"]*)" data-remote="([^"]*)">([\s\S]*?)<\/section>/g)]
    .map((m) => ({ local: m[1]!.replace(/&#39;/g, "'"), remote: m[2]!, html: m[3]! }));
}

const count = (html: string, re: RegExp) => [...html.matchAll(re)].length;
const marks = (s: Section, kind: string) => count(s.html, new RegExp(`class="mark ${kind}"`, 'g'));
const calls = (html: string, op: string, dir?: string) => count(html, new RegExp(`<tr class="call" data-op="${op}" data-dir="${dir ?? '(rx|tx)'}">`, 'g'));

async function run(capture: string, keylog: string, driver: DriverModule): Promise<{ r: ReplayResult; html: string }> {
  const r = await replay({ capture, keylog, local: null, driver, tls13: false, timeline: true });
  return { r, html: renderTimeline(r) };
}

/** What every page must say: one section per flow, packet marks equal to the replay's own counts. */
function checkCounts(t: import('ava').ExecutionContext, r: ReplayResult, html: string): Section[] {
  const secs = sections(html);
  t.deepEqual(secs.map((s) => `${s.local}|${s.remote}`), r.flows.map((f) => `${f.local}|${f.remote}`));
  let decrypted = 0;
  r.flows.forEach((f, i) => {
    const s = secs[i]!;
    t.is(marks(s, 'decrypted'), f.rx.decrypted, `${f.local}: decrypted marks`);
    t.is(marks(s, 'not-decrypted'), f.rx.segments - f.rx.decrypted, `${f.local}: not-decrypted marks`);
    t.is(marks(s, 'encrypted') + marks(s, 'mismatch') + marks(s, 'drop') + marks(s, 'plain'), count(s.html, /<rect class="mark (encrypted|mismatch|drop|plain)"/g));
    t.is(marks(s, 'drop'), f.tx.dropped);
    decrypted += marks(s, 'decrypted');
  });
  t.is(decrypted, r.ethtool.rx_tls_decrypted_packets);
  // Driver calls: every tls_dev_add / tls_dev_del the counters saw is a row.
  t.is(calls(html, 'tls_dev_add', 'rx'), r.tlsStat.TlsRxDevice);
  t.is(calls(html, 'tls_dev_add', 'tx'), r.tlsStat.TlsTxDevice);
  t.is(calls(html, 'tls_dev_del', 'rx'), r.ethtool.rx_tls_del);
  t.is(calls(html, 'tls_dev_del', 'tx'), r.ethtool.tx_tls_del);
  t.is(calls(html, 'tls_dev_resync', 'rx'), r.tlsStat.TlsRxDeviceResync);
  // Self-contained: nothing fetched (the SVG namespace is a name, not a fetch).
  t.notRegex(html.replace(/xmlns="http:\/\/www\.w3\.org\/2000\/svg"/g, ''), /https?:|<script|<link|<img|@import|url\(/i);
  return secs;
}

test('a clean capture with 14 connections: a section per flow, marks equal the counters, no sync lost', async (t) => {
  const { r, html } = await run('fixtures/captures/tls12-many-v4.pcap', 'fixtures/captures/tls12-many-v4.keylog', mlx5Driver);
  t.true(r.flows.every((f) => f.rx.mode === 'hw' && f.rx.decrypted > 0));
  const secs = checkCounts(t, r, html);
  t.is(secs.length, 14);
  for (const s of secs) {
    t.is(marks(s, 'lost'), 0);
    t.is(count(s.html, /class="out-of-sync"/g), 0);
    t.regex(s.html, /RX stayed in sync/);
    t.is(calls(s.html, 'tls_dev_add', 'rx'), 1);
    t.is(calls(s.html, 'tls_dev_add', 'tx'), 1);
  }
});

for (const driver of [mlx5Driver, nfpDriver]) {
  test(`a late record header through ${driver.name}: sync lost, the out-of-sync stretch, resync calls, sync regained`, async (t) => {
    const { r, html } = await run(LOSSY, `${FIX}.keylog`, driver);
    const [s] = checkCounts(t, r, html);
    const f = r.flows[0]!;
    t.is(f.rx.mode, 'hw');
    t.true(f.rx.decrypted < f.rx.segments, 'the late header cost decryption');
    t.is(f.rx.plaintextBytes, 66981, 'and no data: the stack decrypted the rest in software');
    t.is(marks(s!, 'lost'), 1);
    t.is(count(s!.html, /class="out-of-sync"/g), 1);
    t.is(count(s!.html, /class="regained"/g), 1, 'the device decrypts again after the resync');
    t.regex(s!.html, /RX lost sync 1× and regained it 1×/);
    // The shaded stretch counts exactly the packets passed up encrypted after the loss.
    const passed = Number(/out of sync: (\d+) packets passed up encrypted/.exec(s!.html)?.[1]);
    t.true(passed > 0 && passed <= f.rx.segments - f.rx.decrypted);
    // The device's resync requests and the driver's calls to the stack, as the counters count them.
    t.is(count(s!.html, /device asks for resync/g), r.ethtool.rx_tls_resync_req_pkt);
    t.true(r.tlsStat.TlsRxDeviceResync! >= 1);
    if (driver === mlx5Driver) {
      t.is(calls(html, 'tls_offload_rx_resync_async_request_start', 'rx'), r.ethtool.rx_tls_resync_req_start);
      t.is(calls(html, 'tls_offload_rx_resync_async_request_end', 'rx'), r.ethtool.rx_tls_resync_req_end);
    } else {
      t.is(calls(html, 'tls_offload_rx_resync_request', 'rx'), r.ethtool.rx_tls_resync_req_pkt);
    }
    // In order: add, lost, request, tls_dev_resync, regained.
    const at = (re: RegExp) => s!.html.search(re);
    t.true(at(/class="mark lost"/) < at(/<line class="mark call" data-op="tls_dev_resync"/));
    t.true(at(/<line class="mark call" data-op="tls_dev_resync"/) < at(/class="regained"/));
  });
}

test('tlsnic replay --timeline writes the page', async (t) => {
  const out = join(tmp, 'page.html');
  await promisify(execFile)(process.execPath, ['--import=tsx', 'cli/main.ts', 'replay', LOSSY, '--keylog', `${FIX}.keylog`, '--timeline', out]);
  const html = readFileSync(out, 'utf8');
  t.regex(html, /^<!doctype html>/);
  t.is(sections(html).length, 1);
  t.regex(html, /sync lost/);
});

test('a connection with more events than the page draws: the first ones drawn, the rest counted and said', async (t) => {
  const o = { capture: `${FIX}.pcap`, keylog: `${FIX}.keylog`, local: null, driver: mlx5Driver, tls13: false, timeline: true } as const;
  const whole = await replay(o);
  const all = whole.timeline.filter((m) => m.flow === 1).length;
  t.true(all > 40, `${all} marks`);
  const cut = await replay({ ...o, limits: { timelineMarks: 40 } });
  t.deepEqual(cut.timeline.filter((m) => m.flow === 1), whole.timeline.filter((m) => m.flow === 1).slice(0, 40));
  const note = `timeline: the charts draw the first 40 events of this connection; ${all - 40} more are left out (at most 40 a connection and 1000000 in all are kept)`;
  t.true(cut.flows[0]!.problems.includes(note), cut.flows[0]!.problems.join(' / '));
  t.true(renderTimeline(cut).includes(`<li>${note}</li>`));
  t.false(whole.flows[0]!.problems.some((p) => p.startsWith('timeline:')));
});

test('a replay keeps at most its number of events in all: the rest are counted per connection and said', async (t) => {
  const o = { capture: 'fixtures/captures/tls12-many-v4.pcap', keylog: 'fixtures/captures/tls12-many-v4.keylog', local: null, driver: mlx5Driver, tls13: false, timeline: true } as const;
  const whole = await replay(o);
  const cut = await replay({ ...o, limits: { timelineKept: 300 } });
  t.is(cut.timeline.length, 300);
  // The first 300 events of the replay, whichever connection they were.
  t.deepEqual(cut.timeline.map((m) => `${m.flow} ${m.mark} ${m.seq}`), whole.timeline.slice(0, 300).map((m) => `${m.flow} ${m.mark} ${m.seq}`));
  let left = 0;
  cut.flows.forEach((f, i) => {
    const kept = cut.timeline.filter((m) => m.flow === i + 1).length;
    const all = whole.timeline.filter((m) => m.flow === i + 1).length;
    if (kept === all) {
      t.false(f.problems.some((p) => p.startsWith('timeline:')));
      return;
    }
    left += all - kept;
    t.true(f.problems.includes(`timeline: the charts draw the first ${kept} events of this connection; ${all - kept} more are left out (at most 20000 a connection and 300 in all are kept)`), f.problems.join(' / '));
  });
  t.is(left, whole.timeline.length - 300);
});

test('tlsnic run: the recorder keeps the first marks of a direction and counts the rest; contexts of no connection are not drawn', (t) => {
  let now = 0;
  const rec = new WorldTimelineRecorder(() => now, (port) => (port === 4433 ? 0 : null), 5);
  const tuple = (sport: number, dport: number) => ({ family: 4 as const, saddr: '10.4.0.2', daddr: '10.4.0.1', sport, dport });
  rec.nicEvent('b', { kind: 'ctx-add', ctx: 7, dir: 'rx', tuple: tuple(4433, 40000), startSeq: 1 });
  rec.nicEvent('b', { kind: 'ctx-add', ctx: 8, dir: 'rx', tuple: tuple(5555, 40001), startSeq: 1 }); // no such connection
  rec.nicEvent('a', { kind: 'ctx-add', ctx: 7, dir: 'tx', tuple: { ...tuple(40000, 4433), saddr: '10.4.0.1', daddr: '10.4.0.2' }, startSeq: 1 });
  for (let i = 0; i < 8; i++) {
    now += 10;
    rec.nicEvent('a', { kind: 'tx', ctx: 7, seq: 1 + i * 100, len: 100, encrypted: true });
    rec.nicEvent('b', { kind: 'rx', ctx: 7, seq: 1 + i * 100, len: 100, decrypted: i !== 3 });
    rec.nicEvent('b', { kind: 'rx', ctx: 8, seq: 1 + i * 100, len: 100, decrypted: true });
  }
  rec.nicEvent('b', { kind: 'ctx-del', ctx: 7, dir: 'rx' });
  rec.nicEvent('b', { kind: 'rx', ctx: 7, seq: 9999, len: 1, decrypted: true }); // the handle is free now: nobody's
  const dirs = rec.finish(() => null);
  t.is(dirs.length, 1);
  const d = dirs[0]!;
  t.deepEqual([d.flow, d.dir, d.marks.length, d.leftOut], [0, 'a>b', 5, 11]);
  t.deepEqual(d.marks.map((m) => `${m.dir} ${m.mark} ${m.seq}`), ['tx encrypted 1', 'rx decrypted 1', 'tx encrypted 101', 'rx decrypted 101', 'tx encrypted 201']);
  t.deepEqual(d.marks.map((m) => m.t), [10e-6, 10e-6, 20e-6, 20e-6, 30e-6]);
});

test('tlsnic run: a recorder with a window keeps only the marks of that stretch of virtual time, the cap counting from its start', (t) => {
  let now = 0;
  const rec = new WorldTimelineRecorder(() => now, (port) => (port === 4433 ? 0 : null), 3, { from: 25e-6, to: 65e-6 });
  const tuple = { family: 4 as const, saddr: '10.4.0.2', daddr: '10.4.0.1', sport: 4433, dport: 40000 };
  rec.nicEvent('b', { kind: 'ctx-add', ctx: 7, dir: 'rx', tuple, startSeq: 1 });
  for (let i = 0; i < 8; i++) {
    now += 10;
    rec.nicEvent('b', { kind: 'rx', ctx: 7, seq: 1 + i * 100, len: 100, decrypted: true });
  }
  const d = rec.finish(() => null)[0]!;
  // 30, 40, 50 and 60 µs fall in the window: the first three drawn, one left out; the rest not counted.
  t.deepEqual(d.marks.map((m) => m.t), [30e-6, 40e-6, 50e-6]);
  t.is(d.leftOut, 1);
});

test('--local naming a later connection\'s client: its section draws its own packets (marks are numbered as reported)', async (t) => {
  const g = generateCapture({ out: join(tmp, 'three.pcap'), keylog: join(tmp, 'three.keylog'), flows: 3, mib: 0.5, record: 16384, mss: 1448, seed: 4, cipher: 'aes128', tuples: 'random' });
  for (const [i, flow] of g.flows.entries()) {
    const ip = flow.client.slice(0, flow.client.lastIndexOf(':'));
    const r = await replay({ capture: g.options.out, keylog: g.options.keylog, local: { ip, port: null }, driver: mlx5Driver, tls13: false, timeline: true });
    t.is(r.flows.length, 1, `connection ${i}`);
    t.true(r.flows[0]!.rx.decrypted > 0);
    checkCounts(t, r, renderTimeline(r));
  }
});

test('a page of many connections draws at most its page-wide number of events, an equal share each, and says so', async (t) => {
  const { r } = await run('fixtures/captures/tls12-many-v4.pcap', 'fixtures/captures/tls12-many-v4.keylog', mlx5Driver);
  t.is(r.flows.length, 14);
  const html = renderTimeline(r, 140);
  const secs = sections(html);
  t.is(secs.length, 14);
  secs.forEach((s, i) => {
    const all = r.timeline.filter((m) => m.flow === i + 1).length;
    t.true(all > 10, `connection ${i + 1}: ${all} marks`);
    // Packets are bars, events are lines (and calls rows): ten of them in all.
    const drawn = count(s.html, /<rect class="mark /g) + count(s.html, /<line class="mark /g);
    t.is(drawn, 10, `connection ${i + 1}`);
    t.regex(s.html, new RegExp(`<li>this page draws 140 events over its 14 sections: here the first 10; ${all - 10} more are left out</li>`));
  });
  // Under the cap nothing is left out.
  t.false(renderTimeline(r).includes('more are left out'));
});

test('--timeline-window: only that stretch of capture time is drawn, so an event past the first ones can be seen', async (t) => {
  const o = { capture: LOSSY, keylog: `${FIX}.keylog`, local: null, driver: mlx5Driver, tls13: false, timeline: true } as const;
  const whole = await replay(o);
  const lost = whole.timeline.find((m) => m.mark === 'lost')!;
  t.truthy(lost, 'the late header loses sync');
  const before = whole.timeline.indexOf(lost);
  t.true(before > 10, `${before} events come before the loss`);
  // Ten events a connection: without a window the loss is not among them; from just before it, it is.
  const first = await replay({ ...o, limits: { timelineMarks: 10 } });
  t.false(first.timeline.some((m) => m.mark === 'lost'));
  const from = lost.t - 1e-6;
  const windowed = await replay({ ...o, limits: { timelineMarks: 10 }, timelineWindow: { from, to: Infinity } });
  t.deepEqual(windowed.timeline, whole.timeline.filter((m) => m.t >= from).slice(0, 10));
  t.true(windowed.timeline.some((m) => m.mark === 'lost'));
  // A closed window keeps exactly the marks inside it; the report and its counters are the whole capture's.
  const mid = { from: whole.timeline[5]!.t, to: lost.t };
  const closed = await replay({ ...o, timelineWindow: mid });
  t.deepEqual(closed.timeline, whole.timeline.filter((m) => m.t >= mid.from && m.t <= mid.to));
  t.true(closed.timeline.length < whole.timeline.length);
  t.deepEqual([closed.flows, closed.ethtool], [whole.flows, whole.ethtool]);
  t.regex(renderTimeline(closed), new RegExp(`drawn: ${mid.from} s to ${mid.to} s of capture time`));
});

test('--timeline-window from the CLI: the same page with --workers 2; exit 2 for a bad window or no --timeline', async (t) => {
  const many = 'fixtures/captures/tls12-many-v4';
  const cli = (...args: string[]) => promisify(execFile)(process.execPath, ['--import=tsx', 'cli/main.ts', 'replay', `${many}.pcap`, '--keylog', `${many}.keylog`, ...args])
    .then(() => 0, (e: { code: number; stderr: string }) => { t.log(e.stderr); return e.code; });
  t.is(await cli('--timeline', join(tmp, 'window-all.html')), 0);
  const pages = await Promise.all(['1', '2'].map(async (w) => {
    const out = join(tmp, `window-${w}.html`);
    t.is(await cli('--timeline', out, '--timeline-window', '0.03:0.09', '--workers', w), 0);
    return readFileSync(out, 'utf8');
  }));
  t.is(pages[0], pages[1]);
  t.regex(pages[0]!, /drawn: 0\.03 s to 0\.09 s of capture time/);
  const drawn = count(pages[0]!, /class="mark /g);
  t.true(drawn > 0 && drawn < count(readFileSync(join(tmp, 'window-all.html'), 'utf8'), /class="mark /g), `${drawn} marks drawn`);
  for (const bad of ['0.09:0.03', '1:1', 'x', '5', '-1:2']) t.is(await cli('--timeline', join(tmp, 'bad.html'), '--timeline-window', bad), 2, bad);
  t.is(await cli('--timeline-window', '1:2'), 2);
});
