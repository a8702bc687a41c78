// setsockopt(SOL_TLS, TLS_TX / TLS_RX) argument validation, as do_tls_setsockopt_conf() checks the
// struct tls12_crypto_info_* it copies in: known version, known cipher, exact field sizes for that cipher.
import { z } from 'zod';
import { ConfigError } from '../../emulator/errors.ts';
import {
  CIPHER_DESC, TLS_1_2_VERSION, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_256,
  TLS_CIPHER_CHACHA20_POLY1305, type CryptoInfo,
} from '../../emulator/tls/crypto-info.ts';

const bytes = z.instanceof(Uint8Array, { message: 'expected a Uint8Array' });

/** The crypto_info a TLS_TX / TLS_RX setsockopt carries; sizes checked against tls_cipher_desc. */
export const cryptoInfoSchema = z
  .object({
    version: z.union([z.literal(TLS_1_2_VERSION), z.literal(TLS_1_3_VERSION)], {
      message: 'unknown TLS version (expected 0x0303 or 0x0304)',
    }),
    cipherType: z.union(
      [z.literal(TLS_CIPHER_AES_GCM_128), z.literal(TLS_CIPHER_AES_GCM_256), z.literal(TLS_CIPHER_CHACHA20_POLY1305)],
      { message: 'unknown cipher type (expected 51, 52 or 54)' },
    ),
    key: bytes,
    iv: bytes,
    salt: bytes,
    recSeq: bytes,
  })
  .superRefine((v, ctx) => {
    const d = CIPHER_DESC[v.cipherType];
    const want = { key: d.keySize, iv: d.ivSize, salt: d.saltSize, recSeq: d.recSeqSize } as const;
    for (const field of ['key', 'iv', 'salt', 'recSeq'] as const) {
      if (v[field].length !== want[field]) {
        ctx.addIssue({
          code: 'custom',
          path: [field],
          message: `${d.aead} needs a ${want[field]}-byte ${field}, got ${v[field].length}`,
        });
      }
    }
  });

/** Validate and copy (the kernel copies crypto_info out of user memory). ConfigError names the field path. */
export function parseCryptoInfo(input: unknown, dir: 'tx' | 'rx'): CryptoInfo {
  const r = cryptoInfoSchema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = [dir, ...issue.path.map(String)].join('.');
    throw new ConfigError(`invalid crypto_info: ${issue.message}`, { field });
  }
  const v = r.data;
  return {
    version: v.version, cipherType: v.cipherType, key: Uint8Array.from(v.key), iv: Uint8Array.from(v.iv),
    salt: Uint8Array.from(v.salt), recSeq: Uint8Array.from(v.recSeq),
  };
}
