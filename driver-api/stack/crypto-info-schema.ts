// The crypto_info check of crypto-info-check.ts as a zod schema, for programs that validate with zod: the
// same rule, the same messages, each problem at its field's path.
import { z } from 'zod';
import type { CryptoInfo } from '../../emulator/tls/crypto-info.ts';
import { cryptoInfoProblem } from './crypto-info-check.ts';

export { parseCryptoInfo } from './crypto-info-check.ts';

/** The crypto_info a TLS_TX / TLS_RX setsockopt carries; sizes checked against tls_cipher_desc. */
export const cryptoInfoSchema = z.unknown().transform((input, ctx): CryptoInfo => {
  const p = cryptoInfoProblem(input);
  if (p) {
    ctx.addIssue({ code: 'custom', path: p.path, message: p.message });
    return z.NEVER;
  }
  const v = input as CryptoInfo;
  return { version: v.version, cipherType: v.cipherType, key: v.key, iv: v.iv, salt: v.salt, recSeq: v.recSeq };
});
