// Connections seen so far per 4-tuple, for the tuples whose last connection the replay has let go (TIME_WAIT
// after its end): the next connection on one is numbered as a reuse. A capture of a million short connections
// has a million such tuples, so they live in typed arrays (outside V8's heap, filled to 3/4 at most), not in a
// Map of strings: 23-45 bytes an IPv4 tuple instead of ~60 live in the heap and V8's slack over that.

/**
 * Open addressing with linear probing over canonical keys (engine.ts FlowIndex: family, then the low endpoint's
 * address and port, then the high one's: 13 bytes for IPv4, 37 for IPv6), one table per key length. Counts are
 * >= 1 (0 marks an empty slot). Nothing is ever removed: a tuple's count is only read when no live connection
 * holds the tuple, and set again when its next connection goes.
 */
export class TupleCounts {
  private readonly tables = new Map<number, Table>();
  private entries = 0;

  get size(): number {
    return this.entries;
  }

  get(key: Uint8Array): number | undefined {
    const t = this.tables.get(key.length);
    if (!t) return undefined;
    const slot = t.find(key, hashKey(key));
    return t.counts[slot] ? t.counts[slot] : undefined;
  }

  set(key: Uint8Array, count: number): void {
    if (!Number.isInteger(count) || count < 1 || count > 0xffff_ffff) throw new RangeError(`TupleCounts: count ${count} out of [1, 2^32)`);
    let t = this.tables.get(key.length);
    if (!t) this.tables.set(key.length, (t = new Table(key.length, 1024)));
    const h = hashKey(key);
    let slot = t.find(key, h);
    if (t.counts[slot] === 0) {
      if ((t.used + 1) * 4 > t.capacity * 3) {
        t = t.grown();
        this.tables.set(key.length, t);
        slot = t.find(key, h);
      }
      t.keys.set(key, slot * t.stride);
      t.used++;
      this.entries++;
    }
    t.counts[slot] = count;
  }
}

class Table {
  readonly keys: Uint8Array;
  readonly counts: Uint32Array;
  used = 0;

  constructor(readonly stride: number, readonly capacity: number) {
    this.keys = new Uint8Array(capacity * stride);
    this.counts = new Uint32Array(capacity);
  }

  /** The slot holding `key`, or the empty slot where it would go. */
  find(key: Uint8Array, hash: number): number {
    const mask = this.capacity - 1;
    const s = this.stride;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      if (this.counts[slot] === 0) return slot;
      const at = slot * s;
      let i = 0;
      while (i < s && this.keys[at + i] === key[i]) i++;
      if (i === s) return slot;
    }
  }

  grown(): Table {
    const t = new Table(this.stride, this.capacity * 2);
    for (let slot = 0; slot < this.capacity; slot++) {
      if (this.counts[slot] === 0) continue;
      const key = this.keys.subarray(slot * this.stride, (slot + 1) * this.stride);
      const to = t.find(key, hashKey(key));
      t.keys.set(key, to * this.stride);
      t.counts[to] = this.counts[slot]!;
      t.used++;
    }
    return t;
  }
}

/** FNV-1a over the key's bytes, then a final mix (linear probing wants the low bits spread). */
function hashKey(k: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < k.length; i++) h = Math.imul(h ^ k[i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}
