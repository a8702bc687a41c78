// The device's connection table: one entry per (direction, 4-tuple), as the RX steering rules and TX
// contexts (TIS/TIR on mlx5) of a real NIC. Open addressing over typed arrays so a lookup straight from
// packet bytes allocates nothing; lookupBurst() looks up a poll's worth of packets with their cache misses
// overlapped, which a table of millions of flows (hundreds of MB) needs.
import { readU32 } from '../bytes.ts';

const KEY_WORDS = 10; // 40 bytes: dir(1) family(1) pad(2) src(16) dst(16) sport(2) dport(2)
/**
 * The probe array is made of 64-byte buckets (one cache line) of four 16-byte cells:
 *   IPv4: [src, dst, sport | dport << 16, tag]: the whole key, so a lookup reads one line and nothing else;
 *   IPv6: [32-bit hash of the key, 0, sport | dport << 16, tag]: a matching cell is checked against the full
 *         key in `keys` (a second line, IPv6 only). An IPv4 entry has nothing in `keys`: its cell is its key, and
 *         a rehash moves cells as they are, so a table of IPv4 flows never touches that array (160 MB at 4e6
 *         entries, whose page faults were ~a third of an add's time here).
 * tag: 0 empty, -1 tombstone, else (entry index + 1) << 2 | family6 << 1 | tx. Linear probing goes on to the
 * next bucket when a bucket holds no match and no empty cell.
 */
const CELL_WORDS = 4;
const BUCKET_CELLS = 4;
const BUCKET_WORDS = CELL_WORDS * BUCKET_CELLS;
const EMPTY = 0;
const TOMBSTONE = -1;
/** Tags keep the entry index in 29 bits (a sign bit and two kind bits besides). */
export const MAX_TABLE_CAPACITY = (1 << 29) - 2;
/** Entries a table starts with; the first growth goes straight to the full capacity (up to PRESIZE_MAX). */
const INITIAL = 1024;
const PRESIZE_MAX = 1 << 22;
/**
 * Packets lookupBurst() hashes before it touches their buckets: enough independent cache/TLB misses in flight
 * to keep the memory system busy (at 4e6 flows 32 to 512 cost the same, 16 was slower).
 */
const BATCH = 32;
/** Key word 0 (writeKey): direction (rx 1, tx 2) | family << 8. */
const HEAD_RX4 = 1 | (4 << 8);
const HEAD_TX4 = 2 | (4 << 8);
const HEAD_RX6 = 1 | (6 << 8);
const HEAD_TX6 = 2 | (6 << 8);

export type FlowDirection = 'rx' | 'tx';

/** Packet-order key: src/dst as they appear in packets of that direction. */
export type FlowKeyFields = {
  dir: FlowDirection;
  family: 4 | 6;
  src: Uint8Array; // 4 or 16 bytes
  dst: Uint8Array;
  sport: number;
  dport: number;
};

export class FlowTable<T> {
  readonly capacity: number;
  /** The buckets, CELL_WORDS per cell (see there). */
  private slots: Int32Array;
  private cellMask: number;
  private bucketMask: number;
  private used = 0; // live + tombstones in cells
  /** KEY_WORDS per entry, written for IPv6 entries only; empty until the first one. */
  private keys: Uint32Array = new Uint32Array(0);
  private hashes: Int32Array;
  private values: (T | undefined)[] = [];
  private free: number[] = [];
  private next = 0;
  private live = 0;
  private readonly scratch = new Uint32Array(KEY_WORDS);
  /** lookupBurst()'s batch: per packet [w0, w1, w2] as in its cell, and the hash. */
  private readonly batchWords = new Int32Array(BATCH * 3);
  private readonly batchHashes = new Int32Array(BATCH);
  private readonly batchKeys = new Uint32Array(BATCH * KEY_WORDS);
  /** Where lookupBurst() leaves what its touch loop read, so the compiler cannot drop the loads. */
  private readonly sink = new Int32Array(1);

  constructor(capacity: number) {
    // 0 is a device with no TLS context memory: every add fails with -ENOSPC.
    if (!Number.isInteger(capacity) || capacity < 0) throw new RangeError(`table capacity ${capacity} must be an integer >= 0`);
    if (capacity > MAX_TABLE_CAPACITY) throw new RangeError(`table capacity ${capacity} is above the ${MAX_TABLE_CAPACITY} entries a handle can name`);
    this.capacity = capacity;
    // Small to start (a test bench makes thousands of NICs with few flows each); once a table outgrows that
    // it is sized for its whole capacity (up to 4M entries, then doubling), as a device's table memory is,
    // so filling it rehashes once, not at every doubling.
    const initial = Math.min(capacity, INITIAL);
    this.hashes = new Int32Array(initial);
    const cells = nextPow2(initial * 2);
    this.slots = new Int32Array(cells * CELL_WORDS);
    this.cellMask = cells - 1;
    this.bucketMask = cells / BUCKET_CELLS - 1;
  }

  get size(): number {
    return this.live;
  }

  /** Bytes of the bucket array a lookup reads (one line of it per IPv4 lookup). */
  get bucketBytes(): number {
    return this.slots.byteLength;
  }

  /** Bytes of the typed arrays: buckets, per-entry hashes, and full keys once an IPv6 entry was added (not the values). */
  get typedBytes(): number {
    return this.slots.byteLength + this.hashes.byteLength + this.keys.byteLength;
  }

  /** Add an entry; returns its stable handle, or -1 when the table is full. Throws on a duplicate key. */
  add(k: FlowKeyFields, value: T): number {
    if (this.live >= this.capacity) return -1;
    writeKey(this.scratch, k);
    const h = hashKey(this.scratch, 0);
    if (this.findKey(this.scratch, 0, h) >= 0) throw new RangeError('flow already has a context in this direction');
    const idx = this.free.length ? this.free.pop()! : this.next++;
    const key = this.scratch;
    const v6 = key[0]! >>> 8 === 6;
    this.ensureEntries(idx + 1, v6);
    // Rehash before the new entry is stored; size from live entries so add/del churn cannot grow it.
    if ((this.used + 1) * 2 > this.cellMask + 1) {
      // Over half full counting tombstones: clean up in place if the live entries fit, else double.
      const need = this.live + 1;
      const size = need * 2 <= this.cellMask + 1 ? this.cellMask + 1 : nextPow2(Math.max(need, Math.min(this.capacity, PRESIZE_MAX)) * 2);
      this.rehash(size);
    }
    if (v6) {
      const keys = this.keys;
      for (let i = 0, o = idx * KEY_WORDS; i < KEY_WORDS; i++) keys[o + i] = key[i]!;
    }
    this.hashes[idx] = h;
    this.values[idx] = value;
    const tag = ((idx + 1) << 2) | (v6 ? 2 : 0) | (key[0]! & 1 ? 0 : 1);
    if (this.place(this.slots, this.cellMask, h, v6 ? h | 0 : key[1]! | 0, v6 ? 0 : key[5]! | 0, key[9]! | 0, tag) === EMPTY) this.used++;
    this.live++;
    return idx;
  }

  get(handle: number): T | undefined {
    return this.values[handle];
  }

  remove(handle: number): T | undefined {
    const value = this.values[handle];
    if (value === undefined) return undefined;
    const slots = this.slots;
    const want = (handle + 1) << 2;
    let c = (this.hashes[handle]! & this.bucketMask) * BUCKET_CELLS;
    while ((slots[c * CELL_WORDS + 3]! & ~3) !== want) c = (c + 1) & this.cellMask;
    slots[c * CELL_WORDS + 3] = TOMBSTONE;
    this.values[handle] = undefined;
    this.free.push(handle);
    this.live--;
    return value;
  }

  /**
   * Look a packet up by its address bytes in place: `buf[srcOff..]` and `buf[dstOff..]` hold `addrLen`-byte
   * addresses. Returns the handle or -1.
   */
  lookup(dir: FlowDirection, buf: Uint8Array, srcOff: number, dstOff: number, addrLen: 4 | 16, sport: number, dport: number): number {
    if (addrLen === 4) {
      const src = readU32(buf, srcOff) | 0;
      const dst = readU32(buf, dstOff) | 0;
      const ports = sport | (dport << 16);
      const head = dir === 'rx' ? HEAD_RX4 : HEAD_TX4;
      return this.find4(dir === 'rx' ? 0 : 1, src, dst, ports, hash4(head, src, dst, ports));
    }
    const key = this.scratch;
    key[0] = dir === 'rx' ? HEAD_RX6 : HEAD_TX6;
    for (let i = 0; i < 4; i++) {
      key[1 + i] = readU32(buf, srcOff + i * 4);
      key[5 + i] = readU32(buf, dstOff + i * 4);
    }
    key[9] = (sport | (dport << 16)) >>> 0;
    return this.find6(key, 0, hashKey(key, 0));
  }

  /**
   * lookup() for a burst of packets (a NAPI poll's worth): `count` packed header records, `stride` bytes apart
   * from `hdrs[off]`, each `[src addrLen bytes][dst addrLen bytes][sport be16][dport be16]`. Writes each
   * packet's handle or -1 to `out[outOff + i]`; the same handles as lookup() one by one.
   *
   * A lookup in a table far larger than the caches waits ~100-200 ns on one cache and TLB miss, and a packet-
   * at-a-time loop has nothing else for the CPU to do meanwhile. Here the keys and hashes of BATCH packets are
   * computed first, then one small loop loads every packet's home bucket with no dependency between
   * iterations, so the CPU has all those misses in flight at once; the probes that follow hit the cache.
   */
  lookupBurst(dir: FlowDirection, addrLen: 4 | 16, hdrs: Uint8Array, off: number, stride: number, count: number, out: Int32Array, outOff = 0): void {
    const words = this.batchWords;
    const keys = this.batchKeys;
    const hashes = this.batchHashes;
    const v4 = addrLen === 4;
    const head = v4 ? (dir === 'rx' ? HEAD_RX4 : HEAD_TX4) : dir === 'rx' ? HEAD_RX6 : HEAD_TX6;
    const tx = dir === 'rx' ? 0 : 1;
    for (let first = 0; first < count; first += BATCH) {
      const n = Math.min(BATCH, count - first);
      for (let i = 0, p = off + first * stride; i < n; i++, p += stride) {
        const q = p + 2 * addrLen;
        const ports = ((hdrs[q]! << 8) | hdrs[q + 1]!) | (((hdrs[q + 2]! << 8) | hdrs[q + 3]!) << 16);
        if (v4) {
          const src = readU32(hdrs, p) | 0;
          const dst = readU32(hdrs, p + 4) | 0;
          words[i * 3] = src;
          words[i * 3 + 1] = dst;
          words[i * 3 + 2] = ports;
          hashes[i] = hash4(head, src, dst, ports);
        } else {
          const k = i * KEY_WORDS;
          keys[k] = head;
          for (let w = 0; w < 4; w++) {
            keys[k + 1 + w] = readU32(hdrs, p + w * 4);
            keys[k + 5 + w] = readU32(hdrs, p + 16 + w * 4);
          }
          keys[k + 9] = ports >>> 0;
          hashes[i] = hashKey(keys, k);
        }
      }
      // Each packet's home bucket, first word: one cache line (two when the array's start is not 64-byte
      // aligned, which a typed array's need not be; the bucket's first cells are where a match usually is).
      const slots = this.slots;
      const bucketMask = this.bucketMask;
      let acc = 0;
      for (let i = 0; i < n; i++) acc ^= slots[(hashes[i]! & bucketMask) * BUCKET_WORDS]!;
      this.sink[0] = acc;
      for (let i = 0; i < n; i++) {
        out[outOff + first + i] = v4 ? this.find4(tx, words[i * 3]!, words[i * 3 + 1]!, words[i * 3 + 2]!, hashes[i]!) : this.find6(keys, i * KEY_WORDS, hashes[i]!);
      }
    }
  }

  lookupKey(k: FlowKeyFields): number {
    writeKey(this.scratch, k);
    return this.findKey(this.scratch, 0, hashKey(this.scratch, 0));
  }

  *entries(): IterableIterator<[number, T]> {
    for (let i = 0; i < this.values.length; i++) {
      const v = this.values[i];
      if (v !== undefined) yield [i, v];
    }
  }

  /** The handle of the key at `key[ko..]` (the ten-word layout of writeKey), or -1. */
  private findKey(key: Uint32Array, ko: number, h: number): number {
    if (key[ko]! >>> 8 === 4) return this.find4(key[ko]! & 1 ? 0 : 1, key[ko + 1]! | 0, key[ko + 5]! | 0, key[ko + 9]! | 0, h);
    return this.find6(key, ko, h);
  }

  /** The handle of an IPv4 entry (`tx` 1 for the TX direction), or -1: its cell holds the whole key. */
  private find4(tx: number, src: number, dst: number, ports: number, h: number): number {
    const slots = this.slots;
    const cellMask = this.cellMask;
    let o = (h & this.bucketMask) * BUCKET_WORDS;
    for (;;) {
      const tag = slots[o + 3]!;
      if (tag === EMPTY) return -1;
      if ((tag & 3) === tx && tag > 0 && slots[o] === src && slots[o + 1] === dst && slots[o + 2] === ports) return (tag >> 2) - 1;
      o = (o + CELL_WORDS) & (cellMask * CELL_WORDS + 3);
    }
  }

  /** The handle of an IPv6 entry, or -1: a cell with its hash and ports is checked against the full key. */
  private find6(key: Uint32Array, ko: number, h: number): number {
    const slots = this.slots;
    const keys = this.keys;
    const cellMask = this.cellMask;
    const kind = 2 | (key[ko]! & 1 ? 0 : 1);
    const hs = h | 0;
    const ports = key[ko + 9]! | 0;
    let o = (h & this.bucketMask) * BUCKET_WORDS;
    for (;;) {
      const tag = slots[o + 3]!;
      if (tag === EMPTY) return -1;
      if ((tag & 3) === kind && tag > 0 && slots[o] === hs && slots[o + 2] === ports) {
        const e = ((tag >> 2) - 1) * KEY_WORDS;
        let i = 1;
        while (i < 9 && keys[e + i] === key[ko + i]) i++;
        if (i === 9) return (tag >> 2) - 1;
      }
      o = (o + CELL_WORDS) & (cellMask * CELL_WORDS + 3);
    }
  }

  /** Store a cell (hash `h`, words w0..w2 and its tag) in the first free cell of its probe sequence; returns what that cell held. */
  private place(slots: Int32Array, cellMask: number, h: number, w0: number, w1: number, w2: number, tag: number): number {
    let c = (h & (cellMask >>> 2)) * BUCKET_CELLS;
    while (slots[c * CELL_WORDS + 3]! > 0) c = (c + 1) & cellMask;
    const o = c * CELL_WORDS;
    const was = slots[o + 3]!;
    slots[o] = w0;
    slots[o + 1] = w1;
    slots[o + 2] = w2;
    slots[o + 3] = tag;
    return was;
  }

  /** Room for `n` entries; `v6`: the entry being added is IPv6 and needs its full key stored. */
  private ensureEntries(n: number, v6: boolean): void {
    if (n > this.hashes.length) {
      const cap = Math.min(this.capacity, Math.max(n, this.hashes.length * 2, Math.min(this.capacity, PRESIZE_MAX)));
      const hashes = new Int32Array(cap);
      hashes.set(this.hashes);
      this.hashes = hashes;
    }
    if ((v6 || this.keys.length) && this.keys.length < this.hashes.length * KEY_WORDS) {
      const keys = new Uint32Array(this.hashes.length * KEY_WORDS);
      keys.set(this.keys);
      this.keys = keys;
    }
  }

  private rehash(cells: number): void {
    const slots = new Int32Array(cells * CELL_WORDS);
    const cellMask = cells - 1;
    const old = this.slots;
    // Live cells move as they are (tombstones stay behind); the hash of an entry is kept per entry.
    for (let o = 3; o < old.length; o += CELL_WORDS) {
      const tag = old[o]!;
      if (tag > 0) this.place(slots, cellMask, this.hashes[(tag >> 2) - 1]!, old[o - 3]!, old[o - 2]!, old[o - 1]!, tag);
    }
    this.slots = slots;
    this.cellMask = cellMask;
    this.bucketMask = cells / BUCKET_CELLS - 1;
    this.used = this.live;
  }
}

function nextPow2(n: number): number {
  let p = 16;
  while (p < n) p *= 2;
  return p;
}

/** The key as ten 32-bit words: [dir | family << 8, src (4 words), dst (4 words), sport | dport << 16]. */
function writeKey(out: Uint32Array, k: FlowKeyFields): void {
  const len = k.family === 4 ? 4 : 16;
  if (k.src.length !== len || k.dst.length !== len) throw new RangeError(`IPv${k.family} addresses must be ${len} bytes`);
  out[0] = (k.dir === 'rx' ? 1 : 2) | ((k.family === 4 ? 4 : 6) << 8);
  for (let i = 0; i < 4; i++) {
    out[1 + i] = i * 4 < len ? readU32(k.src, i * 4) : 0;
    out[5 + i] = i * 4 < len ? readU32(k.dst, i * 4) : 0;
  }
  out[9] = (k.sport | (k.dport << 16)) >>> 0;
}


/**
 * The key's hash: Murmur3-style mixing of its words with the finalizer, so the bucket index (low bits) is
 * well mixed. An IPv4 key mixes only its four meaningful words (head, src, dst, ports), as lookup() does
 * straight from packet bytes.
 */
function hashKey(key: Uint32Array, ko: number): number {
  if (key[ko]! >>> 8 === 4) return hash4(key[ko]!, key[ko + 1]!, key[ko + 5]!, key[ko + 9]!);
  let h = 0x811c9dc5;
  for (let i = 0; i < KEY_WORDS; i++) h = mix(h, key[ko + i]!);
  return fmix(h);
}

function hash4(head: number, src: number, dst: number, ports: number): number {
  return fmix(mix(mix(mix(mix(0x811c9dc5, head), src), dst), ports));
}

/** Test access: the hash a key is stored under (IPv6 cells compare it before the full key), as an int32. */
export function flowKeyHash(k: FlowKeyFields): number {
  const key = new Uint32Array(KEY_WORDS);
  writeKey(key, k);
  return hashKey(key, 0);
}

function mix(h: number, word: number): number {
  let k = Math.imul(word, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  h ^= Math.imul(k, 0x1b873593);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** The finalizer; returns an int32 (a small integer to V8: a uint32 above 2^31 would be a heap number per call). */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
