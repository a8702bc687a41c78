// The kernel's crypto_info shapes (include/uapi/linux/tls.h). They live in the device layer because the
// device is programmed with them; driver-api/ops.ts re-exports them with their zod validation.

export const TLS_1_2_VERSION = 0x0303;
export const TLS_1_3_VERSION = 0x0304;

export const TLS_CIPHER_AES_GCM_128 = 51;
export const TLS_CIPHER_AES_GCM_256 = 52;
export const TLS_CIPHER_CHACHA20_POLY1305 = 54;

export type TlsVersion = typeof TLS_1_2_VERSION | typeof TLS_1_3_VERSION;
export type TlsCipherType =
  | typeof TLS_CIPHER_AES_GCM_128
  | typeof TLS_CIPHER_AES_GCM_256
  | typeof TLS_CIPHER_CHACHA20_POLY1305;

/** Name of the AEAD a cipher type uses; the crypto engine is keyed by this. */
export type AeadAlgorithm = 'aes-gcm-128' | 'aes-gcm-256' | 'chacha20-poly1305';

/**
 * struct tls12_crypto_info_aes_gcm_{128,256} / tls12_crypto_info_chacha20_poly1305.
 * For AES-GCM, salt is the first 4 bytes of the 12-byte write IV and iv the 8 bytes after it (TLS 1.2: the
 * explicit nonce of the first record, as the kernel fills it; TLS 1.3: the rest of the static IV).
 * For ChaCha20-Poly1305, salt is empty and iv is the full 12-byte static IV.
 * recSeq is the 64-bit record sequence number of the first record this state applies to, big-endian.
 */
export type CryptoInfo = {
  version: TlsVersion;
  cipherType: TlsCipherType;
  key: Uint8Array;
  iv: Uint8Array;
  salt: Uint8Array;
  recSeq: Uint8Array;
};

/** Per-cipher sizes, as tls_cipher_desc in net/tls/tls.h. */
export type CipherDesc = {
  cipherType: TlsCipherType;
  aead: AeadAlgorithm;
  keySize: number;
  ivSize: number;
  saltSize: number;
  tagSize: number;
  recSeqSize: number;
  /** Bytes of explicit nonce carried in each TLS 1.2 record (8 for GCM, 0 for ChaCha20). */
  explicitNonceSize: number;
  /** Mainline tls_device offloads only these (tls_cipher_desc.offloadable). */
  offloadable: boolean;
};

export const CIPHER_DESC: Readonly<Record<TlsCipherType, CipherDesc>> = {
  [TLS_CIPHER_AES_GCM_128]: {
    cipherType: TLS_CIPHER_AES_GCM_128, aead: 'aes-gcm-128',
    keySize: 16, ivSize: 8, saltSize: 4, tagSize: 16, recSeqSize: 8, explicitNonceSize: 8, offloadable: true,
  },
  [TLS_CIPHER_AES_GCM_256]: {
    cipherType: TLS_CIPHER_AES_GCM_256, aead: 'aes-gcm-256',
    keySize: 32, ivSize: 8, saltSize: 4, tagSize: 16, recSeqSize: 8, explicitNonceSize: 8, offloadable: true,
  },
  [TLS_CIPHER_CHACHA20_POLY1305]: {
    cipherType: TLS_CIPHER_CHACHA20_POLY1305, aead: 'chacha20-poly1305',
    keySize: 32, ivSize: 12, saltSize: 0, tagSize: 16, recSeqSize: 8, explicitNonceSize: 0, offloadable: false,
  },
};

export function recSeqToBigInt(recSeq: Uint8Array): bigint {
  let v = 0n;
  for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(recSeq[i]!);
  return v;
}

export function bigIntToRecSeq(v: bigint): Uint8Array {
  const out = new Uint8Array(8);
  writeRecSeq(out, 0, v);
  return out;
}

const SEQ_SCRATCH = new DataView(new ArrayBuffer(8));

/**
 * `v` mod 2^64 as 8 big-endian bytes at out[off]: DataView's setBigUint64, then a byte copy (a shift and a
 * mask per byte made 16 BigInts, on the device's path once a record).
 */
export function writeRecSeq(out: Uint8Array, off: number, v: bigint): void {
  SEQ_SCRATCH.setBigUint64(0, v, false);
  for (let i = 0; i < 8; i++) out[off + i] = SEQ_SCRATCH.getUint8(i);
}

/** XORs `v` mod 2^64, as 8 big-endian bytes, onto out[off, off + 8) (a nonce from a static IV). */
export function xorRecSeq(out: Uint8Array, off: number, v: bigint): void {
  SEQ_SCRATCH.setBigUint64(0, v, false);
  for (let i = 0; i < 8; i++) out[off + i] = out[off + i]! ^ SEQ_SCRATCH.getUint8(i);
}
