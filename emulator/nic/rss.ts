// Receive side scaling: the Toeplitz hash over a TCP segment's 4-tuple and the indirection table that maps
// the hash to a receive queue, as a NIC spreads flows over queues (one per core). Follows the Microsoft RSS
// spec ("RSS hashing functions", NdisHashFunctionToeplitz; vectors in "Verifying the RSS hash calculation")
// and Linux's ethtool model (`ethtool -x`: ethtool_rxfh_indir_default() fills the table round robin).
import { ConfigError } from '../errors.ts';
import type { TcpSegmentView } from '../wire/packet.ts';

/**
 * The 40-byte key of the Microsoft verification suite (also the Intel 82599 datasheet's and DPDK's
 * default_rss_key): the hash of a tuple under this key is checkable against published values.
 */
export const RSS_DEFAULT_KEY: Uint8Array = Uint8Array.of(
  0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
  0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
  0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
);

/** Longest input hashed: IPv6 src + dst + ports (NDIS_HASH_TCP_IPV6). The key must be 4 bytes longer. */
export const TOEPLITZ_MAX_INPUT = 36;

/** Indirection table entries by default: the 82599's RETA size (ixgbe), what `ethtool -x` shows there. */
export const RSS_INDIR_DEFAULT_SIZE = 128;

/**
 * Toeplitz hash with one precomputed table per input byte position: the hash is linear over GF(2), so
 * hash(input) = XOR over i of table[i][input[i]], where table[i][v] is the XOR of the 32-bit key windows
 * starting at each set bit of v. A 12-byte IPv4 tuple is 12 lookups, a 36-byte IPv6 tuple 36; no allocation.
 */
export class Toeplitz {
  /** table[(i << 8) | v]: contribution of byte value v at input position i. */
  private readonly table = new Uint32Array(TOEPLITZ_MAX_INPUT * 256);

  constructor(key: Uint8Array = RSS_DEFAULT_KEY) {
    if (key.length < TOEPLITZ_MAX_INPUT + 4) {
      throw new ConfigError(`RSS key is ${key.length} bytes; Toeplitz over an IPv6 4-tuple needs ${TOEPLITZ_MAX_INPUT + 4}`, { field: 'rss.key' });
    }
    const bit = (p: number) => (key[p >> 3]! >> (7 - (p & 7))) & 1;
    // Both loops below were per bit of every entry (~14 ms of each replay worker's start, in the interpreter).
    // w: the 32 key bits starting at bit p ("left-most 32 bits of K" after p shifts), slid one bit at a time.
    let w = 0;
    for (let j = 0; j < 32; j++) w = (w << 1) | bit(j);
    const t = this.table;
    const windows = new Int32Array(8); // windows[b]: bit b of the input byte, b = 0 its most significant
    for (let i = 0; i < TOEPLITZ_MAX_INPUT; i++) {
      for (let b = 0; b < 8; b++) {
        windows[b] = w;
        w = (w << 1) | bit(i * 8 + b + 32);
      }
      // table[v] = table[v without its lowest set bit] ^ the window of that bit.
      const row = i << 8;
      for (let v = 1; v < 256; v++) {
        const low = v & -v;
        t[row | v] = t[row | (v ^ low)]! ^ windows[Math.clz32(low) - 24]!;
      }
    }
  }

  /** ComputeHash(input, n) of the spec over a byte string of at most TOEPLITZ_MAX_INPUT bytes. */
  hash(input: Uint8Array): number {
    if (input.length > TOEPLITZ_MAX_INPUT) {
      throw new ConfigError(`Toeplitz input is ${input.length} bytes, at most ${TOEPLITZ_MAX_INPUT}`, { field: 'rss.input' });
    }
    const t = this.table;
    let h = 0;
    for (let i = 0; i < input.length; i++) h ^= t[(i << 8) | input[i]!]!;
    return h >>> 0;
  }

  /**
   * The NDIS_HASH_TCP_IPV4 / _IPV6 input read in place from a buffer: address a, address b (addrLen bytes
   * each), then the 2-byte ports at portA and portB, in that order. The spec's order is source first.
   */
  hashTuple(buf: Uint8Array, addrA: number, addrB: number, addrLen: number, portA: number, portB: number): number {
    const t = this.table;
    let h = 0;
    for (let i = 0; i < addrLen; i++) h ^= t[(i << 8) | buf[addrA + i]!]!;
    for (let i = 0; i < addrLen; i++) h ^= t[((addrLen + i) << 8) | buf[addrB + i]!]!;
    const p = addrLen << 1;
    h ^= t[(p << 8) | buf[portA]!]! ^ t[((p + 1) << 8) | buf[portA + 1]!]!;
    h ^= t[((p + 2) << 8) | buf[portB]!]! ^ t[((p + 3) << 8) | buf[portB + 1]!]!;
    return h >>> 0;
  }
}

/** models ethtool_rxfh_indir_default(): entry i = i % queues, what `ethtool -x` shows after probe. */
export function rssIndirDefault(size: number, queues: number): Uint16Array {
  const t = new Uint16Array(size);
  for (let i = 0; i < size; i++) t[i] = i % queues;
  return t;
}

export type RssOptions = {
  queues: number;
  key?: Uint8Array;
  /** Indirection table entries (default 128). */
  indirSize?: number;
};

/** The NIC's RSS stage: Toeplitz hash of a segment's 4-tuple, indirection table, receive queue. */
export class Rss {
  readonly queues: number;
  readonly indir: Uint16Array;
  private readonly toeplitz: Toeplitz;

  constructor(opts: RssOptions) {
    const { queues } = opts;
    const size = opts.indirSize ?? RSS_INDIR_DEFAULT_SIZE;
    if (!Number.isInteger(queues) || queues < 1 || queues > 65535) {
      throw new ConfigError(`RSS queue count must be an integer in 1..65535, got ${queues}`, { field: 'rss.queues' });
    }
    if (!Number.isInteger(size) || size < 1 || size > 65536) {
      throw new ConfigError(`RSS indirection table size must be an integer in 1..65536, got ${size}`, { field: 'rss.indirSize' });
    }
    this.queues = queues;
    this.indir = rssIndirDefault(size, queues);
    this.toeplitz = new Toeplitz(opts.key);
  }

  /**
   * Toeplitz hash of a parsed TCP segment. `canonical` false: as the NIC computes it (source first), so the
   * two directions of a connection usually land on different queues, as on a real host where each side's
   * NIC sees only its own receive direction. `canonical` true: the endpoints sorted (lower address+port
   * first) before hashing, so both directions give one hash: a replay worker must own both directions of a
   * connection, since it plays the stack of both.
   */
  hashSegment(v: TcpSegmentView, canonical: boolean): number {
    const b = v.buf;
    const n = v.addrLength;
    const sa = v.srcAddrOffset;
    const da = v.dstAddrOffset;
    const sp = v.l4Offset;
    const dp = v.l4Offset + 2;
    if (canonical && compareEndpoints(b, sa, sp, da, dp, n) > 0) return this.toeplitz.hashTuple(b, da, sa, n, dp, sp);
    return this.toeplitz.hashTuple(b, sa, da, n, sp, dp);
  }

  /** Indirection: the hash's low bits index the table (hash % size; the same as masking for 2^k sizes). */
  queueOfHash(hash: number): number {
    return this.indir[(hash >>> 0) % this.indir.length]!;
  }

  queueOfSegment(v: TcpSegmentView, canonical: boolean): number {
    return this.queueOfHash(this.hashSegment(v, canonical));
  }
}

/** Byte order of (address, port) A against B: negative, 0 or positive. */
function compareEndpoints(b: Uint8Array, addrA: number, portA: number, addrB: number, portB: number, n: number): number {
  for (let i = 0; i < n; i++) {
    const d = b[addrA + i]! - b[addrB + i]!;
    if (d !== 0) return d;
  }
  return ((b[portA]! << 8) | b[portA + 1]!) - ((b[portB]! << 8) | b[portB + 1]!);
}
