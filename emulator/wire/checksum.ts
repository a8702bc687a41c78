// RFC 1071 internet checksum, and the TCP pseudo-header sums for IPv4 and IPv6.
import { SIMD_CHUNK, simdSumFor, type SimdSumFn } from './simd-sum.ts';

/** One's-complement sum of buf[off, off+len) as 16-bit big-endian words, not folded. */
export function sum16(buf: Uint8Array, off: number, len: number, acc = 0): number {
  if (len >= 128) {
    const simd = simdSumFor(buf.buffer);
    if (simd) return sum16Simd(simd, buf, off, len, acc);
  }
  return sum16Scalar(buf, off, len, acc);
}

/** sum16 in JavaScript alone: what runs without WebAssembly SIMD, and for short ranges. */
export function sum16Scalar(buf: Uint8Array, off: number, len: number, acc = 0): number {
  // Fast path for payload-sized ranges at a 4-byte aligned address: sum 32-bit words. The one's-complement
  // sum does not depend on byte order or word width (RFC 1071 section 2: 2^16 = 1 mod 2^16-1), so a
  // little-endian 32-bit sum folds to the byte-swapped 16-bit sum.
  if (len < 256) return sum16Bytes(buf, off, len, acc); // before byteOffset: a getter call per sum
  let abs = buf.byteOffset + off;
  if ((abs & 1) === 0) {
    if (abs & 2) {
      // One 16-bit word by hand reaches 4-byte alignment (a TCP header right after a 14-byte Ethernet
      // header and a 20-byte IPv4 header starts at 2 mod 4 unless the buffer reserves NET_IP_ALIGN).
      acc += (buf[off]! << 8) | buf[off + 1]!;
      off += 2;
      len -= 2;
      abs += 2;
    }
    const words = len >>> 2;
    const u32 = wordsOf(buf.buffer);
    let s = 0;
    let i = abs >>> 2;
    const end = i + words;
    for (; i + 4 <= end; i += 4) s += u32[i]! + u32[i + 1]! + u32[i + 2]! + u32[i + 3]!;
    for (; i < end; i++) s += u32[i]!;
    s = fold(s);
    if (LITTLE_ENDIAN) s = ((s & 0xff) << 8) | (s >>> 8);
    return sum16Bytes(buf, off + words * 4, len - words * 4, acc + s);
  }
  return sum16Bytes(buf, off, len, acc);
}

/**
 * sum16 by WebAssembly SIMD over packet memory (simd-sum.ts). The SIMD sum adds little-endian words:
 * byte-swapped like the 32-bit sum above, for the same reason.
 */
function sum16Simd(sum: SimdSumFn, buf: Uint8Array, off: number, len: number, acc: number): number {
  while (len >= 16) {
    const n = Math.min(len, SIMD_CHUNK) & ~15;
    const s = fold(sum(buf.byteOffset + off, n) >>> 0);
    acc += ((s & 0xff) << 8) | (s >>> 8);
    off += n;
    len -= n;
  }
  return sum16Bytes(buf, off, len, acc);
}

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

// A 32-bit view of the last buffer summed: frames come many to a buffer (an RX ring, and without SIMD the
// device's reused TX buffer), and a view per call was an allocation per packet.
let lastBuffer: ArrayBufferLike | null = null;
let lastWords: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
function wordsOf(b: ArrayBufferLike): Uint32Array<ArrayBufferLike> {
  if (b !== lastBuffer || lastWords.length !== b.byteLength >>> 2) {
    lastBuffer = b;
    lastWords = new Uint32Array(b, 0, b.byteLength >>> 2);
  }
  return lastWords;
}

function sum16Bytes(buf: Uint8Array, off: number, len: number, acc: number): number {
  const end = off + len;
  let i = off;
  for (; i + 1 < end; i += 2) acc += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) acc += buf[i]! << 8;
  return acc;
}

export function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return acc;
}

/** The checksum field value for the given bytes (checksum field zeroed or included, as the caller arranges). */
export function internetChecksum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  return ~fold(sum16(buf, off, len, initial)) & 0xffff;
}

/** Sum of the TCP pseudo-header: addresses, protocol 6, TCP length. */
export function pseudoHeaderSum(buf: Uint8Array, srcOff: number, dstOff: number, addrLen: number, tcpLen: number): number {
  // The byte loop straight away: 4 or 16 bytes, where sum16's dispatch cost more than the sums.
  let acc = sum16Bytes(buf, srcOff, addrLen, 0);
  acc = sum16Bytes(buf, dstOff, addrLen, acc);
  acc += 6;
  acc += tcpLen >>> 16;
  acc += tcpLen & 0xffff;
  return acc;
}

/** Unfolded sum of the TCP pseudo-header plus the segment buf[l4Off, end) (checksum field as it stands). */
export function tcpSegmentSum(buf: Uint8Array, srcOff: number, dstOff: number, addrLen: number, l4Off: number, end: number): number {
  const tcpLen = end - l4Off;
  return sum16(buf, l4Off, tcpLen, pseudoHeaderSum(buf, srcOff, dstOff, addrLen, tcpLen));
}

/** Recompute the TCP checksum in place (what a NIC's CHECKSUM_PARTIAL offload writes at csum_offset 16). */
export function fillTcpChecksum(buf: Uint8Array, srcOff: number, dstOff: number, addrLen: number, l4Off: number, end: number): void {
  const c = l4Off + 16;
  buf[c] = 0;
  buf[c + 1] = 0;
  const v = ~fold(tcpSegmentSum(buf, srcOff, dstOff, addrLen, l4Off, end)) & 0xffff;
  buf[c] = v >>> 8;
  buf[c + 1] = v & 0xff;
}

/**
 * RFC 1624 eqn. 3 incremental update: the checksum field after one 16-bit word of the covered data changes
 * from `oldWord` to `newWord` (HC' = ~(~HC + ~m + m')), as the kernel's csum_replace2() does.
 */
export function checksumReplace16(check: number, oldWord: number, newWord: number): number {
  return ~fold((~check & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff)) & 0xffff;
}

/** RFC 1624 update for a 32-bit field (two words), as csum_replace4() does: seq/ack rewrites, IPv4 addresses. */
export function checksumReplace32(check: number, oldValue: number, newValue: number): number {
  return checksumReplace16(checksumReplace16(check, oldValue >>> 16, newValue >>> 16), oldValue & 0xffff, newValue & 0xffff);
}
