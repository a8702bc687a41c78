// Byte-array helpers shared by every layer.

/** Copies at most this long come from a shared slab (copyBytes); longer ones get memory of their own. */
const SLAB_MAX_COPY = 16 << 10;
const SLAB_SIZE = 64 << 10;
let slab = new Uint8Array(0);
let slabUsed = 0;

/**
 * A private copy of `src`, as `src.slice()` makes, but carved from a shared 64 KiB slab for up to 16 KiB: a
 * new ArrayBuffer per packet-sized copy cost ~1.5-2 us here (a malloc, and V8 freeing each backing store in
 * the GC it forces), one from a slab ~0.2 us. Nobody else ever gets a view of the copy's bytes; it may be
 * written. The copy keeps its slab alive as long as it lives, so what is held for long (a capture's
 * held-back frames) should not come from here by the thousands. `copy.buffer` is the slab: use byteOffset.
 */
export function copyBytes(src: Uint8Array): Uint8Array {
  const n = src.length;
  if (n > SLAB_MAX_COPY) return src.slice();
  if (slabUsed + n > slab.length) {
    slab = new Uint8Array(SLAB_SIZE);
    slabUsed = 0;
  }
  const out = slab.subarray(slabUsed, slabUsed + n);
  slabUsed += (n + 7) & ~7; // 8-byte aligned starts, as malloc gives (the checksum reads 32-bit words)
  out.set(src);
  return out;
}

/** The parts laid end to end in a new array (a single part is returned as is, not copied). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Big-endian 32-bit word at b[o..o+4) (TCP seq/ack, nonces, addresses as keys). */
export function readU32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

export function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}
