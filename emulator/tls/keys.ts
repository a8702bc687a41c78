// Key schedules to the kernel's crypto_info: TLS 1.2 PRF key block (RFC 5246 5, 6.3; RFC 5288 for GCM,
// RFC 7905 for ChaCha20) and TLS 1.3 HKDF-Expand-Label "key"/"iv" (RFC 8446 7.1, 7.3).
import { createHmac } from 'node:crypto';
import { TlsError } from '../errors.ts';
import {
  CIPHER_DESC, TLS_1_2_VERSION, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_256,
  TLS_CIPHER_CHACHA20_POLY1305, bigIntToRecSeq, type AeadAlgorithm, type CryptoInfo, type TlsCipherType, type TlsVersion,
} from './crypto-info.ts';

export type SuiteInfo = { suite: number; version: TlsVersion | 'any'; cipherType: TlsCipherType; aead: AeadAlgorithm; hash: 'sha256' | 'sha384' };

const SUITES: SuiteInfo[] = [];
function add(version: TlsVersion, cipherType: TlsCipherType, hash: 'sha256' | 'sha384', ...suites: number[]) {
  for (const suite of suites) SUITES.push({ suite, version, cipherType, aead: CIPHER_DESC[cipherType].aead, hash });
}
add(TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128, 'sha256', 0xc02f, 0xc02b, 0x009c, 0x009e, 0x00a2, 0x00a4);
add(TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_256, 'sha384', 0xc030, 0xc02c, 0x009d, 0x009f, 0x00a3, 0x00a5);
add(TLS_1_2_VERSION, TLS_CIPHER_CHACHA20_POLY1305, 'sha256', 0xcca8, 0xcca9, 0xccaa);
add(TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, 'sha256', 0x1301);
add(TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_256, 'sha384', 0x1302);
add(TLS_1_3_VERSION, TLS_CIPHER_CHACHA20_POLY1305, 'sha256', 0x1303);

export function cipherSuiteInfo(suite: number): SuiteInfo | undefined {
  return SUITES.find((s) => s.suite === suite);
}

function hmac(hash: string, key: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac(hash, key).update(data).digest());
}

/** RFC 5246 5: P_hash(secret, label + seed) truncated to `length`. */
export function tls12Prf(hash: 'sha256' | 'sha384', secret: Uint8Array, label: string, seed: Uint8Array, length: number): Uint8Array {
  const labelSeed = new Uint8Array([...Buffer.from(label, 'latin1'), ...seed]);
  const out = new Uint8Array(length);
  let a: Uint8Array = labelSeed;
  let done = 0;
  while (done < length) {
    a = hmac(hash, secret, a);
    const block = hmac(hash, secret, new Uint8Array([...a, ...labelSeed]));
    out.set(block.subarray(0, Math.min(block.length, length - done)), done);
    done += block.length;
  }
  return out;
}

export type KeyBlock = { client: CryptoInfo; server: CryptoInfo };

/**
 * Where the key block's crypto_info starts. `recSeq` is the record number the state applies to (0 for the
 * first record after ChangeCipherSpec). For TLS 1.2 GCM the kernel's crypto_info.iv is the explicit nonce
 * of that record as it appears on the wire: the sender picks it (OpenSSL starts from a random value and
 * counts up), so only the caller can know it, e.g. from the captured record. Left out, iv is zero.
 */
export type KeyBlockStart = { recSeq?: bigint; clientExplicitNonce?: Uint8Array; serverExplicitNonce?: Uint8Array };

/**
 * The TLS 1.2 key block (RFC 5246 6.3: client_write_key, server_write_key, client_write_IV,
 * server_write_IV; no MAC keys for AEAD suites) split into per-direction crypto_info. For GCM, `salt` is
 * the 4-byte implicit IV (RFC 5288 3) and `iv` the explicit nonce given in `start` (zero when not given).
 * For ChaCha20 (RFC 7905 2) the 12-byte write IV is `iv` and `salt` is empty.
 */
export function tls12KeyBlock(masterSecret: Uint8Array, clientRandom: Uint8Array, serverRandom: Uint8Array, suite: number, start: KeyBlockStart = {}): KeyBlock {
  const s = cipherSuiteInfo(suite);
  if (!s || s.version !== TLS_1_2_VERSION) throw new TlsError(`cipher suite 0x${suite.toString(16).padStart(4, '0')} is not a TLS 1.2 AEAD suite tlsnic knows`, { field: 'cipher_suite' });
  if (masterSecret.length !== 48) throw new TlsError(`master secret must be 48 bytes, got ${masterSecret.length}`, { field: 'master_secret' });
  if (clientRandom.length !== 32) throw new TlsError(`client random must be 32 bytes, got ${clientRandom.length}`, { field: 'client_random' });
  if (serverRandom.length !== 32) throw new TlsError(`server random must be 32 bytes, got ${serverRandom.length}`, { field: 'server_random' });
  for (const [name, n] of [['clientExplicitNonce', start.clientExplicitNonce], ['serverExplicitNonce', start.serverExplicitNonce]] as const) {
    if (n && n.length !== 8) throw new TlsError(`${name} must be 8 bytes, got ${n.length}`, { field: name });
  }
  const recSeq = bigIntToRecSeq(start.recSeq ?? 0n);
  const d = CIPHER_DESC[s.cipherType];
  const fixedIv = s.cipherType === TLS_CIPHER_CHACHA20_POLY1305 ? 12 : 4;
  const seed = new Uint8Array([...serverRandom, ...clientRandom]);
  const kb = tls12Prf(s.hash, masterSecret, 'key expansion', seed, 2 * d.keySize + 2 * fixedIv);
  const ck = kb.slice(0, d.keySize);
  const sk = kb.slice(d.keySize, 2 * d.keySize);
  const civ = kb.slice(2 * d.keySize, 2 * d.keySize + fixedIv);
  const siv = kb.slice(2 * d.keySize + fixedIv, 2 * d.keySize + 2 * fixedIv);
  const mk = (key: Uint8Array, iv: Uint8Array, explicit: Uint8Array | undefined): CryptoInfo =>
    s.cipherType === TLS_CIPHER_CHACHA20_POLY1305
      ? { version: TLS_1_2_VERSION, cipherType: s.cipherType, key, iv, salt: new Uint8Array(0), recSeq: recSeq.slice() }
      : { version: TLS_1_2_VERSION, cipherType: s.cipherType, key, iv: explicit ? explicit.slice() : new Uint8Array(8), salt: iv, recSeq: recSeq.slice() };
  return { client: mk(ck, civ, start.clientExplicitNonce), server: mk(sk, siv, start.serverExplicitNonce) };
}

/** RFC 8446 7.1 HKDF-Expand-Label(secret, label, context, length) with HKDF-Expand (RFC 5869 2.3). */
export function hkdfExpandLabel(hash: 'sha256' | 'sha384', secret: Uint8Array, label: string, context: Uint8Array, length: number): Uint8Array {
  const full = Buffer.from('tls13 ' + label, 'latin1');
  const info = new Uint8Array([length >> 8, length & 0xff, full.length, ...full, context.length, ...context]);
  const out = new Uint8Array(length);
  let t: Uint8Array = new Uint8Array(0);
  let done = 0;
  for (let i = 1; done < length; i++) {
    t = hmac(hash, secret, new Uint8Array([...t, ...info, i]));
    out.set(t.subarray(0, Math.min(t.length, length - done)), done);
    done += t.length;
  }
  return out;
}

/**
 * TLS 1.3 traffic secret -> crypto_info (RFC 8446 7.3), starting at record `recSeq` (default 0).
 * GCM: salt = iv[0..4], iv = iv[4..12]; ChaCha20: iv = all 12.
 */
export function tls13TrafficKeys(secret: Uint8Array, suite: number, recSeq: bigint = 0n): CryptoInfo {
  const s = cipherSuiteInfo(suite);
  if (!s || s.version !== TLS_1_3_VERSION) throw new TlsError(`cipher suite 0x${suite.toString(16).padStart(4, '0')} is not a TLS 1.3 suite tlsnic knows`, { field: 'cipher_suite' });
  const want = s.hash === 'sha384' ? 48 : 32;
  if (secret.length !== want) throw new TlsError(`${s.hash} traffic secret must be ${want} bytes, got ${secret.length}`, { field: 'traffic_secret' });
  const d = CIPHER_DESC[s.cipherType];
  const key = hkdfExpandLabel(s.hash, secret, 'key', new Uint8Array(0), d.keySize);
  const iv = hkdfExpandLabel(s.hash, secret, 'iv', new Uint8Array(0), 12);
  if (s.cipherType === TLS_CIPHER_CHACHA20_POLY1305) {
    return { version: TLS_1_3_VERSION, cipherType: s.cipherType, key, iv, salt: new Uint8Array(0), recSeq: bigIntToRecSeq(recSeq) };
  }
  return { version: TLS_1_3_VERSION, cipherType: s.cipherType, key, iv: iv.slice(4), salt: iv.slice(0, 4), recSeq: bigIntToRecSeq(recSeq) };
}

export { TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_256 };
