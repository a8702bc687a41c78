// The device's connection table: one entry per (direction, 4-tuple), as the RX steering rules and TX
// contexts (TIS/TIR on mlx5) of a real NIC. Open addressing over typed arrays so a lookup straight from
// packet bytes allocates nothing and costs the same at 1e3 and 1e6 flows.

const KEY_SIZE = 40; // dir(1) family(1) pad(2) src(16) dst(16) sport(2) dport(2)
const EMPTY = 0;
const TOMBSTONE = -1;

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
  private slots: Int32Array; // entry index + 1, 0 empty, -1 tombstone
  private mask: number;
  private used = 0; // live + tombstones in slots
  private keys: Uint8Array;
  private hashes: Uint32Array;
  private values: (T | undefined)[] = [];
  private free: number[] = [];
  private next = 0;
  private live = 0;
  private readonly scratch = new Uint8Array(KEY_SIZE);

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`table capacity ${capacity} must be >= 1`);
    this.capacity = capacity;
    const initial = Math.min(capacity, 1024);
    this.keys = new Uint8Array(initial * KEY_SIZE);
    this.hashes = new Uint32Array(initial);
    const slots = nextPow2(initial * 2);
    this.slots = new Int32Array(slots);
    this.mask = slots - 1;
  }

  get size(): number {
    return this.live;
  }

  /** Add an entry; returns its stable handle, or -1 when the table is full. Throws on a duplicate key. */
  add(k: FlowKeyFields, value: T): number {
    if (this.live >= this.capacity) return -1;
    writeKey(this.scratch, 0, k);
    const h = hashKey(this.scratch, 0);
    if (this.findSlot(this.scratch, 0, h) >= 0) throw new RangeError('flow already has a context in this direction');
    const idx = this.free.length ? this.free.pop()! : this.next++;
    this.ensureEntries(idx + 1);
    // Rehash before the new entry is stored; size from live entries so add/del churn cannot grow it.
    if ((this.used + 1) * 2 > this.slots.length) this.rehash(nextPow2((this.live + 1) * 4));
    this.keys.set(this.scratch, idx * KEY_SIZE);
    this.hashes[idx] = h;
    this.values[idx] = value;
    let s = h & this.mask;
    while (this.slots[s]! > 0) s = (s + 1) & this.mask;
    if (this.slots[s] === EMPTY) this.used++;
    this.slots[s] = idx + 1;
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
    while (this.slots[s] !== handle + 1) s = (s + 1) & this.mask;
    this.slots[s] = TOMBSTONE;
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
    key.fill(0);
    key[0] = dir === 'rx' ? 1 : 2;
    key[1] = addrLen === 4 ? 4 : 6;
    for (let i = 0; i < addrLen; i++) {
      key[4 + i] = buf[srcOff + i]!;
      key[20 + i] = buf[dstOff + i]!;
    }
    key[36] = sport >>> 8;
    key[37] = sport & 0xff;
    key[38] = dport >>> 8;
    key[39] = dport & 0xff;
    const s = this.findSlot(key, 0, hashKey(key, 0));
    return s < 0 ? -1 : this.slots[s]! - 1;
  }

  lookupKey(k: FlowKeyFields): number {
    writeKey(this.scratch, 0, k);
    const s = this.findSlot(this.scratch, 0, hashKey(this.scratch, 0));
    return s < 0 ? -1 : this.slots[s]! - 1;
  }

  *entries(): IterableIterator<[number, T]> {
    for (let i = 0; i < this.values.length; i++) {
      const v = this.values[i];
      if (v !== undefined) yield [i, v];
    }
  }

  private findSlot(key: Uint8Array, off: number, h: number): number {
    let s = h & this.mask;
    for (;;) {
      const e = this.slots[s]!;
      if (e === EMPTY) return -1;
      if (e > 0 && this.hashes[e - 1] === h && keyEquals(this.keys, (e - 1) * KEY_SIZE, key, off)) return s;
      s = (s + 1) & this.mask;
    }
  }

  private ensureEntries(n: number): void {
    if (n <= this.hashes.length) return;
    const cap = Math.min(this.capacity, Math.max(n, this.hashes.length * 2));
    const keys = new Uint8Array(cap * KEY_SIZE);
    keys.set(this.keys);
    this.keys = keys;
    const hashes = new Uint32Array(cap);
    hashes.set(this.hashes);
    this.hashes = hashes;
  }

  private rehash(size: number): void {
    const slots = new Int32Array(size);
    const mask = size - 1;
    for (let i = 0; i < this.values.length; i++) {
      if (this.values[i] === undefined) continue;
      let s = this.hashes[i]! & mask;
      while (slots[s] !== EMPTY) s = (s + 1) & mask;
      slots[s] = i + 1;
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

function writeKey(out: Uint8Array, off: number, k: FlowKeyFields): void {
  const len = k.family === 4 ? 4 : 16;
  if (k.src.length !== len || k.dst.length !== len) throw new RangeError(`IPv${k.family} addresses must be ${len} bytes`);
  out.fill(0, off, off + KEY_SIZE);
  out[off] = k.dir === 'rx' ? 1 : 2;
  out[off + 1] = k.family;
  out.set(k.src, off + 4);
  out.set(k.dst, off + 20);
  out[off + 36] = k.sport >>> 8;
  out[off + 37] = k.sport & 0xff;
  out[off + 38] = k.dport >>> 8;
  out[off + 39] = k.dport & 0xff;
}

/** FNV-1a over the key, 32-bit, then a murmur finalizer so linear probing sees well-mixed low bits. */
function hashKey(key: Uint8Array, off: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < KEY_SIZE; i++) h = Math.imul(h ^ key[off + i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function keyEquals(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < KEY_SIZE; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}
