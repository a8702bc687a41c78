// Per-record nonce and AAD (SPEC section 3), and one-shot record seal/open for the software path.
// TLS 1.2 GCM: nonce = salt || explicit nonce; AAD = rec_seq || type || 03 03 || plaintext length.
// TLS 1.2 ChaCha20 (RFC 7905) and TLS 1.3: nonce = iv XOR rec_seq (right-aligned); 1.3 AAD = the header.
import { readU32, writeU32 } from '../bytes.ts';
import type { AeadBackend } from '../crypto/aead.ts';
import { TlsError } from '../errors.ts';
import { CIPHER_DESC, TLS_1_3_VERSION, writeRecSeq, xorRecSeq, type CryptoInfo } from './crypto-info.ts';
import { CONTENT_APPLICATION_DATA, TLS_HEADER_SIZE, TLS_TAG_SIZE, writeRecordHeader } from './record.ts';

/** TLS 1.2 AAD into `out` (13 bytes; a new array by default): rec_seq || type || 03 03 || plaintext length. */
export function tls12Aad(recSeq: bigint, type: number, plaintextLen: number, out = new Uint8Array(13)): Uint8Array {
  writeRecSeq(out, 0, recSeq);
  out[8] = type;
  out[9] = 3;
  out[10] = 3;
  out[11] = plaintextLen >>> 8;
  out[12] = plaintextLen & 0xff;
  return out;
}

/** TLS 1.3 AAD into `out` (5 bytes; a new array by default): the record header. */
export function tls13Aad(recordLength: number, out = new Uint8Array(5)): Uint8Array {
  writeRecordHeader(out, 0, CONTENT_APPLICATION_DATA, recordLength);
  return out;
}

/** 12-byte static IV XOR the record number in its last 8 bytes, into `out` (a new array by default). */
export function xorNonce(staticIv: Uint8Array, recSeq: bigint, out = new Uint8Array(12)): Uint8Array {
  for (let i = 0; i < 12; i++) out[i] = staticIv[i]!; // `out` may be `staticIv`
  xorRecSeq(out, 4, recSeq);
  return out;
}

/** The 12-byte static IV the crypto_info describes (salt || iv for GCM, iv for ChaCha20). */
export function staticIv(info: CryptoInfo, out = new Uint8Array(12)): Uint8Array {
  out.set(info.salt, 0);
  out.set(info.iv, info.salt.length);
  return out;
}

/**
 * Nonce for a record, into `out` (12 bytes; a new array by default). For TLS 1.2 GCM the explicit nonce
 * travels in the record: pass it (8 bytes), as the device takes it from the record bytes rather than
 * computing it.
 */
export function recordNonce(info: CryptoInfo, recSeq: bigint, explicitNonce?: Uint8Array, out = new Uint8Array(12)): Uint8Array {
  const desc = CIPHER_DESC[info.cipherType];
  if (info.version === TLS_1_3_VERSION || desc.explicitNonceSize === 0) return xorNonce(staticIv(info, out), recSeq, out);
  if (!explicitNonce || explicitNonce.length !== 8) {
    throw new TlsError(`TLS 1.2 GCM needs the 8-byte explicit nonce, got ${explicitNonce?.length ?? 'none'}`, { field: 'explicit_nonce' });
  }
  for (let i = 0; i < 4; i++) out[i] = info.salt[i]!;
  for (let i = 0; i < 8; i++) out[4 + i] = explicitNonce[i]!;
  return out;
}

/**
 * The explicit nonce the kernel writes into TLS 1.2 GCM record number `recSeq`: the crypto_info iv plus
 * the distance from the crypto_info's rec_seq (tls_advance_record_sn() increments both together).
 */
export function explicitNonceFor(info: CryptoInfo, recSeq: bigint): Uint8Array {
  // iv + (recSeq - crypto_info.rec_seq) mod 2^64, in 32-bit halves: BigInt per byte cost ~5 us a record on
  // the TX path, which frames every record through here.
  const lo = Number(recSeq & 0xffff_ffffn);
  const hi = Number((recSeq >> 32n) & 0xffff_ffffn);
  const dLo = lo - readU32(info.recSeq, 4);
  const borrow = dLo < 0 ? 1 : 0;
  const dHi = hi - readU32(info.recSeq, 0) - borrow;
  const sumLo = readU32(info.iv, 4) + (dLo >>> 0);
  const out = new Uint8Array(8);
  writeU32(out, 0, readU32(info.iv, 0) + (dHi >>> 0) + (sumLo > 0xffff_ffff ? 1 : 0));
  writeU32(out, 4, sumLo);
  return out;
}

/**
 * Build a whole protected record from plaintext, as tls_sw does on TX. `padding` (TLS 1.3 only, RFC 8446
 * 5.4) appends that many zero bytes after the inner content type.
 */
export function sealRecord(
  backend: AeadBackend,
  info: CryptoInfo,
  recSeq: bigint,
  type: number,
  plaintext: Uint8Array,
  padding = 0,
): Uint8Array {
  const desc = CIPHER_DESC[info.cipherType];
  if (padding && info.version !== TLS_1_3_VERSION) throw new TlsError('record padding exists only in TLS 1.3', { field: 'padding' });
  if (info.version === TLS_1_3_VERSION) {
    const inner = new Uint8Array(plaintext.length + 1 + padding);
    inner.set(plaintext, 0);
    inner[plaintext.length] = type;
    const length = inner.length + TLS_TAG_SIZE;
    const sealed = backend.seal(desc.aead, info.key, recordNonce(info, recSeq), tls13Aad(length), inner);
    const out = new Uint8Array(TLS_HEADER_SIZE + length);
    writeRecordHeader(out, 0, CONTENT_APPLICATION_DATA, length);
    out.set(sealed, TLS_HEADER_SIZE);
    return out;
  }
  const explicit = desc.explicitNonceSize ? explicitNonceFor(info, recSeq) : new Uint8Array(0);
  const nonce = recordNonce(info, recSeq, explicit);
  const sealed = backend.seal(desc.aead, info.key, nonce, tls12Aad(recSeq, type, plaintext.length), plaintext);
  const length = explicit.length + sealed.length;
  const out = new Uint8Array(TLS_HEADER_SIZE + length);
  writeRecordHeader(out, 0, type, length);
  out.set(explicit, TLS_HEADER_SIZE);
  out.set(sealed, TLS_HEADER_SIZE + explicit.length);
  return out;
}

const toHex2 = (b: number) => b.toString(16).padStart(2, '0');

export type OpenedRecord = { type: number; plaintext: Uint8Array };

/**
 * Whether a protected TLS 1.3 record's tag authenticates (openRecord() answers null both for a bad tag and for
 * an inner plaintext of padding alone; the kernel counts TlsDecryptError only for the first).
 */
export function tls13RecordAuthenticates(backend: AeadBackend, info: CryptoInfo, recSeq: bigint, record: Uint8Array): boolean {
  const desc = CIPHER_DESC[info.cipherType];
  return backend.open(desc.aead, info.key, recordNonce(info, recSeq), record.subarray(0, TLS_HEADER_SIZE), record.subarray(TLS_HEADER_SIZE)) !== null;
}

/**
 * Authenticate and decrypt one whole record (header included); null when the tag does not verify (or a
 * TLS 1.3 inner plaintext is all padding). TlsError when `record` is not one whole protected record: shorter
 * than a header, a header length field that disagrees with the bytes given, or a version other than 03 03.
 */
export function openRecord(
  backend: AeadBackend,
  info: CryptoInfo,
  recSeq: bigint,
  record: Uint8Array,
): OpenedRecord | null {
  const desc = CIPHER_DESC[info.cipherType];
  const length = record.length - TLS_HEADER_SIZE;
  if (length < 0) throw new TlsError(`TLS record needs a 5-byte header, got ${record.length} bytes`, { offset: 0 });
  const field = (record[3]! << 8) | record[4]!;
  if (field !== length) throw new TlsError(`TLS record header says length ${field} but ${length} bytes follow it`, { offset: 3 });
  // Protected records always carry 03 03 (RFC 8446 5.1 legacy_record_version). TLS 1.2's AAD uses the
  // negotiated version, not these bytes, so they are checked here, as tls_rx_msg_size() does (-EINVAL).
  if (record[1] !== 3 || record[2] !== 3) {
    throw new TlsError(`TLS record version 0x${toHex2(record[1]!)}${toHex2(record[2]!)} is not 0x0303`, { offset: 1 });
  }
  if (info.version === TLS_1_3_VERSION) {
    const inner = backend.open(
      desc.aead, info.key, recordNonce(info, recSeq), record.subarray(0, TLS_HEADER_SIZE),
      record.subarray(TLS_HEADER_SIZE),
    );
    if (!inner) return null;
    let end = inner.length;
    while (end > 0 && inner[end - 1] === 0) end--;
    if (end === 0) return null; // no content type: RFC 8446 5.4 says unexpected_message
    return { type: inner[end - 1]!, plaintext: inner.subarray(0, end - 1) };
  }
  const explicit = record.subarray(TLS_HEADER_SIZE, TLS_HEADER_SIZE + desc.explicitNonceSize);
  const plaintextLen = length - desc.explicitNonceSize - TLS_TAG_SIZE;
  if (plaintextLen < 0) return null;
  const type = record[0]!;
  const plaintext = backend.open(
    desc.aead, info.key, recordNonce(info, recSeq, explicit), tls12Aad(recSeq, type, plaintextLen),
    record.subarray(TLS_HEADER_SIZE + desc.explicitNonceSize),
  );
  return plaintext ? { type, plaintext } : null;
}
