// setsockopt crypto_info validation: the stack's plain check (crypto-info-check.ts) and the zod schema the
// library offers (crypto-info-schema.ts) accept and reject the same objects, with the same field and message.
import test from 'ava';
import { ConfigError } from '../emulator/errors.ts';
import { TLS_1_2_VERSION, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_256, TLS_CIPHER_CHACHA20_POLY1305 } from '../emulator/tls/crypto-info.ts';
import { parseCryptoInfo } from '../driver-api/stack/crypto-info-check.ts';
import { cryptoInfoSchema } from '../driver-api/stack/crypto-info-schema.ts';

const good = {
  version: TLS_1_2_VERSION, cipherType: TLS_CIPHER_AES_GCM_128,
  key: new Uint8Array(16).fill(1), iv: new Uint8Array(8).fill(2), salt: new Uint8Array(4).fill(3), recSeq: new Uint8Array(8),
};

const cases: Array<[string, unknown, string | null, RegExp | null]> = [
  ['TLS 1.2 AES-GCM-128', good, null, null],
  ['TLS 1.3 AES-GCM-256', { ...good, version: TLS_1_3_VERSION, cipherType: TLS_CIPHER_AES_GCM_256, key: new Uint8Array(32) }, null, null],
  ['ChaCha20-Poly1305 (12-byte iv, no salt)', { ...good, cipherType: TLS_CIPHER_CHACHA20_POLY1305, key: new Uint8Array(32), iv: new Uint8Array(12), salt: new Uint8Array(0) }, null, null],
  ['a Buffer key', { ...good, key: Buffer.alloc(16) }, null, null],
  ['not an object', 'key', 'tx', /expected an object, got string/],
  ['null', null, 'tx', /expected an object, got null/],
  ['an array', [1, 2], 'tx', /expected an object, got an array/],
  ['TLS 1.1', { ...good, version: 0x0302 }, 'tx.version', /unknown TLS version/],
  ['no cipher', { ...good, cipherType: undefined }, 'tx.cipherType', /unknown cipher type/],
  ['a number array for iv', { ...good, iv: [0, 0, 0, 0, 0, 0, 0, 0] }, 'tx.iv', /expected a Uint8Array/],
  ['a 32-byte key for AES-128', { ...good, key: new Uint8Array(32) }, 'tx.key', /aes-gcm-128 needs a 16-byte key, got 32/],
  ['a short rec_seq', { ...good, recSeq: new Uint8Array(7) }, 'tx.recSeq', /needs a 8-byte recSeq, got 7/],
];

for (const [name, input, field, message] of cases) {
  test(`crypto_info ${name}: ${field === null ? 'accepted' : `rejected at ${field}`} by both`, (t) => {
    const z = cryptoInfoSchema.safeParse(input);
    if (field === null) {
      const ci = parseCryptoInfo(input, 'tx');
      const v = input as typeof good;
      t.true(z.success);
      t.deepEqual([...ci.key], [...v.key]);
      t.not(ci.key, v.key); // copied, as the kernel copies it in
      t.deepEqual({ ...z.data, key: [...z.data!.key] }, { ...v, key: [...v.key] });
      return;
    }
    const e = t.throws(() => parseCryptoInfo(input, 'tx'), { instanceOf: ConfigError });
    t.is(e.where.field, field);
    t.regex(e.message, message!);
    t.false(z.success);
    const issue = z.error!.issues[0]!;
    t.is(['tx', ...issue.path.map(String)].join('.'), field);
    t.is(`invalid crypto_info: ${issue.message}`, e.message.replace(/ \(at .*\)$/, ''));
  });
}
