// The key schedule on real bytes: a Node (OpenSSL) TLS client and server talk through a recording TCP proxy
// on 127.0.0.1; from the client's key log and the recorded hellos we derive keys with emulator/tls/keys.ts
// and open every protected record with openRecord, which must give back exactly the application bytes sent.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { nobleBackend, nodeBackend } from '../emulator/crypto/index.ts';
import { CIPHER_DESC, TLS_1_2_VERSION, TLS_1_3_VERSION, type CryptoInfo } from '../emulator/tls/crypto-info.ts';
import { HS_CLIENT_HELLO, HS_SERVER_HELLO, parseHandshakeMessages, type ClientHello, type ServerHello } from '../emulator/tls/handshake.ts';
import { parseKeyLog } from '../emulator/tls/keylog.ts';
import { cipherSuiteInfo, tls12KeyBlock, tls13TrafficKeys } from '../emulator/tls/keys.ts';
import { explicitNonceFor, openRecord } from '../emulator/tls/record-crypto.ts';
import {
  CONTENT_APPLICATION_DATA, CONTENT_CHANGE_CIPHER_SPEC, CONTENT_HANDSHAKE, TLS_HEADER_SIZE, parseRecordHeader,
} from '../emulator/tls/record.ts';
import { Prng } from './helpers/prng.ts';

const dir = mkdtempSync(join(tmpdir(), 'tlsnic-cert-'));
function selfSigned(name: string, keyArgs: string[]): { key: Buffer; cert: Buffer } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.crt`);
  execFileSync('openssl', ['req', '-x509', ...keyArgs, '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=localhost', '-days', '1'], { stdio: 'ignore' });
  return { key: readFileSync(key), cert: readFileSync(cert) };
}
const EC = selfSigned('ec', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']);
const RSA = selfSigned('rsa', ['-newkey', 'rsa:2048']);
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

type Conversation = { c2s: Uint8Array; s2c: Uint8Array; keylog: string; sentC2s: Uint8Array; sentS2c: Uint8Array };

/** One TLS connection through a recording proxy: the client sends `request`, the server answers `response`. */
async function converse(opts: { version: 'TLSv1.2' | 'TLSv1.3'; ciphers: string; creds: { key: Buffer; cert: Buffer }; seed: number }): Promise<Conversation> {
  const rng = new Prng(opts.seed);
  const request = [rng.bytes(100), rng.bytes(40_000), rng.bytes(1)];
  const response = rng.bytes(20_000);
  const wantRequest = request.reduce((n, b) => n + b.length, 0);
  const c2s: Buffer[] = [];
  const s2c: Buffer[] = [];
  let keylog = '';

  const server = tls.createServer({ ...opts.creds, minVersion: opts.version, maxVersion: opts.version, ciphers: opts.ciphers }, (sock) => {
    let got = 0;
    sock.on('data', (d: Buffer) => {
      got += d.length;
      if (got === wantRequest) sock.end(response);
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const serverPort = (server.address() as net.AddressInfo).port;

  let proxyDone!: () => void;
  const proxyClosed = new Promise<void>((r) => (proxyDone = r));
  const proxy = net.createServer((down) => {
    const up = net.connect(serverPort, '127.0.0.1');
    let closed = 0;
    const onClose = () => ++closed === 2 && proxyDone();
    down.on('data', (d: Buffer) => { c2s.push(Buffer.from(d)); up.write(d); });
    up.on('data', (d: Buffer) => { s2c.push(Buffer.from(d)); down.write(d); });
    down.on('end', () => up.end());
    up.on('end', () => down.end());
    down.on('close', onClose);
    up.on('close', onClose);
    down.on('error', () => {});
    up.on('error', () => {});
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const proxyPort = (proxy.address() as net.AddressInfo).port;

  const received: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const client = tls.connect({
      host: '127.0.0.1', port: proxyPort, servername: 'localhost', rejectUnauthorized: false,
      minVersion: opts.version, maxVersion: opts.version, ciphers: opts.ciphers,
    });
    client.on('keylog', (line: Buffer) => (keylog += line.toString('latin1')));
    client.on('secureConnect', () => {
      for (const b of request) client.write(b);
    });
    client.on('data', (d: Buffer) => received.push(d));
    client.on('end', () => client.end());
    client.on('close', () => resolve());
    client.on('error', reject);
  });
  await proxyClosed;
  server.close();
  proxy.close();
  if (Buffer.compare(Buffer.concat(received), Buffer.from(response)) !== 0) throw new Error('the real TLS peers did not exchange the response');
  return {
    c2s: new Uint8Array(Buffer.concat(c2s)), s2c: new Uint8Array(Buffer.concat(s2c)), keylog,
    sentC2s: new Uint8Array(Buffer.concat(request)), sentS2c: response,
  };
}

type Rec = { type: number; bytes: Uint8Array };
function records(stream: Uint8Array): Rec[] {
  const out: Rec[] = [];
  let off = 0;
  while (off < stream.length) {
    const h = parseRecordHeader(stream, off);
    const end = off + TLS_HEADER_SIZE + h.length;
    if (end > stream.length) throw new Error(`record at ${off} runs past the recorded stream`);
    out.push({ type: h.type, bytes: stream.subarray(off, end) });
    off = end;
  }
  return out;
}

/** Plaintext handshake bytes before the first protected record, parsed into messages. */
function hello<T>(recs: Rec[], type: number, pick: (m: ReturnType<typeof parseHandshakeMessages>['messages'][number]) => T | undefined): T {
  const plain: number[] = [];
  for (const r of recs) {
    if (r.type !== CONTENT_HANDSHAKE) break;
    plain.push(...r.bytes.subarray(TLS_HEADER_SIZE));
  }
  const { messages } = parseHandshakeMessages(new Uint8Array(plain));
  const m = messages.find((x) => x.type === type);
  const v = m && pick(m);
  if (!v) throw new Error(`no handshake message ${type} in the plaintext flight`);
  return v;
}

type Opened = { app: Uint8Array; types: number[]; explicitNonces: Uint8Array[] };

/** TLS 1.2: every record after ChangeCipherSpec is protected, numbered from 0 (Finished first). */
function open12(recs: Rec[], info: CryptoInfo, backend = nodeBackend): Opened {
  const ccs = recs.findIndex((r) => r.type === CONTENT_CHANGE_CIPHER_SPEC);
  const app: number[] = [];
  const types: number[] = [];
  const explicitNonces: Uint8Array[] = [];
  const nonceLen = CIPHER_DESC[info.cipherType].explicitNonceSize;
  recs.slice(ccs + 1).forEach((r, i) => {
    const o = openRecord(backend, info, BigInt(i), r.bytes);
    if (!o) throw new Error(`TLS 1.2 record ${i} (type ${r.type}) does not authenticate`);
    types.push(o.type);
    explicitNonces.push(r.bytes.slice(TLS_HEADER_SIZE, TLS_HEADER_SIZE + nonceLen));
    if (o.type === CONTENT_APPLICATION_DATA) app.push(...o.plaintext);
  });
  return { app: new Uint8Array(app), types, explicitNonces };
}

/** TLS 1.3: protected records use the handshake keys (from 0) until Finished, then the traffic keys (from 0). */
function open13(recs: Rec[], hs: CryptoInfo, ap: CryptoInfo, backend = nodeBackend): Opened {
  const app: number[] = [];
  const types: number[] = [];
  let keys = hs;
  let seq = 0n;
  for (const r of recs) {
    if (r.type !== CONTENT_APPLICATION_DATA) continue; // plaintext hellos and the compatibility CCS
    let o = openRecord(backend, keys, seq, r.bytes);
    if (!o && keys === hs) {
      keys = ap;
      seq = 0n;
      o = openRecord(backend, keys, seq, r.bytes);
    }
    if (!o) throw new Error(`TLS 1.3 record ${seq} does not authenticate`);
    if (keys === ap) types.push(o.type);
    if (keys === ap && o.type === CONTENT_APPLICATION_DATA) app.push(...o.plaintext);
    seq++;
  }
  return { app: new Uint8Array(app), types, explicitNonces: [] };
}

const eq = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

const TLS12: [string, string, { key: Buffer; cert: Buffer }, number][] = [
  ['ECDHE-RSA-AES128-GCM-SHA256', 'AES-128-GCM', RSA, 0xc02f],
  ['ECDHE-ECDSA-AES256-GCM-SHA384', 'AES-256-GCM', EC, 0xc02c],
  ['ECDHE-ECDSA-CHACHA20-POLY1305', 'ChaCha20-Poly1305 (RFC 7905)', EC, 0xcca9],
];

for (const [cipher, what, creds, suite] of TLS12) {
  test(`real TLS 1.2 ${what}: key log + PRF key block open every record to the exact app bytes`, async (t) => {
    const conv = await converse({ version: 'TLSv1.2', ciphers: cipher, creds, seed: suite });
    const cRecs = records(conv.c2s);
    const sRecs = records(conv.s2c);
    const ch = hello<ClientHello>(cRecs, HS_CLIENT_HELLO, (m) => m.clientHello);
    const sh = hello<ServerHello>(sRecs, HS_SERVER_HELLO, (m) => m.serverHello);
    t.is(sh.cipherSuite, suite);
    t.is(sh.selectedVersion, TLS_1_2_VERSION);
    t.true(ch.cipherSuites.includes(suite));
    const secrets = parseKeyLog(conv.keylog).lookup(ch.random);
    t.truthy(secrets?.masterSecret);
    const kb = tls12KeyBlock(secrets!.masterSecret!, ch.random, sh.random, sh.cipherSuite);
    t.is(kb.client.cipherType, cipherSuiteInfo(suite)!.cipherType);
    for (const backend of [nodeBackend, nobleBackend]) {
      const c = open12(cRecs, kb.client, backend);
      const s = open12(sRecs, kb.server, backend);
      t.true(eq(c.app, conv.sentC2s), `${backend.name}: client -> server app bytes`);
      t.true(eq(s.app, conv.sentS2c), `${backend.name}: server -> client app bytes`);
      t.is(c.types[0], CONTENT_HANDSHAKE); // Finished is record 0
      t.true(c.types.filter((x) => x === CONTENT_APPLICATION_DATA).length >= 3); // 40000 bytes span records
    }
    // A wrong key (the other direction's) opens nothing.
    t.is(openRecord(nodeBackend, kb.server, 0n, cRecs.find((r) => r.type === CONTENT_APPLICATION_DATA)!.bytes), null);
    if (CIPHER_DESC[kb.client.cipherType].explicitNonceSize) {
      // crypto_info.iv convention: the explicit nonce of record rec_seq on the wire; explicitNonceFor then
      // predicts every later record's nonce if the sender counts up (OpenSSL does, from a random start).
      const { explicitNonces } = open12(cRecs, kb.client);
      const from = tls12KeyBlock(secrets!.masterSecret!, ch.random, sh.random, suite, { clientExplicitNonce: explicitNonces[0]! }).client;
      explicitNonces.forEach((n, i) => t.is(Buffer.from(explicitNonceFor(from, BigInt(i))).toString('hex'), Buffer.from(n).toString('hex'), `record ${i}`));
    }
  });
}

const TLS13: [string, number][] = [
  ['TLS_AES_128_GCM_SHA256', 0x1301],
  ['TLS_AES_256_GCM_SHA384', 0x1302],
  ['TLS_CHACHA20_POLY1305_SHA256', 0x1303],
];

for (const [cipher, suite] of TLS13) {
  test(`real TLS 1.3 ${cipher}: key log + HKDF traffic keys open every record to the exact app bytes`, async (t) => {
    const conv = await converse({ version: 'TLSv1.3', ciphers: cipher, creds: EC, seed: suite });
    const cRecs = records(conv.c2s);
    const sRecs = records(conv.s2c);
    const ch = hello<ClientHello>(cRecs, HS_CLIENT_HELLO, (m) => m.clientHello);
    const sh = hello<ServerHello>(sRecs, HS_SERVER_HELLO, (m) => m.serverHello);
    t.true(ch.supportedVersions.includes(TLS_1_3_VERSION));
    t.is(sh.selectedVersion, TLS_1_3_VERSION);
    t.is(sh.cipherSuite, suite);
    t.false(sh.helloRetryRequest);
    const s = parseKeyLog(conv.keylog).lookup(ch.random)!;
    t.truthy(s.clientTrafficSecret0 && s.serverTrafficSecret0 && s.clientHandshakeTrafficSecret && s.serverHandshakeTrafficSecret);
    for (const backend of [nodeBackend, nobleBackend]) {
      const c = open13(cRecs, tls13TrafficKeys(s.clientHandshakeTrafficSecret!, suite), tls13TrafficKeys(s.clientTrafficSecret0!, suite), backend);
      const v = open13(sRecs, tls13TrafficKeys(s.serverHandshakeTrafficSecret!, suite), tls13TrafficKeys(s.serverTrafficSecret0!, suite), backend);
      t.true(eq(c.app, conv.sentC2s), `${backend.name}: client -> server app bytes`);
      t.true(eq(v.app, conv.sentS2c), `${backend.name}: server -> client app bytes`);
      t.true(v.types.includes(CONTENT_HANDSHAKE)); // NewSessionTicket: inner type 22 under the traffic keys
    }
  });
}
