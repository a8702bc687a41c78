// Key schedule, key log and handshake codecs on published vectors and hand-built messages.
import test from 'ava';
import { readFileSync, readdirSync } from 'node:fs';
import { TlsError } from '../emulator/errors.ts';
import { TLS_1_2_VERSION, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_256, TLS_CIPHER_CHACHA20_POLY1305 } from '../emulator/tls/crypto-info.ts';
import { HS_CLIENT_HELLO, HS_SERVER_HELLO, parseHandshakeMessages, parseServerHello } from '../emulator/tls/handshake.ts';
import { parseKeyLog } from '../emulator/tls/keylog.ts';
import { cipherSuiteInfo, hkdfExpandLabel, tls12KeyBlock, tls12Prf, tls13TrafficKeys } from '../emulator/tls/keys.ts';

const KDF = JSON.parse(readFileSync(new URL('./vectors/tls-kdf.json', import.meta.url), 'utf8'));
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('TLS 1.2 PRF: IETF TLS list P_SHA256 vector and the P_SHA384 one openssl printed', (t) => {
  t.is(KDF.tls12Prf.vectors.length, 2);
  for (const v of KDF.tls12Prf.vectors) {
    const out = tls12Prf(v.hash, hex(v.secret), v.label, hex(v.seed), v.output.length / 2);
    t.is(toHex(out), v.output, v.hash);
    // a prefix of the PRF stream is the PRF stream of the shorter length
    t.is(toHex(tls12Prf(v.hash, hex(v.secret), v.label, hex(v.seed), 33)), v.output.slice(0, 66));
  }
});

test('TLS 1.3 HKDF-Expand-Label: RFC 8448 section 3 traffic secrets give its keys and ivs', (t) => {
  const { suite, vectors } = KDF.tls13TrafficKeys;
  t.is(vectors.length, 4);
  for (const v of vectors) {
    const info = tls13TrafficKeys(hex(v.secret), suite);
    t.is(info.version, TLS_1_3_VERSION);
    t.is(info.cipherType, TLS_CIPHER_AES_GCM_128);
    t.is(toHex(info.key), v.key, v.name);
    t.is(toHex(info.salt), v.iv.slice(0, 8), v.name);
    t.is(toHex(info.iv), v.iv.slice(8), v.name);
    t.is(toHex(info.recSeq), '0000000000000000');
    t.is(toHex(hkdfExpandLabel('sha256', hex(v.secret), 'iv', new Uint8Array(0), 12)), v.iv);
  }
  const later = tls13TrafficKeys(hex(vectors[0].secret), suite, 0x0102n);
  t.is(toHex(later.recSeq), '0000000000000102');
});

test('TLS 1.3 ChaCha20 and AES-256 traffic keys have the kernel crypto_info shapes', (t) => {
  const s32 = new Uint8Array(32).fill(7);
  const cc = tls13TrafficKeys(s32, 0x1303);
  t.is(cc.cipherType, TLS_CIPHER_CHACHA20_POLY1305);
  t.is(cc.key.length, 32);
  t.is(cc.iv.length, 12);
  t.is(cc.salt.length, 0);
  t.is(toHex(cc.iv), toHex(hkdfExpandLabel('sha256', s32, 'iv', new Uint8Array(0), 12)));
  const a256 = tls13TrafficKeys(new Uint8Array(48).fill(7), 0x1302);
  t.is(a256.cipherType, TLS_CIPHER_AES_GCM_256);
  t.is(a256.key.length, 32);
  t.deepEqual([a256.salt.length, a256.iv.length], [4, 8]);
  t.throws(() => tls13TrafficKeys(s32, 0x1302), { instanceOf: TlsError, message: /48 bytes/ });
  t.throws(() => tls13TrafficKeys(s32, 0xc02f), { instanceOf: TlsError, message: /not a TLS 1.3 suite/ });
});

test('cipher suite table maps every suite of the brief to cipher type and PRF hash', (t) => {
  const want: [number, number, number, string][] = [
    [0xc02f, TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128, 'sha256'], [0xc02b, TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128, 'sha256'],
    [0x009c, TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128, 'sha256'], [0x009e, TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128, 'sha256'],
    [0xc030, TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_256, 'sha384'], [0xc02c, TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_256, 'sha384'],
    [0x009d, TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_256, 'sha384'], [0x009f, TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_256, 'sha384'],
    [0xcca8, TLS_1_2_VERSION, TLS_CIPHER_CHACHA20_POLY1305, 'sha256'], [0xcca9, TLS_1_2_VERSION, TLS_CIPHER_CHACHA20_POLY1305, 'sha256'],
    [0xccaa, TLS_1_2_VERSION, TLS_CIPHER_CHACHA20_POLY1305, 'sha256'],
    [0x1301, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, 'sha256'], [0x1302, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_256, 'sha384'],
    [0x1303, TLS_1_3_VERSION, TLS_CIPHER_CHACHA20_POLY1305, 'sha256'],
  ];
  for (const [suite, version, cipherType, hash] of want) {
    t.like(cipherSuiteInfo(suite), { suite, version, cipherType, hash }, `0x${suite.toString(16)}`);
  }
  t.is(cipherSuiteInfo(0x002f), undefined); // AES128-SHA (CBC): not an AEAD suite
});

test('TLS 1.2 key block: layout per RFC 5246 6.3, GCM 4-byte salt, ChaCha20 12-byte iv, explicit nonce from the caller', (t) => {
  const ms = new Uint8Array(48).map((_, i) => i);
  const cr = new Uint8Array(32).fill(0xcc);
  const sr = new Uint8Array(32).fill(0x55);
  const seed = new Uint8Array([...sr, ...cr]);
  const kb128 = tls12Prf('sha256', ms, 'key expansion', seed, 40);
  const g = tls12KeyBlock(ms, cr, sr, 0xc02f);
  t.is(toHex(g.client.key), toHex(kb128.subarray(0, 16)));
  t.is(toHex(g.server.key), toHex(kb128.subarray(16, 32)));
  t.is(toHex(g.client.salt), toHex(kb128.subarray(32, 36)));
  t.is(toHex(g.server.salt), toHex(kb128.subarray(36, 40)));
  t.is(toHex(g.client.iv), '0000000000000000');
  t.is(g.client.version, TLS_1_2_VERSION);

  const kb256 = tls12Prf('sha384', ms, 'key expansion', seed, 72);
  const nonce = hex('0102030405060708');
  const g2 = tls12KeyBlock(ms, cr, sr, 0xc030, { recSeq: 5n, serverExplicitNonce: nonce });
  t.is(toHex(g2.server.key), toHex(kb256.subarray(32, 64)));
  t.is(toHex(g2.server.salt), toHex(kb256.subarray(68, 72)));
  t.is(toHex(g2.server.iv), '0102030405060708');
  t.is(toHex(g2.server.recSeq), '0000000000000005');
  t.is(toHex(g2.client.iv), '0000000000000000');

  const kbcc = tls12Prf('sha256', ms, 'key expansion', seed, 88);
  const c = tls12KeyBlock(ms, cr, sr, 0xcca8);
  t.is(c.client.cipherType, TLS_CIPHER_CHACHA20_POLY1305);
  t.is(toHex(c.client.iv), toHex(kbcc.subarray(64, 76)));
  t.is(toHex(c.server.iv), toHex(kbcc.subarray(76, 88)));
  t.is(c.client.salt.length, 0);

  t.throws(() => tls12KeyBlock(ms.subarray(1), cr, sr, 0xc02f), { instanceOf: TlsError, message: /48 bytes/ });
  t.throws(() => tls12KeyBlock(ms, cr.subarray(1), sr, 0xc02f), { instanceOf: TlsError, message: /client random/ });
  t.throws(() => tls12KeyBlock(ms, cr, sr, 0x1301), { instanceOf: TlsError, message: /not a TLS 1.2/ });
  t.throws(() => tls12KeyBlock(ms, cr, sr, 0xc02f, { clientExplicitNonce: new Uint8Array(4) }), { instanceOf: TlsError });
});

const R1 = 'aa'.repeat(32);
const R2 = 'bb'.repeat(32);

test('key log: all labels, comments, blank lines, CRLF, unknown labels ignored, lookup by client random', (t) => {
  const text = [
    '# SSL/TLS secrets log file, generated by OpenSSL',
    '',
    `CLIENT_RANDOM ${R1} ${'11'.repeat(48)}`,
    `CLIENT_HANDSHAKE_TRAFFIC_SECRET ${R2} ${'21'.repeat(32)}\r`,
    `SERVER_HANDSHAKE_TRAFFIC_SECRET ${R2} ${'22'.repeat(32)}`,
    `CLIENT_TRAFFIC_SECRET_0 ${R2.toUpperCase()} ${'23'.repeat(48)}`,
    `SERVER_TRAFFIC_SECRET_0 ${R2} ${'24'.repeat(48)}`,
    `EXPORTER_SECRET ${R2} ${'25'.repeat(32)}`,
    `SOME_FUTURE_LABEL ${R2} ${'26'.repeat(7)}`,
    '   ',
  ].join('\n');
  const log = parseKeyLog(text, 'x.keylog');
  t.is(log.size, 2);
  t.is(log.ignoredLines, 1);
  t.is(toHex(log.lookup(hex(R1))!.masterSecret!), '11'.repeat(48));
  const s = log.lookup(hex(R2))!;
  t.is(toHex(s.clientHandshakeTrafficSecret!), '21'.repeat(32));
  t.is(toHex(s.serverHandshakeTrafficSecret!), '22'.repeat(32));
  t.is(toHex(s.clientTrafficSecret0!), '23'.repeat(48));
  t.is(toHex(s.serverTrafficSecret0!), '24'.repeat(48));
  t.is(toHex(s.exporterSecret!), '25'.repeat(32));
  t.is(s.masterSecret, undefined);
  t.is(log.lookup(new Uint8Array(32)), undefined);
});

test('key log: malformed lines are TlsErrors naming the file and line', (t) => {
  const bad: [string, RegExp][] = [
    [`CLIENT_RANDOM ${R1}`, /2 fields/],
    [`CLIENT_RANDOM ${R1.slice(2)} ${'11'.repeat(48)}`, /64 hex digits/],
    [`CLIENT_RANDOM ${'zz'.repeat(32)} ${'11'.repeat(48)}`, /64 hex digits/],
    [`CLIENT_RANDOM ${R1} ${'11'.repeat(32)}`, /48 bytes, got 32/],
    [`CLIENT_TRAFFIC_SECRET_0 ${R1} ${'11'.repeat(40)}`, /32 or 48 bytes/],
    [`CLIENT_TRAFFIC_SECRET_0 ${R1} ${'1'.repeat(63)}`, /not hex/],
    [`CLIENT_TRAFFIC_SECRET_0 ${R1} ${'g1'.repeat(32)}`, /not hex/],
  ];
  for (const [line, why] of bad) {
    const e = t.throws(() => parseKeyLog(`# ok\n\n${line}\n`, 'k.log'), { instanceOf: TlsError, message: why }, line);
    t.is(e.where.file, 'k.log');
    t.is(e.where.field, 'line 3');
    t.regex(e.message, /k\.log.*line 3/);
  }
});

// ---- handshake messages, built by hand with the RFC 8446 4.1 layouts ----
const u16 = (n: number) => [n >> 8, n & 0xff];
const vec8 = (b: number[]) => [b.length, ...b];
const vec16 = (b: number[]) => [...u16(b.length), ...b];
const ext = (type: number, body: number[]) => [...u16(type), ...vec16(body)];
const msg = (type: number, body: number[]) => [type, 0, ...u16(body.length), ...body];

function clientHello(random: number[], suites: number[], versions?: number[]): number[] {
  const exts = [...ext(0, [0, 0]), ...(versions ? ext(43, vec8(versions.flatMap(u16))) : [])];
  return [...u16(0x0303), ...random, ...vec8([1, 2, 3]), ...vec16(suites.flatMap(u16)), ...vec8([0]), ...vec16(exts)];
}
function serverHello(random: number[], suite: number, version?: number): number[] {
  const exts = version ? ext(43, u16(version)) : [];
  return [...u16(0x0303), ...random, ...vec8([]), ...u16(suite), 0, ...(version ? vec16(exts) : [])];
}
const HRR = [...hex('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c')];

test('handshake: ClientHello and ServerHello split across records, several messages in one, HRR detected', (t) => {
  const cr = Array.from({ length: 32 }, (_, i) => i);
  const sr = Array.from({ length: 32 }, (_, i) => 0x80 + i);
  const ch = msg(HS_CLIENT_HELLO, clientHello(cr, [0x1301, 0xc02f], [0x0304, 0x0303]));
  const sh = msg(HS_SERVER_HELLO, serverHello(sr, 0x1301, 0x0304));
  const stream = new Uint8Array([...ch, ...sh, ...msg(11, [9, 9, 9])]);
  // as records would deliver it: first 10 bytes, then the rest plus a partial next message
  const first = parseHandshakeMessages(stream.subarray(0, 10));
  t.is(first.messages.length, 0);
  t.is(first.rest.length, 10);
  const all = parseHandshakeMessages(stream.subarray(0, stream.length - 2));
  t.is(all.messages.length, 2);
  t.is(all.rest.length, 5); // the 7-byte Certificate stub minus its last 2 bytes
  const c = all.messages[0]!.clientHello!;
  t.is(toHex(c.random), toHex(new Uint8Array(cr)));
  t.is(toHex(c.sessionId), '010203');
  t.deepEqual(c.cipherSuites, [0x1301, 0xc02f]);
  t.deepEqual(c.supportedVersions, [0x0304, 0x0303]);
  const s = all.messages[1]!.serverHello!;
  t.deepEqual([s.cipherSuite, s.selectedVersion, s.helloRetryRequest], [0x1301, 0x0304, false]);
  t.is(toHex(s.random), toHex(new Uint8Array(sr)));

  const s12 = parseServerHello(new Uint8Array(serverHello(sr, 0xc030)));
  t.deepEqual([s12.cipherSuite, s12.selectedVersion], [0xc030, 0x0303]);
  t.true(parseServerHello(new Uint8Array(serverHello(HRR, 0x1301, 0x0304))).helloRetryRequest);
  const c12 = parseHandshakeMessages(new Uint8Array(msg(1, clientHello(cr, [0xc02f])))).messages[0]!.clientHello!;
  t.deepEqual(c12.supportedVersions, []);
});

test('handshake: malformed hellos are TlsErrors with the offset in the stream', (t) => {
  const cr = new Array(32).fill(1);
  const good = msg(HS_CLIENT_HELLO, clientHello(cr, [0x1301]));
  const prefix = msg(11, [7, 7]); // a 6-byte message before, so offsets are stream offsets
  // truncated random: the body ends 2 bytes into the random
  const trunc = [...prefix, ...msg(HS_CLIENT_HELLO, [3, 3, 1, 2])];
  const e1 = t.throws(() => parseHandshakeMessages(new Uint8Array(trunc)), { instanceOf: TlsError, message: /truncated/ });
  t.is(e1.where.offset, 6 + 4 + 2);
  // odd cipher_suites length
  const odd = [...u16(0x0303), ...cr, 0, ...vec16([0x13, 0x01, 0x00]), 1, 0];
  t.throws(() => parseHandshakeMessages(new Uint8Array(msg(1, odd))), { instanceOf: TlsError, message: /odd length/ });
  // supported_versions with an inconsistent length byte
  const badSv = [...u16(0x0303), ...cr, 0, ...vec16(u16(0x1301)), 1, 0, ...vec16(ext(43, [5, 3, 4]))];
  t.throws(() => parseHandshakeMessages(new Uint8Array(msg(1, badSv))), { instanceOf: TlsError, message: /supported_versions/ });
  // an extension whose length runs past the block
  const badExt = [...u16(0x0303), ...cr, 0, ...vec16(u16(0x1301)), 1, 0, ...vec16([0, 10, 0, 9, 1])];
  const e4 = t.throws(() => parseHandshakeMessages(new Uint8Array([...prefix, ...msg(1, badExt)])), { instanceOf: TlsError });
  t.true(e4.where.offset! > 6 + 4 + 38);
  // trailing garbage after extensions
  t.throws(() => parseHandshakeMessages(new Uint8Array(msg(1, [...good.slice(4), 0xff]))), { instanceOf: TlsError, message: /after its extensions/ });
  // ServerHello supported_versions of the wrong size
  const sh = [...u16(0x0303), ...cr, 0, ...u16(0x1301), 0, ...vec16(ext(43, [3, 4, 0]))];
  t.throws(() => parseServerHello(new Uint8Array(sh)), { instanceOf: TlsError, message: /2 bytes/ });
});

test('key log: every committed fixture key log parses and has the secrets its manifest version needs', (t) => {
  const capDir = new URL('../fixtures/captures/', import.meta.url);
  const names = readdirSync(capDir).filter((f) => f.endsWith('.json'));
  t.true(names.length >= 7);
  for (const name of names) {
    const m = JSON.parse(readFileSync(new URL(name, capDir), 'utf8'));
    const file = m.keylog as string;
    const log = parseKeyLog(readFileSync(new URL(file, capDir), 'latin1'), file);
    t.true(log.size >= m.connections.length, file);
    const versions = new Set<string>(m.connections.map((c: { version: string }) => c.version));
    const entries = readFileSync(new URL(file, capDir), 'latin1').split('\n').filter((l) => l.trim()).map((l) => l.split(' ')[1]!);
    for (const random of new Set(entries)) {
      const s = log.lookup(hex(random))!;
      if (versions.has('1.3') && !versions.has('1.2')) t.truthy(s.clientTrafficSecret0 && s.serverTrafficSecret0, `${file} ${random}`);
      if (versions.has('1.2') && !versions.has('1.3')) t.is(s.masterSecret?.length, 48, `${file} ${random}`);
    }
  }
});
