// The crypto engine's contract: a streaming AEAD state per TLS record, as an inline-crypto NIC keeps one
// per flow. Two backends implement it: node:crypto (fast, the hot path) and @noble/ciphers (pure JS, the
// independent check). Both must give byte-identical results to one-shot AEAD.
import type { AeadAlgorithm } from '../tls/crypto-info.ts';

export type { AeadAlgorithm };

export const AEAD_TAG_SIZE = 16;

/** Streaming encryption of one record body: feed plaintext in pieces, then take the tag. */
export interface AeadEncryptStream {
  /** Encrypt the next `data.length` bytes of the record body, writing ciphertext over `data` (in place). */
  update(data: Uint8Array): void;
  /**
   * Encrypt the next `src.length` bytes of the record body into dst[dstOff, dstOff + src.length), leaving
   * `src` as it is: what a device that reads the host's buffer and writes its own does, with one copy.
   */
  updateTo(src: Uint8Array, dst: Uint8Array, dstOff: number): void;
  /** Finish the record; returns the 16-byte tag. The stream is unusable afterwards. */
  final(): Uint8Array;
}

/** Streaming decryption of one record body: feed ciphertext in pieces, then check the tag. */
export interface AeadDecryptStream {
  /** Decrypt the next `data.length` bytes of the record body, writing plaintext over `data` (in place). */
  update(data: Uint8Array): void;
  /**
   * Like update() but leaves `data` as it is and returns the plaintext in a new array: what a device that
   * must not touch a packet before its records authenticate needs, without a copy of its own.
   */
  updateCopy(data: Uint8Array): Uint8Array;
  /** Finish the record; true when `tag` authenticates everything fed. The stream is unusable afterwards. */
  final(tag: Uint8Array): boolean;
}

/**
 * Keystream-only access to a record body starting at byte `offset`: what a device can still do for a record
 * whose beginning it missed (and what tls_device_reencrypt() does in the stack). XOR is its own inverse,
 * so one call encrypts or decrypts. Nothing here can produce or check a tag.
 */
export interface AeadKeystream {
  /** XOR the keystream for body bytes [offset, offset + data.length) onto `data` in place; advances. */
  xor(data: Uint8Array): void;
}

/**
 * `key` must stay as it is while a stream made from it is in use; `nonce` and `aad` are read during the call
 * (a backend copies what it keeps), so a caller may reuse their buffers for the next record.
 */
export interface AeadBackend {
  readonly name: 'node' | 'noble';
  encrypt(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array): AeadEncryptStream;
  decrypt(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array): AeadDecryptStream;
  keystream(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array, offset: number): AeadKeystream;
  /** One-shot: returns ciphertext || tag (a new array). */
  seal(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** One-shot: returns the plaintext, or null when the tag does not authenticate. */
  open(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null;
}

/** One-shot seal through a backend's streams: ciphertext || tag in a new array. */
export function sealByStream(b: AeadBackend, alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const s = b.encrypt(alg, key, nonce, aad);
  const out = new Uint8Array(plaintext.length + AEAD_TAG_SIZE);
  out.set(plaintext, 0);
  s.update(out.subarray(0, plaintext.length));
  out.set(s.final(), plaintext.length);
  return out;
}

/** One-shot open through a backend's streams: the plaintext, or null when the tag does not authenticate. */
export function openByStream(b: AeadBackend, alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null {
  if (sealed.length < AEAD_TAG_SIZE) return null;
  const n = sealed.length - AEAD_TAG_SIZE;
  const s = b.decrypt(alg, key, nonce, aad);
  // updateCopy: node:crypto's own output array is the plaintext (no copy of the input to decrypt in place).
  const out = s.updateCopy(sealed.subarray(0, n));
  return s.final(sealed.subarray(n)) ? out : null;
}
