// The device's connection table: one entry per (direction, 4-tuple), as the RX steering rules and TX
// contexts (TIS/TIR on mlx5) of a real NIC. Open addressing over typed arrays so a lookup straight from
// packet bytes allocates nothing; lookupBurst() looks up a poll's worth of packets with their cache misses
// overlapped, which a table of millions of flows (hundreds of MB) needs.
import { readU32 } from '../bytes.ts';

const KEY_WORDS = 10; // 40 bytes: dir(1) family(1) pad(2) src(16) dst(16) sport(2) dport(2)
const SLOT_WORDS = 2 + KEY_WORDS;
const EMPTY = 0;
const TOMBSTONE = -1;
/** Entries a table starts with; the first growth goes straight to the full capacity (up to PRESIZE_MAX). */
const INITIAL = 1024;
const PRESIZE_MAX = 1 << 22;
/**
 * Packets lookupBurst() hashes before it touches their slots: enough independent cache/TLB misses in flight
 * to keep the memory system busy (at 4e6 flows 64 and 128 were no faster, 16 was slower).
 */
const BATCH = 32;

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
  /**
   * Probe array, SLOT_WORDS words per slot: [entry index + 1 (0 empty, -1 tombstone), hash, key words]. The key
   * lives in the slot so a lookup touches one place in memory, however large the table.
   */
  private slots: Int32Array;
  private mask: number;
  private used = 0; // live + tombstones in slots
  private keys: Uint32Array; // KEY_WORDS per entry
  private hashes: Uint32Array;
  private values: (T | undefined)[] = [];
  private free: number[] = [];
  private next = 0;
  private live = 0;
  private readonly scratch = new Uint32Array(KEY_WORDS);
  private readonly batchKeys = new Uint32Array(BATCH * KEY_WORDS);
  private readonly batchHashes = new Uint32Array(BATCH);
  /** Where lookupBurst() leaves what its touch loop read, so the compiler cannot drop the loads. */
  private readonly sink = new Int32Array(1);

  constructor(capacity: number) {
    // 0 is a device with no TLS context memory: every add fails with -ENOSPC.
    if (!Number.isInteger(capacity) || capacity < 0) throw new RangeError(`table capacity ${capacity} must be an integer >= 0`);
    this.capacity = capacity;
    // Small to start (a test bench makes thousands of NICs with few flows each); once a table outgrows that
    // it is sized for its whole capacity (up to 4M entries, then doubling), as a device's table memory is,
    // so filling it rehashes once, not at every doubling.
    const initial = Math.min(capacity, INITIAL);
    this.keys = new Uint32Array(initial * KEY_WORDS);
    this.hashes = new Uint32Array(initial);
    const slots = nextPow2(initial * 2);
    this.slots = new Int32Array((slots + 1) * SLOT_WORDS); // + 1: see lookupBurst()
    this.mask = slots - 1;
  }

  get size(): number {
    return this.live;
  }

  /** Add an entry; returns its stable handle, or -1 when the table is full. Throws on a duplicate key. */
  add(k: FlowKeyFields, value: T): number {
    if (this.live >= this.capacity) return -1;
    writeKey(this.scratch, k);
    const h = hashKey(this.scratch, 0);
    if (this.findSlot(this.scratch, 0, h) >= 0) throw new RangeError('flow already has a context in this direction');
    const idx = this.free.length ? this.free.pop()! : this.next++;
    this.ensureEntries(idx + 1);
    // Rehash before the new entry is stored; size from live entries so add/del churn cannot grow it.
    if ((this.used + 1) * 2 > this.mask + 1) {
      // Over half full counting tombstones: clean up in place if the live entries fit, else double.
      const need = this.live + 1;
      const size = need * 2 <= this.mask + 1 ? this.mask + 1 : nextPow2(Math.max(need, Math.min(this.capacity, PRESIZE_MAX)) * 2);
      this.rehash(size);
    }
    const key = this.scratch;
    const keys = this.keys;
    for (let i = 0, o = idx * KEY_WORDS; i < KEY_WORDS; i++) keys[o + i] = key[i]!;
    this.hashes[idx] = h;
    this.values[idx] = value;
    let s = h & this.mask;
    while (this.slots[SLOT_WORDS * s]! > 0) s = (s + 1) & this.mask;
    if (this.slots[SLOT_WORDS * s] === EMPTY) this.used++;
    this.slots[SLOT_WORDS * s] = idx + 1;
    this.slots[SLOT_WORDS * s + 1] = h;
    for (let i = 0, o = SLOT_WORDS * s + 2; i < KEY_WORDS; i++) this.slots[o + i] = key[i]! | 0;
    this.live++;
    return idx;
  }

  get(handle: number): T | undefined {
    return this.values[handle];
  }

  remove(handle: number): T | undefined {
    const value = this.values[handle];
    if (value === undefined) return undefined;
    const h = this.hashes[handle]!;
    let s = h & this.mask;
    while (this.slots[SLOT_WORDS * s] !== handle + 1) s = (s + 1) & this.mask;
    this.slots[SLOT_WORDS * s] = TOMBSTONE;
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
    const key = this.scratch;
    key[0] = (dir === 'rx' ? 1 : 2) | ((addrLen === 4 ? 4 : 6) << 8);
    for (let i = 0; i < 4; i++) {
      key[1 + i] = i * 4 < addrLen ? readU32(buf, srcOff + i * 4) : 0;
      key[5 + i] = i * 4 < addrLen ? readU32(buf, dstOff + i * 4) : 0;
    }
    key[9] = (sport | (dport << 16)) >>> 0;
    const s = this.findSlot(key, 0, hashKey(key, 0));
    return s < 0 ? -1 : this.slots[SLOT_WORDS * s]! - 1;
  }

  /**
   * lookup() for a burst of packets (a NAPI poll's worth): `count` packed header records, `stride` bytes apart
   * from `hdrs[off]`, each `[src addrLen bytes][dst addrLen bytes][sport be16][dport be16]`. Writes each
   * packet's handle or -1 to `out[outOff + i]`; the same handles as lookup() one by one.
   *
   * A lookup in a table far larger than the caches waits ~200 ns on one cache and TLB miss, and a packet-at-a-
   * time loop has nothing else for the CPU to do meanwhile. Here the keys and hashes of BATCH packets are
   * computed first, then one small loop loads every packet's home slot with no dependency between
   * iterations, so the CPU has all those misses in flight at once; the probes that follow hit the cache.
   */
  lookupBurst(dir: FlowDirection, addrLen: 4 | 16, hdrs: Uint8Array, off: number, stride: number, count: number, out: Int32Array, outOff = 0): void {
    const keys = this.batchKeys;
    const hashes = this.batchHashes;
    const head = (dir === 'rx' ? 1 : 2) | ((addrLen === 4 ? 4 : 6) << 8);
    for (let first = 0; first < count; first += BATCH) {
      const n = Math.min(BATCH, count - first);
      for (let i = 0, p = off + first * stride; i < n; i++, p += stride) {
        const k = i * KEY_WORDS;
        keys[k] = head;
        if (addrLen === 4) {
          keys[k + 1] = readU32(hdrs, p);
          keys[k + 2] = 0;
          keys[k + 3] = 0;
          keys[k + 4] = 0;
          keys[k + 5] = readU32(hdrs, p + 4);
          keys[k + 6] = 0;
          keys[k + 7] = 0;
          keys[k + 8] = 0;
        } else {
          for (let w = 0; w < 4; w++) {
            keys[k + 1 + w] = readU32(hdrs, p + w * 4);
            keys[k + 5 + w] = readU32(hdrs, p + 16 + w * 4);
          }
        }
        const q = p + 2 * addrLen;
        keys[k + 9] = (((hdrs[q]! << 8) | hdrs[q + 1]!) | (((hdrs[q + 2]! << 8) | hdrs[q + 3]!) << 16)) >>> 0;
        hashes[i] = hashKey(keys, k);
      }
      // The home slot and the next one (linear probing at load ~1/2 goes on to it about half the time): 96
      // bytes, three cache lines at most, and words 0, 11 and 23 land in each of them. Reading word 23 of the
      // last slot is why the slot array has a spare slot at its end.
      const slots = this.slots;
      const mask = this.mask;
      let acc = 0;
      for (let i = 0; i < n; i++) {
        const o = SLOT_WORDS * (hashes[i]! & mask);
        acc ^= slots[o]! ^ slots[o + 11]! ^ slots[o + 23]!;
      }
      this.sink[0] = acc;
      for (let i = 0; i < n; i++) {
        const s = this.findSlot(keys, i * KEY_WORDS, hashes[i]!);
        out[outOff + first + i] = s < 0 ? -1 : slots[SLOT_WORDS * s]! - 1;
      }
    }
  }

  lookupKey(k: FlowKeyFields): number {
    writeKey(this.scratch, k);
    const s = this.findSlot(this.scratch, 0, hashKey(this.scratch, 0));
    return s < 0 ? -1 : this.slots[SLOT_WORDS * s]! - 1;
  }

  *entries(): IterableIterator<[number, T]> {
    for (let i = 0; i < this.values.length; i++) {
      const v = this.values[i];
      if (v !== undefined) yield [i, v];
    }
  }

  /** The slot holding the key at `key[ko..]`, or -1. */
  private findSlot(key: Uint32Array, ko: number, h: number): number {
    const slots = this.slots;
    const hs = h | 0;
    let s = h & this.mask;
    for (;;) {
      const o = SLOT_WORDS * s;
      const e = slots[o]!;
      if (e === EMPTY) return -1;
      if (e > 0 && slots[o + 1] === hs) {
        let i = 0;
        while (i < KEY_WORDS && slots[o + 2 + i] === (key[ko + i]! | 0)) i++;
        if (i === KEY_WORDS) return s;
      }
      s = (s + 1) & this.mask;
    }
  }

  private ensureEntries(n: number): void {
    if (n <= this.hashes.length) return;
    const cap = Math.min(this.capacity, Math.max(n, this.hashes.length * 2, Math.min(this.capacity, PRESIZE_MAX)));
    const keys = new Uint32Array(cap * KEY_WORDS);
    keys.set(this.keys);
    this.keys = keys;
    const hashes = new Uint32Array(cap);
    hashes.set(this.hashes);
    this.hashes = hashes;
  }

  private rehash(size: number): void {
    const slots = new Int32Array((size + 1) * SLOT_WORDS);
    const mask = size - 1;
    for (let i = 0; i < this.values.length; i++) {
      if (this.values[i] === undefined) continue;
      const h = this.hashes[i]!;
      let s = h & mask;
      while (slots[SLOT_WORDS * s] !== EMPTY) s = (s + 1) & mask;
      slots[SLOT_WORDS * s] = i + 1;
      slots[SLOT_WORDS * s + 1] = h;
      slots.set(this.keys.subarray(i * KEY_WORDS, (i + 1) * KEY_WORDS), SLOT_WORDS * s + 2);
    }
    this.slots = slots;
    this.mask = mask;
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


/** Murmur3-style mixing of the ten 32-bit words, with its finalizer so linear probing sees mixed low bits. */
function hashKey(key: Uint32Array, ko: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < KEY_WORDS; i++) {
    let k = Math.imul(key[ko + i]!, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
