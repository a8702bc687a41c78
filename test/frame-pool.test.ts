// The replay's pool for held-back TX segments: copies are exact, live copies never share memory, and a
// released block is what the next copy gets (the point of the pool: no fresh memory per segment).
import test from 'ava';
import { FramePool } from '../cli/replay/frame-pool.ts';
import { Prng } from './helpers/prng.ts';

function randomBytes(rng: Prng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = rng.u32() & 0xff;
  return b;
}

test('live copies hold their own bytes while more are made', (t) => {
  const rng = new Prng(7);
  const pool = new FramePool();
  const src: Uint8Array[] = [];
  const held: Uint8Array[] = [];
  for (let i = 0; i < 1500; i++) {
    const s = randomBytes(rng, 1 + (rng.u32() % 2048));
    src.push(s);
    held.push(pool.copy(s).frame);
    s.fill(0); // the caller's buffer is reused for the next packet, as the capture reader's is
  }
  const rng2 = new Prng(7);
  for (let i = 0; i < held.length; i++) {
    const again = randomBytes(rng2, 1 + (rng2.u32() % 2048));
    if (!Buffer.from(held[i]!).equals(Buffer.from(again))) return t.fail(`copy ${i} changed`);
  }
  t.pass();
});

test('a released block is reused by the next copy; frames over a block are not pooled', (t) => {
  const pool = new FramePool();
  const a = pool.copy(Uint8Array.of(1, 2, 3));
  const free = pool.freeBlocks;
  pool.release(a.block);
  t.is(pool.freeBlocks, free + 1);
  const b = pool.copy(Uint8Array.of(9, 8));
  t.is(b.frame.buffer, a.frame.buffer);
  t.is(b.frame.byteOffset, a.frame.byteOffset);
  t.deepEqual([...b.frame], [9, 8]);
  const big = new Uint8Array(9000).fill(5);
  const c = pool.copy(big);
  t.is(c.block, null);
  t.is(c.frame.length, 9000);
  t.true(c.frame.every((x) => x === 5));
  t.not(c.frame.buffer, big.buffer);
  pool.release(c.block);
  t.is(pool.freeBlocks, free);
});
