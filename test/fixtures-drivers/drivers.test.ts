// `--driver <module path>`: third-party driver modules load the way mlx5/nfp do (a default-exported
// DriverModule), from the CLI run from source and from the esbuild bundle a user runs (dist/tlsnic.mjs):
// a plain-JavaScript RX-only driver offloads RX (and resyncs after a late record header) while the stack
// keeps TX in software; a TypeScript wrapper around mlx5 sees every tlsdev_ops call; bad modules are a
// ConfigError (exit 2), never a crash.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { loadManifest } from '../../fixtures/manifest.ts';
import { openCapture, PcapWriter } from '../../emulator/capture/index.ts';

const run = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), 'tlsnic-drivers-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));
const FIX = 'fixtures/captures/tls12-aes128-v4';
const manifest = loadManifest(`${FIX}.json`).connections[0]!;
const BUNDLE = join(tmp, 'tlsnic.mjs');

// The bundle and its replay worker as scripts/build.mjs makes them, into a private path (other tests may
// rebuild dist/).
const common = {
  bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'warning',
  banner: { js: "import { createRequire as __tlsnicCreateRequire } from 'node:module';\nconst require = __tlsnicCreateRequire(import.meta.url);" },
} as const;
const bundled = Promise.all([
  build({ ...common, entryPoints: ['cli/main.ts'], outfile: BUNDLE }),
  build({ ...common, entryPoints: ['cli/replay/worker.ts'], outfile: join(tmp, 'tlsnic-replay-worker.mjs') }),
]);

/** 'bundle+tsx': the bundle with a TypeScript loader, so a .ts driver loads and brings copies of our modules. */
async function cli(entry: 'source' | 'bundle' | 'bundle+tsx', ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const argv = entry === 'source' ? ['--import=tsx', 'cli/main.ts', ...args] : entry === 'bundle' ? [BUNDLE, ...args] : ['--import=tsx', BUNDLE, ...args];
  if (entry !== 'source') await bundled;
  try {
    const r = await run(process.execPath, argv, { encoding: 'utf8', maxBuffer: 64 << 20 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: x.code ?? -1, out: x.stdout ?? '', err: x.stderr ?? '' };
  }
}

for (const entry of ['source', 'bundle'] as const) {
  test(`${entry}: a plain-JS RX-only driver module offloads RX; TX stays in software`, async (t) => {
    const r = await cli(entry, 'replay', `${FIX}.pcap`, '--keylog', `${FIX}.keylog`, '--driver', 'test/fixtures-drivers/rx-only.mjs', '--json');
    t.is(r.code, 0, r.err);
    const j = JSON.parse(r.out);
    const f = j.flows[0];
    t.is(f.rx.mode, 'hw');
    t.is(f.rx.plaintextSha256, manifest.clientToServer.sha256);
    t.is(f.rx.decrypted, f.rx.segments);
    t.is(j.ethtool.rx_tls_decrypted_packets, f.rx.decrypted);
    t.is(f.tx.mode, 'sw');
    t.regex(f.tx.reason, /rxonly0 feature tls-hw-tx-offload off/);
    t.true(f.tx.wireMatch, 'software TX still puts the captured bytes on the wire');
    t.is(j.ethtool.tx_tls_ctx, 0);
    t.is(j.tlsStat.TlsRxDevice, 1);
    t.is(j.tlsStat.TlsTxSw, 1);
  });
}

test('bundle: the RX-only driver resyncs after a late record header (the device scan, tls_dev_resync)', async (t) => {
  // Packet 26 carries a record header; delivered after packet 40 the device loses sync and must rescan.
  const lossy = join(tmp, 'late-header.pcap');
  const pkts = [...openCapture(`${FIX}.pcap`, { copy: true })];
  const w = new PcapWriter(lossy, { linkType: pkts[0]!.linkType, resolution: 'ns' });
  for (const p of pkts) {
    if (p.number !== 26) w.write({ data: p.data, tsNs: p.tsNs });
    if (p.number === 40) w.write({ data: pkts[25]!.data, tsNs: p.tsNs + 1000n });
  }
  w.close();
  const r = await cli('bundle', 'replay', lossy, '--keylog', `${FIX}.keylog`, '--driver', 'test/fixtures-drivers/rx-only.mjs', '--json');
  t.is(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  t.is(j.flows[0].rx.plaintextSha256, manifest.clientToServer.sha256);
  t.true(j.flows[0].rx.decrypted < j.flows[0].rx.segments);
  t.is(j.ethtool.rx_tls_resync_req_pkt, 1);
  t.is(j.ethtool.rx_tls_resync_res_ok, 1);
  t.is(j.tlsStat.TlsRxDeviceResync, 1);
  // decryption resumed after the resync: more decrypted packets than before the late header (14)
  t.true(j.flows[0].rx.decrypted > 14);
});

test('source: a TypeScript module wrapping mlx5 sees every tlsdev_ops call, and replays like mlx5', async (t) => {
  const [wrapped, plain] = await Promise.all([
    cli('source', 'replay', `${FIX}.pcap`, '--keylog', `${FIX}.keylog`, '--driver', 'test/fixtures-drivers/counting-mlx5.ts', '--json'),
    cli('source', 'replay', `${FIX}.pcap`, '--keylog', `${FIX}.keylog`, '--driver', 'mlx5', '--json'),
  ]);
  t.is(wrapped.code, 0, wrapped.err);
  t.is(wrapped.err, 'counting-mlx5: tls_dev_add=2 tls_dev_del=2 tls_dev_resync=0\n');
  t.deepEqual(JSON.parse(wrapped.out), JSON.parse(plain.out));
});

test('bundle: a TypeScript driver node cannot import, or a module without a default export, is a ConfigError (exit 2)', async (t) => {
  const ts = await cli('bundle', 'replay', `${FIX}.pcap`, '--keylog', `${FIX}.keylog`, '--driver', 'test/fixtures-drivers/counting-mlx5.ts');
  if (ts.code === 0) {
    t.log('this node imports TypeScript itself: the .ts driver loaded from the bundle');
    t.regex(ts.err, /counting-mlx5: tls_dev_add=2/);
  } else {
    t.is(ts.code, 2);
    t.regex(ts.err, /ConfigError: cannot load driver module: .*counting-mlx5\.ts/);
  }
  const bad = await cli('bundle', 'replay', `${FIX}.pcap`, '--keylog', `${FIX}.keylog`, '--driver', 'test/fixtures-drivers/no-default.mjs');
  t.is(bad.code, 2);
  t.regex(bad.err, /ConfigError: driver module must default-export \{ name: string, probe\(nic, kernel, opts\) \}.*no-default\.mjs/);
  const missing = await cli('bundle', 'replay', `${FIX}.pcap`, '--keylog', `${FIX}.keylog`, '--driver', join(tmp, 'nope.mjs'));
  t.is(missing.code, 2);
  t.regex(missing.err, /ConfigError: cannot load driver module/);
});

test('bundle+tsx: a TypeScript driver throwing our ConfigError from its own copy of the sources is exit 2, not an internal error', async (t) => {
  const args = ['replay', `${FIX}.pcap`, '--keylog', `${FIX}.keylog`, '--driver', 'test/fixtures-drivers/tls13-only.ts'];
  for (const entry of ['source', 'bundle+tsx'] as const) {
    const r = await cli(entry, ...args);
    t.is(r.code, 2, `${entry}: ${r.err}`);
    t.is(r.err, 'tlsnic: ConfigError: tls13-only: this device has no TLS 1.3 offload (run with --tls13) (at field nic.profile.tls13)\n', entry);
  }
  // Two copies of the driver API side by side: the TypeScript wrapper of mlx5 replays under the bundle as mlx5 does.
  const [wrapped, plain] = await Promise.all([
    cli('bundle+tsx', 'replay', `${FIX}.pcap`, '--keylog', `${FIX}.keylog`, '--driver', 'test/fixtures-drivers/counting-mlx5.ts', '--json'),
    cli('bundle', 'replay', `${FIX}.pcap`, '--keylog', `${FIX}.keylog`, '--driver', 'mlx5', '--json'),
  ]);
  t.is(wrapped.code, 0, wrapped.err);
  t.deepEqual(JSON.parse(wrapped.out), JSON.parse(plain.out));
});

test('bundle+tsx: with --workers 2 every worker loads the TypeScript driver too; same report as one thread', async (t) => {
  // 14 connections over two RSS queues: both workers replay some, each with its own copy of the driver.
  const many = 'fixtures/captures/tls12-many-v4';
  const args = ['replay', `${many}.pcap`, '--keylog', `${many}.keylog`, '--json'];
  const [two, one] = await Promise.all([
    cli('bundle+tsx', ...args, '--driver', 'test/fixtures-drivers/counting-mlx5.ts', '--workers', '2'),
    cli('bundle', ...args, '--driver', 'mlx5'),
  ]);
  t.is(two.code, 0, two.err);
  t.deepEqual(JSON.parse(two.out), JSON.parse(one.out));
  // The main thread loads the module to check it (no calls); each worker's copy counts its own connections.
  const adds = [...two.err.matchAll(/^counting-mlx5: tls_dev_add=(\d+) /gm)].map((m) => Number(m[1]));
  t.is(adds.length, 3, two.err);
  t.is(adds.filter((n) => n > 0).length, 2, `both queues replayed connections: ${two.err}`);
  const j = JSON.parse(one.out);
  t.is(adds.reduce((a, b) => a + b, 0), j.ethtool.rx_tls_ctx + j.ethtool.tx_tls_ctx);
  // The driver's typed error from inside a worker: exit 2 with its message, as with one thread.
  const refused = await cli('bundle+tsx', 'replay', `${FIX}.pcap`, '--keylog', `${FIX}.keylog`, '--driver', 'test/fixtures-drivers/tls13-only.ts', '--workers', '2');
  t.is(refused.code, 2, refused.err);
  t.regex(refused.err, /^tlsnic: ConfigError: tls13-only: this device has no TLS 1.3 offload \(run with --tls13\)/);
});
