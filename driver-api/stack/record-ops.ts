// Per-record byte work the stack does outside the device: frame an offloaded record with its tag
// placeholder (tls_device_record_close), encrypt a framed record in software (tls_enc_record in
// tls_device_fallback.c), undo device decryption (tls_device_reencrypt), strip TLS 1.3 padding.
import type { AeadBackend } from '../../emulator/crypto/aead.ts';
import { CIPHER_DESC, TLS_1_3_VERSION, type CryptoInfo } from '../../emulator/tls/crypto-info.ts';
import { explicitNonceFor, recordNonce, tls12Aad, tls13Aad } from '../../emulator/tls/record-crypto.ts';
import { CONTENT_APPLICATION_DATA, TLS_HEADER_SIZE, TLS_TAG_SIZE, writeRecordHeader } from '../../emulator/tls/record.ts';

/**
 * What the stack leaves in the tag slot of an offloaded record. The kernel leaves undefined bytes there
 * (the device overwrites them); a recognisable non-zero pattern lets tests prove it never reaches the wire.
 */
export const TAG_PLACEHOLDER: Uint8Array = Uint8Array.from({ length: TLS_TAG_SIZE }, (_, i) => (i & 1 ? 0xad : 0xde) ^ i);

/** Bytes between the header and the encrypted body: the TLS 1.2 explicit nonce, none for 1.3. */
export function bodyStart(info: CryptoInfo): number {
  return TLS_HEADER_SIZE + (info.version === TLS_1_3_VERSION ? 0 : CIPHER_DESC[info.cipherType].explicitNonceSize);
}

/**
 * models tls_fill_prepend() + tls_device_record_close(): header, explicit nonce (the kernel's iv +
 * rec_seq arithmetic), plaintext (TLS 1.3: + inner content type, no padding), tag placeholder.
 */
export function frameOffloadRecord(
  info: CryptoInfo, rcdSn: bigint, type: number, plaintext: Uint8Array, alloc: (n: number) => Uint8Array = (n) => new Uint8Array(n),
): Uint8Array {
  const tls13 = info.version === TLS_1_3_VERSION;
  const pre = bodyStart(info);
  const bodyLen = plaintext.length + (tls13 ? 1 : 0);
  // Every byte is written below: header, nonce, body, tag placeholder (a pooled buffer may hold anything).
  const out = alloc(pre + bodyLen + TLS_TAG_SIZE);
  writeRecordHeader(out, 0, tls13 ? CONTENT_APPLICATION_DATA : type, out.length - TLS_HEADER_SIZE);
  if (!tls13 && pre > TLS_HEADER_SIZE) out.set(explicitNonceFor(info, rcdSn), TLS_HEADER_SIZE);
  out.set(plaintext, pre);
  if (tls13) out[pre + plaintext.length] = type;
  out.set(TAG_PLACEHOLDER, pre + bodyLen);
  return out;
}

/**
 * models tls_enc_record(): the ciphertext record a framed plaintext record becomes, taking the nonce from
 * the record's own bytes (as the fallback does) so it equals what the device would have produced.
 */
export function encryptFramedRecord(backend: AeadBackend, info: CryptoInfo, rcdSn: bigint, framed: Uint8Array): Uint8Array {
  const desc = CIPHER_DESC[info.cipherType];
  const pre = bodyStart(info);
  const body = framed.subarray(pre, framed.length - TLS_TAG_SIZE);
  let nonce: Uint8Array;
  let aad: Uint8Array;
  if (info.version === TLS_1_3_VERSION) {
    nonce = recordNonce(info, rcdSn);
    aad = tls13Aad(framed.length - TLS_HEADER_SIZE);
  } else {
    nonce = recordNonce(info, rcdSn, framed.subarray(TLS_HEADER_SIZE, pre));
    aad = tls12Aad(rcdSn, framed[0]!, body.length);
  }
  const sealed = backend.seal(desc.aead, info.key, nonce, aad, body);
  const out = new Uint8Array(framed.length);
  out.set(framed.subarray(0, pre), 0);
  out.set(sealed, pre);
  return out;
}

/** The AEAD nonce of a received record (TLS 1.2 GCM: salt || explicit nonce from the record bytes). */
export function rxNonce(info: CryptoInfo, rcdSn: bigint, record: Uint8Array): Uint8Array {
  if (info.version === TLS_1_3_VERSION) return recordNonce(info, rcdSn);
  return recordNonce(info, rcdSn, record.subarray(TLS_HEADER_SIZE, bodyStart(info)));
}

/**
 * models tls_device_reencrypt(): XOR the keystream back onto body bytes [from, to) of `record` (record
 * offsets) that the device decrypted, so the whole record is ciphertext again. Header, explicit nonce and
 * tag are never touched by the device, so only the body range is ever XORed.
 */
export function reencryptRange(
  backend: AeadBackend, info: CryptoInfo, nonce: Uint8Array, record: Uint8Array, from: number, to: number,
): void {
  const lo = Math.max(from, bodyStart(info));
  const hi = Math.min(to, record.length - TLS_TAG_SIZE);
  if (lo >= hi) return;
  const ks = backend.keystream(CIPHER_DESC[info.cipherType].aead, info.key, nonce, lo - bodyStart(info));
  ks.xor(record.subarray(lo, hi));
}

/**
 * A device-decrypted record's content: TLS 1.2 the body; TLS 1.3 the inner plaintext with zero padding
 * and the inner content type removed (tls_padding_length()). Null when a 1.3 record has no content type.
 */
export function decryptedContent(info: CryptoInfo, record: Uint8Array): { type: number; plaintext: Uint8Array } | null {
  const body = record.subarray(bodyStart(info), record.length - TLS_TAG_SIZE);
  if (info.version !== TLS_1_3_VERSION) return { type: record[0]!, plaintext: body };
  let end = body.length;
  while (end > 0 && body[end - 1] === 0) end--;
  if (end === 0) return null;
  return { type: body[end - 1]!, plaintext: body.subarray(0, end - 1) };
}
