// setsockopt(SOL_TLS, TLS_TX / TLS_RX) argument validation, as do_tls_setsockopt_conf() checks the
// struct tls12_crypto_info_* it copies in: known version, known cipher, exact field sizes for that cipher.
// Plain code, not a zod schema: every replay's stack runs it, and a replay without a scenario file does not
// load zod (cli/replay/scenario-schema.ts says why). crypto-info-schema.ts gives it to zod users as a schema.
import { ConfigError } from '../../emulator/errors.ts';
import {
  CIPHER_DESC, TLS_1_2_VERSION, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_256,
  TLS_CIPHER_CHACHA20_POLY1305, type CryptoInfo,
} from '../../emulator/tls/crypto-info.ts';

/** What is wrong with a crypto_info: the field's path and why. */
export type CryptoInfoProblem = { path: string[]; message: string };

const BYTE_FIELDS = ['key', 'iv', 'salt', 'recSeq'] as const;

/** The first problem of `input` as a TLS_TX / TLS_RX crypto_info, field by field in struct order, or null. */
export function cryptoInfoProblem(input: unknown): CryptoInfoProblem | null {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { path: [], message: `expected an object, got ${input === null ? 'null' : Array.isArray(input) ? 'an array' : typeof input}` };
  }
  const v = input as Record<string, unknown>;
  if (v.version !== TLS_1_2_VERSION && v.version !== TLS_1_3_VERSION) return { path: ['version'], message: 'unknown TLS version (expected 0x0303 or 0x0304)' };
  const cipher = v.cipherType;
  if (cipher !== TLS_CIPHER_AES_GCM_128 && cipher !== TLS_CIPHER_AES_GCM_256 && cipher !== TLS_CIPHER_CHACHA20_POLY1305) {
    return { path: ['cipherType'], message: 'unknown cipher type (expected 51, 52 or 54)' };
  }
  for (const f of BYTE_FIELDS) if (!(v[f] instanceof Uint8Array)) return { path: [f], message: 'expected a Uint8Array' };
  const d = CIPHER_DESC[cipher];
  const want = { key: d.keySize, iv: d.ivSize, salt: d.saltSize, recSeq: d.recSeqSize } as const;
  for (const f of BYTE_FIELDS) {
    const n = (v[f] as Uint8Array).length;
    if (n !== want[f]) return { path: [f], message: `${d.aead} needs a ${want[f]}-byte ${f}, got ${n}` };
  }
  return null;
}

/** Validate and copy (the kernel copies crypto_info out of user memory). ConfigError names the field path. */
export function parseCryptoInfo(input: unknown, dir: 'tx' | 'rx'): CryptoInfo {
  const p = cryptoInfoProblem(input);
  if (p) throw new ConfigError(`invalid crypto_info: ${p.message}`, { field: [dir, ...p.path].join('.') });
  const v = input as CryptoInfo;
  return {
    version: v.version, cipherType: v.cipherType, key: Uint8Array.from(v.key), iv: Uint8Array.from(v.iv),
    salt: Uint8Array.from(v.salt), recSeq: Uint8Array.from(v.recSeq),
  };
}
