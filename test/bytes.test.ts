// emulator/bytes.ts copyBytes: private copies carved from a shared slab must behave as slice() copies.
import test from 'ava';
import { copyBytes } from '../emulator/bytes.ts';
import { Prng } from './helpers/prng.ts';

test('copyBytes: equal to the source, private (writes reach neither the source nor other copies), 8-byte aligned', (t) => {
  const rng = new Prng(3);
  const src = new Uint8Array(40000);
  for (let i = 0; i < src.length; i++) src[i] = rng.u32();
  const copies: { c: Uint8Array; from: number }[] = [];
  // Enough copies of every size to cross several slabs; the last sizes are past the slab limit.
  for (let k = 0; k < 400; k++) {
    const n = k === 399 ? 20000 : k % 50 === 0 ? 16384 : rng.u32() % 1600;
    const from = rng.u32() % (src.length - n);
    const c = copyBytes(src.subarray(from, from + n));
    t.is(c.length, n);
    t.is(c.byteOffset % 8, 0);
    copies.push({ c, from });
  }
  const before = src.slice();
  for (const { c } of copies) c.fill(0xee);
  t.deepEqual(src, before);
  for (const { c } of copies) t.true(c.every((b) => b === 0xee));
  // Fresh copies after the writes are the source again, not the 0xee of an old copy's memory.
  for (const { c, from } of copies.slice(0, 50)) t.deepEqual(copyBytes(src.subarray(from, from + c.length)), src.subarray(from, from + c.length));
  t.is(copyBytes(new Uint8Array(0)).length, 0);
  const big = copyBytes(src.subarray(0, 20000));
  t.is(big.byteOffset, 0);
  t.is(big.buffer.byteLength, 20000);
});
