// TLS record framing (RFC 5246 6.2, RFC 8446 5.1) and the kernel's size limits (net/tls/tls_sw.c
// tls_rx_msg_size()).
import { TlsError, type ErrorPlace } from '../errors.ts';
import { CIPHER_DESC, TLS_1_3_VERSION, type TlsCipherType, type TlsVersion } from './crypto-info.ts';

export const TLS_HEADER_SIZE = 5;
export const TLS_MAX_PAYLOAD_SIZE = 16384;
export const TLS_TAG_SIZE = 16;

export const CONTENT_CHANGE_CIPHER_SPEC = 20;
export const CONTENT_ALERT = 21;
export const CONTENT_HANDSHAKE = 22;
export const CONTENT_APPLICATION_DATA = 23;
/** TLS 1.3 handshake message type KeyUpdate (RFC 8446 B.3): the sender's keys change after this record. */
export const HANDSHAKE_KEY_UPDATE = 24;

/**
 * Whether an opened record (its content type and plaintext) is a TLS 1.3 KeyUpdate: a handshake record whose
 * first message is one, as the kernel's tls_check_pending_rekey() tells.
 */
export function isKeyUpdate(version: number, type: number, plaintext: Uint8Array): boolean {
  return version === TLS_1_3_VERSION && type === CONTENT_HANDSHAKE && plaintext[0] === HANDSHAKE_KEY_UPDATE;
}

/** Bytes a record adds around its plaintext: header + explicit nonce + tag (+ inner type for 1.3). */
export function recordOverhead(version: TlsVersion, cipherType: TlsCipherType): number {
  const desc = CIPHER_DESC[cipherType];
  if (version === TLS_1_3_VERSION) return TLS_HEADER_SIZE + 1 + desc.tagSize;
  return TLS_HEADER_SIZE + desc.explicitNonceSize + desc.tagSize;
}

/**
 * Largest legal value of the header's length field for this version and cipher: the kernel accepts
 * TLS_MAX_PAYLOAD_SIZE + cipher overhead (+ 1 for the TLS 1.3 inner content type), nothing more.
 */
export function maxRecordLength(version: TlsVersion, cipherType: TlsCipherType): number {
  return recordOverhead(version, cipherType) - TLS_HEADER_SIZE + TLS_MAX_PAYLOAD_SIZE;
}

/** Largest length field over every offloadable configuration: what a device scanning blind accepts. */
export const MAX_RECORD_LENGTH_ANY = TLS_MAX_PAYLOAD_SIZE + 256;

export type RecordHeader = { type: number; version: number; length: number };

export function isKnownContentType(type: number): boolean {
  return type >= CONTENT_CHANGE_CIPHER_SPEC && type <= 24;
}

/**
 * Parse the 5-byte header at `off`. Throws TlsError when the type is unknown, the version is not 3.x, or
 * the length exceeds `maxLength`.
 */
export function parseRecordHeader(
  buf: Uint8Array,
  off: number,
  maxLength: number = MAX_RECORD_LENGTH_ANY,
  where: ErrorPlace = {},
): RecordHeader {
  if (off + TLS_HEADER_SIZE > buf.length) {
    throw new TlsError(`TLS record header needs 5 bytes, ${buf.length - off} left`, { ...where, offset: off });
  }
  const type = buf[off]!;
  const version = (buf[off + 1]! << 8) | buf[off + 2]!;
  const length = (buf[off + 3]! << 8) | buf[off + 4]!;
  if (!isKnownContentType(type)) {
    throw new TlsError(`TLS record content type ${type} is not one of 20..24`, { ...where, offset: off });
  }
  if (buf[off + 1] !== 3) {
    throw new TlsError(`TLS record version 0x${version.toString(16).padStart(4, '0')} is not 3.x`, {
      ...where, offset: off + 1,
    });
  }
  if (length > maxLength) {
    throw new TlsError(`TLS record length ${length} exceeds the limit ${maxLength}`, { ...where, offset: off + 3 });
  }
  return { type, version, length };
}

export function writeRecordHeader(buf: Uint8Array, off: number, type: number, length: number): void {
  buf[off] = type;
  buf[off + 1] = 3;
  buf[off + 2] = 3;
  buf[off + 3] = length >>> 8;
  buf[off + 4] = length & 0xff;
}
