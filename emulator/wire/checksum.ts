// RFC 1071 internet checksum, and the TCP pseudo-header sums for IPv4 and IPv6.

/** One's-complement sum of buf[off, off+len) as 16-bit big-endian words, not folded. */
export function sum16(buf: Uint8Array, off: number, len: number, acc = 0): number {
  // Fast path for payload-sized ranges at a 4-byte aligned address: sum 32-bit words. The one's-complement
  // sum does not depend on byte order or word width (RFC 1071 section 2: 2^16 = 1 mod 2^16-1), so a
  // little-endian 32-bit sum folds to the byte-swapped 16-bit sum.
  const abs = buf.byteOffset + off;
  if (len >= 256 && (abs & 3) === 0 && (off & 1) === 0) {
    const words = len >>> 2;
    const u32 = new Uint32Array(buf.buffer, abs, words);
    let s = 0;
    let i = 0;
    for (; i + 4 <= words; i += 4) s += u32[i]! + u32[i + 1]! + u32[i + 2]! + u32[i + 3]!;
    for (; i < words; i++) s += u32[i]!;
    s = fold(s);
    if (LITTLE_ENDIAN) s = ((s & 0xff) << 8) | (s >>> 8);
    return sum16Bytes(buf, off + words * 4, len - words * 4, acc + s);
  }
  return sum16Bytes(buf, off, len, acc);
}

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

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
  let acc = sum16(buf, srcOff, addrLen);
  acc = sum16(buf, dstOff, addrLen, acc);
  acc += 6;
  acc += tcpLen >>> 16;
  acc += tcpLen & 0xffff;
  return acc;
}
