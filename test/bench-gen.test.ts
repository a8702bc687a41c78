// bench/gen-capture.ts makes real TLS 1.2 captures: the replay finds every flow, its TX wire bytes equal the
// generated ones, and the plaintext it delivers and takes hashes to what the generator sealed; tshark
// decrypts every application byte with the key log.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCapture, type GenOptions, type GenResult } from '../bench/gen-capture.ts';
import { mlx5Driver, nfpDriver } from '../driver-api/drivers/index.ts';
import { replay } from '../cli/replay/engine.ts';
import { ConfigError } from '../emulator/errors.ts';
import { hasTshark } from './helpers/tools.ts';

const dir = mkdtempSync(join(tmpdir(), 'tlsnic-gen-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

function gen(name: string, o: Partial<GenOptions>): GenResult {
  return generateCapture({ out: join(dir, `${name}.pcap`), keylog: join(dir, `${name}.keylog`), flows: 4, mib: 2, record: 16384, mss: 1448, seed: 7, cipher: 'aes128', ...o });
}

const cases: Array<[string, Partial<GenOptions>]> = [
  ['aes128-16k', {}],
  ['aes256-small-records', { cipher: 'aes256', record: 100, mib: 0.25, mss: 536, flows: 3 }],
  ['many-flows-odd-sizes', { flows: 40, mib: 1.3, record: 5000, mss: 1000, seed: 99 }],
  ['random-tuples', { tuples: 'random', flows: 6, mib: 1 }],
  ['upload', { direction: 'upload', flows: 3, mib: 1 }],
];

for (const [name, o] of cases) {
  for (const driver of [mlx5Driver, nfpDriver]) {
    test(`generated capture ${name} replays through ${driver.name} with exact plaintext and wire bytes`, async (t) => {
      const g = gen(`${name}-${driver.name}`, o);
      t.is(g.flows.length, o.flows ?? 4);
      t.is(g.plaintextBytes, Math.floor((o.mib ?? 2) * 2 ** 20));
      const r = await replay({ capture: g.options.out, keylog: g.options.keylog, local: null, driver, tls13: false });
      t.is(r.packets, g.packets);
      t.deepEqual(r.problems, []);
      t.is(r.flows.length, g.flows.length);
      for (const want of g.flows) {
        // The local host is the side that accepted the connection: the server; TX is the download.
        const f = r.flows.find((x) => x.local === want.server && x.remote === want.client);
        if (!f) return t.fail(`no replayed flow for ${want.client}`);
        t.deepEqual(f.problems, [], want.client);
        t.is(f.version, '1.2');
        t.is(f.cipher, o.cipher === 'aes256' ? 'aes-gcm-256' : 'aes-gcm-128');
        t.is(f.tx.mode, 'hw');
        t.is(f.rx.mode, 'hw');
        t.true(f.tx.wireMatch, `${want.client}: ${f.tx.mismatched} TX segments differ`);
        t.is(f.tx.dropped, 0);
        t.is(f.tx.plaintextBytes, want.serverToClient.bytes);
        t.is(f.tx.plaintextSha256, want.serverToClient.sha256);
        t.is(f.rx.plaintextBytes, want.clientToServer.bytes);
        t.is(f.rx.plaintextSha256, want.clientToServer.sha256);
        t.is(f.rx.decrypted, f.rx.segments, `${want.client}: a clean capture is decrypted by the device throughout`);
      }
      // Every application record both ways, plus each direction's Finished and close_notify.
      t.is(r.tlsStat.TlsDecryptError, 0);
      t.true(r.ethtool.tx_tls_encrypted_bytes! >= g.flows.reduce((s, f) => s + f.serverToClient.bytes, 0));
    });
  }
}

test('--direction upload: the bulk goes client to server, so the replayed server mostly receives', (t) => {
  const down = gen('dir-download', { flows: 2, mib: 1 });
  const up = gen('dir-upload', { flows: 2, mib: 1, direction: 'upload' });
  t.is(up.plaintextBytes, down.plaintextBytes);
  for (const [g, bulk, other] of [[down, 'serverToClient', 'clientToServer'], [up, 'clientToServer', 'serverToClient']] as const) {
    for (const f of g.flows) t.true(f[bulk].bytes > 4 * f[other].bytes && f[other].bytes > 0, `${g.options.out}: ${f[bulk].bytes} vs ${f[other].bytes}`);
  }
  t.throws(() => gen('dir-bad', { direction: 'sideways' as 'upload' }), { instanceOf: ConfigError, message: /--direction must be download or upload/ });
});

test('the same seed makes the same capture; another seed another one', (t) => {
  const a = gen('seed-a', { mib: 0.5 });
  const b = gen('seed-b', { mib: 0.5 });
  const c = gen('seed-c', { mib: 0.5, seed: 8 });
  t.deepEqual(a.flows, b.flows);
  t.notDeepEqual(a.flows, c.flows);
});

test('random tuples: distinct clients in 10/8 on ephemeral ports, a function of the seed; only the tuples differ from the sequential layout', (t) => {
  const endpoint = (e: string) => {
    const [ip, port] = e.split(':') as [string, string];
    return { octets: ip.split('.').map(Number), port: Number(port) };
  };
  const a = gen('tuples-a', { mib: 0.1, flows: 64, record: 1000, tuples: 'random' });
  const b = gen('tuples-b', { mib: 0.1, flows: 64, record: 1000, tuples: 'random' });
  const seq = gen('tuples-seq', { mib: 0.1, flows: 64, record: 1000, tuples: 'sequential' });
  t.deepEqual(a.flows, b.flows);
  t.is(new Set(a.flows.map((f) => f.client)).size, 64);
  for (const f of a.flows) {
    const { octets, port } = endpoint(f.client);
    t.is(octets[0], 10, f.client);
    t.true(port >= 32768 && port <= 60999, f.client);
    t.not(f.client.split(':')[0], f.server.split(':')[0]);
  }
  // Not the old structure: clients spread over the /8, not 10.128.0.x.
  t.true(new Set(a.flows.map((f) => endpoint(f.client).octets[1])).size > 16);
  t.deepEqual(seq.flows.map((f) => f.client), seq.flows.map((_, i) => `10.128.0.${i + 1}:${1024 + i}`));
  t.deepEqual(a.flows.map((f) => [f.clientToServer, f.serverToClient]), seq.flows.map((f) => [f.clientToServer, f.serverToClient]));
  // generateCapture() without the option keeps the layout its earlier callers were written against.
  t.deepEqual(gen('tuples-default', { mib: 0.1, flows: 64, record: 1000 }).flows, seq.flows);
});

test('bad generator options are ConfigErrors naming the option', (t) => {
  for (const [o, field] of [[{ flows: 0 }, '--flows'], [{ record: 16385 }, '--record'], [{ mss: 10 }, '--mss'], [{ mib: -1 }, '--mib'], [{ cipher: 'rc4' as 'aes128' }, '--cipher'], [{ tuples: 'ring' as 'random' }, '--tuples']] as const) {
    const e = t.throws(() => gen('bad', o), { instanceOf: ConfigError });
    t.is(e?.where.field, field);
  }
});

test('tshark decrypts every application byte of a generated capture with the key log', (t) => {
  if (!hasTshark) {
    t.log('tshark not installed: skipped');
    t.pass();
    return;
  }
  const g = gen('tshark', { flows: 5, mib: 1.5, record: 7000, seed: 3, cipher: 'aes256' });
  const res = spawnSync('tshark', ['-r', g.options.out, '-o', `tls.keylog_file:${g.options.keylog}`, '-Y', 'tls', '-T', 'fields', '-e', 'tcp.stream', '-e', 'data.len'], { encoding: 'utf8' });
  t.is(res.status, 0, res.stderr);
  const perStream = new Map<number, number>();
  for (const line of res.stdout.split('\n')) {
    const [stream, lens] = line.split('\t');
    if (!lens) continue;
    for (const n of lens.split(',')) perStream.set(Number(stream), (perStream.get(Number(stream)) ?? 0) + Number(n));
  }
  t.is([...perStream.values()].reduce((s, n) => s + n, 0), g.plaintextBytes);
  // tcp.stream numbers follow first appearance: the generator opens flows in order.
  t.deepEqual([...perStream.keys()].sort((a, b) => a - b), g.flows.map((_, i) => i));
  g.flows.forEach((f, i) => t.is(perStream.get(i), f.clientToServer.bytes + f.serverToClient.bytes, f.client));
});
