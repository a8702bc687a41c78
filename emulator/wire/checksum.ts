// RFC 1071 internet checksum, and the TCP pseudo-header sums for IPv4 and IPv6.

/** One's-complement sum of buf[off, off+len) as 16-bit big-endian words, not folded. */
export function sum16(buf: Uint8Array, off: number, len: number, acc = 0): number {
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
