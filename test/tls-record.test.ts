// Record framing, nonce/AAD rules and one-shot seal/open (SPEC section 3) for every version x cipher.
import test from 'ava';
import { createDecipheriv } from 'node:crypto';
import { nobleBackend, nodeBackend } from '../emulator/crypto/index.ts';
import { TlsError } from '../emulator/errors.ts';
import {
  TLS_1_2_VERSION, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_256, TLS_CIPHER_CHACHA20_POLY1305,
  CIPHER_DESC, type CryptoInfo, type TlsCipherType, type TlsVersion,
} from '../emulator/tls/crypto-info.ts';
import { explicitNonceFor, openRecord, recordNonce, sealRecord, tls12Aad, tls13Aad, xorNonce } from '../emulator/tls/record-crypto.ts';
import {
  CONTENT_ALERT, CONTENT_APPLICATION_DATA, CONTENT_HANDSHAKE, TLS_HEADER_SIZE, maxRecordLength, parseRecordHeader, recordOverhead,
} from '../emulator/tls/record.ts';
import { Prng } from './helpers/prng.ts';

const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));

function info(version: TlsVersion, cipherType: TlsCipherType, rng: Prng): CryptoInfo {
  const d = CIPHER_DESC[cipherType];
  return { version, cipherType, key: rng.bytes(d.keySize), iv: rng.bytes(d.ivSize), salt: rng.bytes(d.saltSize), recSeq: rng.bytes(8) };
}
const CONFIGS: [TlsVersion, TlsCipherType][] = [
  [TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128], [TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_256], [TLS_1_2_VERSION, TLS_CIPHER_CHACHA20_POLY1305],
  [TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128], [TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_256], [TLS_1_3_VERSION, TLS_CIPHER_CHACHA20_POLY1305],
];
const label = (v: TlsVersion, c: TlsCipherType) => `${v === TLS_1_3_VERSION ? '1.3' : '1.2'} ${CIPHER_DESC[c].aead}`;

test('AAD and nonce layouts: TLS 1.2 13-byte AAD, 1.3 header AAD, static IV XOR rec_seq', (t) => {
  t.is(toHex(tls12Aad(0x0102030405060708n, CONTENT_APPLICATION_DATA, 0x1234)), '0102030405060708' + '17' + '0303' + '1234');
  t.is(toHex(tls13Aad(0x4011)), '1703034011');
  t.is(toHex(xorNonce(hex('000102030405060708090a0b'), 0xff00n)), '0001020304050607' + '08090a0b'.replace('0a0b', 'f50b'));
  const gcm12: CryptoInfo = { version: TLS_1_2_VERSION, cipherType: TLS_CIPHER_AES_GCM_128, key: new Uint8Array(16), iv: hex('00000000000000fe'), salt: hex('a1a2a3a4'), recSeq: hex('0000000000000010') };
  t.is(toHex(recordNonce(gcm12, 7n, hex('1112131415161718'))), 'a1a2a3a4' + '1112131415161718');
  t.throws(() => recordNonce(gcm12, 7n), { instanceOf: TlsError, message: /explicit nonce/ });
  // kernel: iv and rec_seq advance together (tls_advance_record_sn), with carry across bytes
  t.is(toHex(explicitNonceFor(gcm12, 0x10n)), '00000000000000fe');
  t.is(toHex(explicitNonceFor(gcm12, 0x12n)), '0000000000000100');
  const cc12: CryptoInfo = { version: TLS_1_2_VERSION, cipherType: TLS_CIPHER_CHACHA20_POLY1305, key: new Uint8Array(32), iv: hex('000102030405060708090a0b'), salt: new Uint8Array(0), recSeq: new Uint8Array(8) };
  t.is(toHex(recordNonce(cc12, 1n)), '000102030405060708090a0a'); // RFC 7905 2: iv XOR padded seq
});

test('explicit nonce = crypto_info iv + (record number - crypto_info rec_seq) mod 2^64, carries and wraps included', (t) => {
  // The 64-bit arithmetic spelled out with BigInt, against the 32-bit-halves implementation.
  const big = (b: Uint8Array) => b.reduce((v, x) => (v << 8n) | BigInt(x), 0n);
  const edges = [0n, 1n, 0xffn, 0xffff_ffffn, 0x1_0000_0000n, 0x7fff_ffff_ffff_ffffn, 0xffff_ffff_ffff_fffen, 0xffff_ffff_ffff_ffffn];
  let seed = 12345;
  const rnd64 = () => {
    let v = 0n;
    for (let i = 0; i < 4; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      v = (v << 16n) | BigInt(seed >>> 16);
    }
    return v;
  };
  const be = (v: bigint) => hex(v.toString(16).padStart(16, '0'));
  let n = 0;
  for (let i = 0; i < 400; i++) {
    const iv = i < edges.length ? edges[i]! : rnd64();
    const first = i % 3 === 0 ? edges[i % edges.length]! : rnd64();
    const rec = i % 5 === 0 ? first + BigInt(i) : rnd64();
    const info: CryptoInfo = { version: TLS_1_2_VERSION, cipherType: TLS_CIPHER_AES_GCM_128, key: new Uint8Array(16), iv: be(iv), salt: hex('a1a2a3a4'), recSeq: be(first) };
    const want = (iv + rec - first) & 0xffff_ffff_ffff_ffffn;
    t.is(big(explicitNonceFor(info, rec & 0xffff_ffff_ffff_ffffn)), want, `iv ${iv} first ${first} rec ${rec}`);
    n++;
  }
  t.is(n, 400);
});

test('kernel record size limits (tls_rx_msg_size): overhead and largest length field per version and cipher', (t) => {
  t.is(recordOverhead(TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128), 29);
  t.is(recordOverhead(TLS_1_2_VERSION, TLS_CIPHER_CHACHA20_POLY1305), 21);
  t.is(recordOverhead(TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_256), 22);
  t.is(maxRecordLength(TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128), 16384 + 24);
  t.is(maxRecordLength(TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128), 16384 + 17);
});

test('parseRecordHeader: fields, and TlsErrors with offsets for short, bad type, bad version, too long', (t) => {
  const buf = hex('00001703030010');
  t.deepEqual(parseRecordHeader(buf, 2), { type: 23, version: 0x0303, length: 16 });
  t.like(t.throws(() => parseRecordHeader(buf, 4), { instanceOf: TlsError })!.where, { offset: 4 });
  t.like(t.throws(() => parseRecordHeader(hex('1903030010'), 0), { instanceOf: TlsError, message: /content type 25/ })!.where, { offset: 0 });
  t.like(t.throws(() => parseRecordHeader(hex('1702030010'), 0, undefined, { packet: 9 }), { instanceOf: TlsError, message: /not 3\.x/ })!.where, { offset: 1, packet: 9 });
  t.like(t.throws(() => parseRecordHeader(hex('1703034019'), 0, maxRecordLength(TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128)), { instanceOf: TlsError, message: /exceeds/ })!.where, { offset: 3 });
});

for (const [version, cipherType] of CONFIGS) {
  test(`${label(version, cipherType)}: seal then open round trip, both backends agree, record numbers matter`, (t) => {
    const rng = new Prng(cipherType * 10 + (version & 0xf));
    const ci = info(version, cipherType, rng);
    for (const size of [0, 1, 15, 16, 17, 255, 1400, 16384]) {
      const pt = rng.bytes(size);
      const seq = BigInt(rng.u32());
      const type = size % 2 ? CONTENT_APPLICATION_DATA : CONTENT_HANDSHAKE;
      const rec = sealRecord(nodeBackend, ci, seq, type, pt);
      t.is(toHex(sealRecord(nobleBackend, ci, seq, type, pt)), toHex(rec));
      t.is(rec.length, size + recordOverhead(version, cipherType));
      const h = parseRecordHeader(rec, 0, maxRecordLength(version, cipherType));
      t.is(h.type, version === TLS_1_3_VERSION ? CONTENT_APPLICATION_DATA : type); // 1.3 hides the type
      t.is(h.length, rec.length - TLS_HEADER_SIZE);
      for (const b of [nodeBackend, nobleBackend]) {
        const o = openRecord(b, ci, seq, rec)!;
        t.is(o.type, type);
        t.is(toHex(o.plaintext), toHex(pt));
      }
      t.is(openRecord(nodeBackend, ci, seq + 1n, rec), null, 'wrong record number');
    }
  });

  test(`${label(version, cipherType)}: tampering with any byte of the record fails to open`, (t) => {
    const rng = new Prng(0xbad + cipherType);
    const ci = info(version, cipherType, rng);
    const rec = sealRecord(nodeBackend, ci, 3n, CONTENT_APPLICATION_DATA, rng.bytes(40));
    for (let i = 0; i < rec.length; i++) {
      if (i >= 1 && i <= 4) continue; // version and length fields: TlsErrors, tested below
      if (version === TLS_1_2_VERSION && i === 0) continue; // type 23 -> other: still authenticated via AAD, below
      const bad = rec.slice();
      bad[i]! ^= 0x20;
      for (const b of [nodeBackend, nobleBackend]) t.is(openRecord(b, ci, 3n, bad), null, `byte ${i} (${b.name})`);
    }
    const retyped = rec.slice();
    retyped[0] = CONTENT_ALERT;
    t.is(openRecord(nodeBackend, ci, 3n, retyped), null, 'record type is authenticated');
    const relen = rec.slice();
    relen[4]! ^= 1;
    t.throws(() => openRecord(nodeBackend, ci, 3n, relen), { instanceOf: TlsError, message: /header says length/ });
    t.throws(() => openRecord(nodeBackend, ci, 3n, rec.subarray(0, 4)), { instanceOf: TlsError, message: /5-byte header/ });
    for (const i of [1, 2]) {
      const rever = rec.slice();
      rever[i] = 1;
      t.like(t.throws(() => openRecord(nobleBackend, ci, 3n, rever), { instanceOf: TlsError, message: /not 0x0303/ })!.where, { offset: 1 });
    }
  });
}

test('TLS 1.2 GCM wire format: explicit nonce after the header, nonce = salt || explicit, AAD with the plaintext length', (t) => {
  const ci: CryptoInfo = { version: TLS_1_2_VERSION, cipherType: TLS_CIPHER_AES_GCM_128, key: hex('000102030405060708090a0b0c0d0e0f'), iv: hex('0000000000000001'), salt: hex('cafebabe'), recSeq: hex('0000000000000005') };
  const pt = new TextEncoder().encode('hello kTLS');
  const rec = sealRecord(nodeBackend, ci, 5n, CONTENT_APPLICATION_DATA, pt);
  t.is(toHex(rec.subarray(0, 13)), '170303' + (8 + pt.length + 16).toString(16).padStart(4, '0') + '0000000000000001');
  // independent decryption with node:crypto from the SPEC's rules
  const d = createDecipheriv('aes-128-gcm', ci.key, hex('cafebabe0000000000000001'));
  d.setAAD(hex('0000000000000005' + '17' + '0303' + pt.length.toString(16).padStart(4, '0')));
  d.setAuthTag(rec.subarray(rec.length - 16));
  t.is(Buffer.concat([d.update(rec.subarray(13, rec.length - 16)), d.final()]).toString(), 'hello kTLS');
});

test('TLS 1.3: zero padding after the inner type is stripped; all-zero inner plaintext is rejected', (t) => {
  const rng = new Prng(1303);
  const ci = info(TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_256, rng);
  const pt = rng.bytes(33);
  const padded = sealRecord(nodeBackend, ci, 9n, CONTENT_HANDSHAKE, pt, 100);
  t.is(padded.length, TLS_HEADER_SIZE + 33 + 1 + 100 + 16);
  const o = openRecord(nobleBackend, ci, 9n, padded)!;
  t.is(o.type, CONTENT_HANDSHAKE);
  t.is(toHex(o.plaintext), toHex(pt));
  // an inner plaintext of zeros only has no content type (RFC 8446 5.4)
  const desc = CIPHER_DESC[ci.cipherType];
  const body = nodeBackend.seal(desc.aead, ci.key, recordNonce(ci, 0n), tls13Aad(8 + 16), new Uint8Array(8));
  const rec = new Uint8Array([...tls13Aad(8 + 16), ...body]);
  t.is(openRecord(nodeBackend, ci, 0n, rec), null);
  t.throws(() => sealRecord(nodeBackend, info(TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128, rng), 0n, 23, pt, 4), { instanceOf: TlsError });
});
