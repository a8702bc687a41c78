// The committed capture fixtures are what their manifests say: every manifest validates, its files exist,
// and an independent TLS implementation (Wireshark's, through tshark) decrypts each connection with the
// committed key log to exactly the application bytes the real client and server saw.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../emulator/errors.ts';
import { allManifests, loadManifest } from '../fixtures/manifest.ts';
import { hasTshark } from './helpers/tools.ts';

const manifests = allManifests();

test('at least seven fixtures cover TLS 1.2 and 1.3, AES-GCM-128/256 and ChaCha20, IPv4 and IPv6', (t) => {
  t.true(manifests.length >= 7);
  const conns = manifests.flatMap((m) => m.connections);
  for (const v of ['1.2', '1.3'] as const) t.true(conns.some((c) => c.version === v), `no TLS ${v}`);
  for (const c of ['aes-gcm-128', 'aes-gcm-256', 'chacha20-poly1305'] as const) t.true(conns.some((x) => x.cipher === c), `no ${c}`);
  t.true(conns.some((c) => c.server.startsWith('[')), 'no IPv6');
  for (const m of manifests) {
    t.true(existsSync(join(m.dir, m.capture)), `${m.name}: ${m.capture} missing`);
    t.true(existsSync(join(m.dir, m.keylog)), `${m.name}: ${m.keylog} missing`);
  }
});

test('a manifest that breaks the schema is a ConfigError naming the field', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tlsnic-manifest-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const good = JSON.parse(readFileSync(join(manifests[0]!.dir, `${manifests[0]!.name}.json`), 'utf8'));
  good.connections[0].cipher = 'aes-gcm-192';
  writeFileSync(join(dir, 'bad.json'), JSON.stringify(good));
  const e = t.throws(() => loadManifest(join(dir, 'bad.json')), { instanceOf: ConfigError });
  t.is(e?.where.field, 'connections.0.cipher');
});

/** tshark's "follow,tls,raw" of one TCP stream: the decrypted bytes each node sent. */
function tsharkFollow(capture: string, keylog: string, stream: number): { first: Buffer; second: Buffer } {
  // Out-of-order reassembly: a capture with losses (tls12-loss-v4) has gaps filled by later retransmissions.
  const out = execFileSync('tshark', ['-r', capture, '-o', `tls.keylog_file:${keylog}`, '-o', 'tcp.reassemble_out_of_order:TRUE', '-q', '-z', `follow,tls,raw,${stream}`], {
    encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'],
  });
  const first: Buffer[] = [];
  const second: Buffer[] = [];
  let body = false;
  for (const line of out.split('\n')) {
    if (line.startsWith('Node 1:')) {
      body = true;
      continue;
    }
    if (!body || line.startsWith('====') || line.trim() === '') continue;
    (line.startsWith('\t') ? second : first).push(Buffer.from(line.trim(), 'hex'));
  }
  return { first: Buffer.concat(first), second: Buffer.concat(second) };
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

for (const m of manifests) {
  test(`${m.name}: tshark decrypts every connection to the manifest's application bytes`, (t) => {
    if (!hasTshark) {
      t.log('tshark is not installed here (apt-get install tshark); .ci/run installs it. Nothing checked.');
      t.pass();
      return;
    }
    const seen = new Set<string>();
    for (let i = 0; i < m.connections.length; i++) {
      const f = tsharkFollow(join(m.dir, m.capture), join(m.dir, m.keylog), i);
      seen.add(`${sha(f.first)}|${sha(f.second)}`).add(`${sha(f.second)}|${sha(f.first)}`);
    }
    for (const c of m.connections) {
      t.true(seen.has(`${c.clientToServer.sha256}|${c.serverToClient.sha256}`), `${c.client} -> ${c.server}: tshark's plaintext differs from the manifest`);
    }
  });
}
