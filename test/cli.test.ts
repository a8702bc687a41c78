// The command line on real and on bad input: what a user sees, and the exit code scripts depend on
// (0 replayed, 1 nothing replayable, 2 bad input). Runs cli/main.ts as a process, as a user would.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PcapWriter } from '../emulator/capture/index.ts';
import { loadManifest } from '../fixtures/manifest.ts';

const FIX = 'fixtures/captures/tls12-aes128-v4';
const tmp = mkdtempSync(join(tmpdir(), 'tlsnic-cli-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

function tlsnic(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import=tsx', 'cli/main.ts', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('--json replay of a fixture reports the manifest plaintext and a byte-exact TX wire', (t) => {
  const r = tlsnic('replay', `${FIX}.pcap`, '--keylog', `${FIX}.keylog`, '--json');
  t.is(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  const m = loadManifest(`${FIX}.json`).connections[0]!;
  t.is(j.flows.length, 1);
  t.is(j.flows[0].rx.plaintextSha256, m.clientToServer.sha256);
  t.is(j.flows[0].tx.plaintextSha256, m.serverToClient.sha256);
  t.true(j.flows[0].tx.wireMatch);
  t.is(j.tlsStat.TlsTxDevice, 1);
});

test('not a capture: exit 2 and a CaptureError naming the file, offset and the bytes found', (t) => {
  const bad = join(tmp, 'bad.pcap');
  writeFileSync(bad, 'hello, not a pcap\n');
  const r = tlsnic('replay', bad, '--keylog', `${FIX}.keylog`);
  t.is(r.code, 2);
  t.regex(r.err, /CaptureError: not a pcap or pcapng file: first bytes are 68 65 6c 6c .*bad\.pcap, offset 0/);
});

test('a truncated capture replays what came before and says where it was cut', (t) => {
  const cut = join(tmp, 'cut.pcap');
  writeFileSync(cut, readFileSync(`${FIX}.pcap`).subarray(0, 100_000));
  const r = tlsnic('replay', cut, '--keylog', `${FIX}.keylog`);
  t.is(r.code, 0, r.err);
  t.regex(r.out, /capture truncated at offset \d+: .*replayed what came before/);
  t.notRegex(r.out, /never queued/);
});

test('an unreadable link type is reported with a count, and nothing replayable exits 1', (t) => {
  const p = join(tmp, 'lt147.pcap');
  const w = new PcapWriter(p, { linkType: 147 });
  for (let i = 0; i < 3; i++) w.write({ data: new Uint8Array(60), tsNs: BigInt(i) * 1000n });
  w.close();
  const r = tlsnic('replay', p, '--keylog', `${FIX}.keylog`);
  t.is(r.code, 1);
  t.regex(r.out, /3 packet\(s\) skipped: link type 147 is not one tlsnic reads/);
});

test('bad arguments and a missing key log: exit 2 with what is wrong', (t) => {
  let r = tlsnic('replay', `${FIX}.pcap`, '--bogus');
  t.is(r.code, 2);
  t.regex(r.err, /unknown option --bogus/);
  r = tlsnic('replay', `${FIX}.pcap`, '--keylog', join(tmp, 'nope.keylog'));
  t.is(r.code, 2);
  t.regex(r.err, /cannot read key log/);
  r = tlsnic('replay', `${FIX}.pcap`, '--keylog', `${FIX}.keylog`, '--local', '10.0.0.1:99999');
  t.is(r.code, 2);
  t.regex(r.err, /port 99999 out of range/);
});

test('an output that cannot be written is exit 2 naming the file, before the replay runs', (t) => {
  // Under a regular file: ENOTDIR for every output, whoever runs the test (root may create missing directories).
  const file = join(tmp, 'a-file');
  writeFileSync(file, 'x');
  for (const [flag, where] of [['--out', `${file}/x.pcapng`], ['--timeline', `${file}/t.html`], ['--plaintext-dir', `${file}/p`]] as const) {
    const r = tlsnic('replay', `${FIX}.pcap`, '--keylog', `${FIX}.keylog`, flag, where);
    t.is(r.code, 2, `${flag}: ${r.err}`);
    t.regex(r.err, new RegExp(`^tlsnic: ConfigError: cannot write ${where.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: ENOTDIR`), flag);
    t.is(r.out, '', `${flag}: no replay report: it failed before replaying`);
  }
  const run = tlsnic('run', 'fixtures/scenarios/loss-header.json', '--driver', 'nfp', '--out', `${file}/w.pcapng`);
  t.is(run.code, 2);
  t.regex(run.err, /cannot write .*w\.pcapng: ENOTDIR/);
});

test('--local: an address that is none is exit 2 naming --local; IPv6 in any spelling picks the same host', (t) => {
  for (const bad of ['999.1.1.1', 'fd77::zz', '1.2.3', '10.77.0.2:70000']) {
    const r = tlsnic('replay', `${FIX}.pcap`, '--keylog', `${FIX}.keylog`, '--local', bad);
    t.is(r.code, 2, bad);
    t.regex(r.err, /^tlsnic: ConfigError: .*\(at field --local\)$/m, bad);
  }
  const V6 = 'fixtures/captures/tls12-aes256-v6';
  const spellings = ['fd77::2', 'FD77:0:0::2', '[fd77:0:0:0:0:0:0:2]', '[FD77::2]'];
  const locals = spellings.map((l) => {
    const r = tlsnic('replay', `${V6}.pcap`, '--keylog', `${V6}.keylog`, '--local', l, '--json');
    t.is(r.code, 0, `${l}: ${r.err}`);
    return (JSON.parse(r.out) as { flows: Array<{ local: string }> }).flows.map((f) => f.local);
  });
  for (const l of locals) t.deepEqual(l, locals[0]);
  t.regex(locals[0]![0]!, /^\[fd77::2\]:\d+$/);
  // An address of neither end: nothing replayed (exit 1), and the note says why, with --workers too.
  for (const workers of ['1', '2']) {
    const none = tlsnic('replay', `${FIX}.pcap`, '--keylog', `${FIX}.keylog`, '--local', '10.9.9.9', '--workers', workers);
    t.is(none.code, 1);
    t.regex(none.out, /notes:\n {2}no TLS connection has an end at --local 10\.9\.9\.9\n/);
  }
});

test('a key log without the connection\'s key: exit 1, and the note says so (not that there was no handshake)', (t) => {
  const empty = join(tmp, 'empty.keylog');
  writeFileSync(empty, '');
  const r = tlsnic('replay', `${FIX}.pcap`, '--keylog', empty);
  t.is(r.code, 1, r.err);
  t.regex(r.out, /#1 no key for client random [0-9a-f]{16}… in the key log/);
  t.notRegex(r.out, /no TLS handshake found/);
  const none = tlsnic('replay', `${FIX}.pcap`);
  t.is(none.code, 1);
  t.regex(none.out, /#1 no key log given/);
  t.notRegex(none.out, /no TLS handshake found/);
});
