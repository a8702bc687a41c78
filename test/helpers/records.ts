// Record streams for device tests: the bytes the stack hands the device (plaintext records with a tag
// placeholder) and the bytes software TLS would put on the wire, built independently of the device.
import type { AeadBackend } from '../../emulator/crypto/aead.ts';
import {
  CIPHER_DESC, TLS_1_2_VERSION, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_256,
  bigIntToRecSeq, type CryptoInfo, type TlsCipherType, type TlsVersion,
} from '../../emulator/tls/crypto-info.ts';
import { explicitNonceFor, sealRecord } from '../../emulator/tls/record-crypto.ts';
import { CONTENT_APPLICATION_DATA, TLS_HEADER_SIZE, TLS_TAG_SIZE, writeRecordHeader } from '../../emulator/tls/record.ts';
import type { Prng } from './prng.ts';
import { concatBytes } from '../../emulator/bytes.ts';

/** The pattern the tests put in tag placeholders: must never reach the wire. */
export const PLACEHOLDER_BYTE = 0xa5;

export type Variant = { version: TlsVersion; cipherType: TlsCipherType; label: string };
export const VARIANTS: readonly Variant[] = [
  { version: TLS_1_2_VERSION, cipherType: TLS_CIPHER_AES_GCM_128, label: 'TLS 1.2 AES-GCM-128' },
  { version: TLS_1_2_VERSION, cipherType: TLS_CIPHER_AES_GCM_256, label: 'TLS 1.2 AES-GCM-256' },
  { version: TLS_1_3_VERSION, cipherType: TLS_CIPHER_AES_GCM_128, label: 'TLS 1.3 AES-GCM-128' },
  { version: TLS_1_3_VERSION, cipherType: TLS_CIPHER_AES_GCM_256, label: 'TLS 1.3 AES-GCM-256' },
];

export function randomInfo(v: Variant, rng: Prng, recSeq?: bigint): CryptoInfo {
  const d = CIPHER_DESC[v.cipherType];
  return {
    version: v.version, cipherType: v.cipherType, key: rng.bytes(d.keySize), iv: rng.bytes(d.ivSize),
    salt: rng.bytes(d.saltSize), recSeq: bigIntToRecSeq(recSeq ?? BigInt(rng.int(0, 1000))),
  };
}

export type StreamRecord = {
  recSeq: bigint;
  type: number;
  plaintext: Uint8Array;
  /** Offset of the record in the stream. */
  offset: number;
  /** As the stack hands it to the device. */
  framed: Uint8Array;
  /** As software TLS puts it on the wire. */
  sealed: Uint8Array;
  /** Offset of the body (ciphertext) within the record, and its length. */
  bodyOffset: number;
  bodyLength: number;
};

export type RecordStream = {
  records: StreamRecord[];
  framed: Uint8Array;
  sealed: Uint8Array;
  /** The sealed stream with every body replaced by its plaintext (what a fully decrypted RX stream holds). */
  opened: Uint8Array;
};

/** Frame plaintext records as tls_device does on TX: header, explicit nonce, body, tag placeholder. */
export function frameRecord(info: CryptoInfo, recSeq: bigint, type: number, plaintext: Uint8Array): Uint8Array {
  const is13 = info.version === TLS_1_3_VERSION;
  const nonceLen = is13 ? 0 : CIPHER_DESC[info.cipherType].explicitNonceSize;
  const body = is13 ? plaintext.length + 1 : plaintext.length;
  const len = nonceLen + body + TLS_TAG_SIZE;
  const out = new Uint8Array(TLS_HEADER_SIZE + len);
  writeRecordHeader(out, 0, is13 ? CONTENT_APPLICATION_DATA : type, len);
  if (nonceLen) out.set(explicitNonceFor(info, recSeq), TLS_HEADER_SIZE);
  out.set(plaintext, TLS_HEADER_SIZE + nonceLen);
  if (is13) out[TLS_HEADER_SIZE + nonceLen + plaintext.length] = type;
  out.fill(PLACEHOLDER_BYTE, out.length - TLS_TAG_SIZE);
  return out;
}

export function makeRecordStream(backend: AeadBackend, info: CryptoInfo, sizes: readonly number[], rng: Prng): RecordStream {
  const is13 = info.version === TLS_1_3_VERSION;
  const nonceLen = is13 ? 0 : CIPHER_DESC[info.cipherType].explicitNonceSize;
  let recSeq = 0n;
  for (let i = 0; i < 8; i++) recSeq = (recSeq << 8n) | BigInt(info.recSeq[i]!);
  const records: StreamRecord[] = [];
  let offset = 0;
  for (const size of sizes) {
    const plaintext = rng.bytes(size);
    const type = CONTENT_APPLICATION_DATA;
    const framed = frameRecord(info, recSeq, type, plaintext);
    const sealed = sealRecord(backend, info, recSeq, type, plaintext);
    if (framed.length !== sealed.length) throw new Error('framing and sealing disagree on length');
    const bodyLength = sealed.length - TLS_HEADER_SIZE - nonceLen - TLS_TAG_SIZE;
    records.push({ recSeq, type, plaintext, offset, framed, sealed, bodyOffset: TLS_HEADER_SIZE + nonceLen, bodyLength });
    offset += sealed.length;
    recSeq++;
  }
  const sealed = concatBytes(records.map((r) => r.sealed));
  const opened = Uint8Array.from(sealed);
  for (const r of records) opened.set(r.framed.subarray(r.bodyOffset, r.bodyOffset + r.bodyLength), r.offset + r.bodyOffset);
  return { records, framed: concatBytes(records.map((r) => r.framed)), sealed, opened };
}

/** Random cut points: segment lengths in [1, maxSeg] covering `total` bytes. */
export function randomCuts(total: number, maxSeg: number, rng: Prng): number[] {
  const cuts: number[] = [];
  let done = 0;
  while (done < total) {
    const n = Math.min(total - done, rng.int(1, maxSeg));
    cuts.push(n);
    done += n;
  }
  return cuts;
}
