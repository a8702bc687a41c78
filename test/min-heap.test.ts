// The --out reorder queue's heap: pops in order against a sorted reference, interleaved with pushes.
import test from 'ava';
import { MinHeap } from '../cli/replay/min-heap.ts';
import { Prng } from './helpers/prng.ts';

test('MinHeap pops the least item first, pushes and pops interleaved, duplicates included', (t) => {
  const rng = new Prng(7);
  for (let round = 0; round < 50; round++) {
    const h = new MinHeap<number>((a, b) => a < b);
    const ref: number[] = [];
    const range = 1 + (rng.u32() % 200); // small ranges make duplicates
    for (let op = 0; op < 400; op++) {
      if (ref.length === 0 || rng.u32() % 3 !== 0) {
        const x = rng.u32() % range;
        h.push(x);
        ref.push(x);
        ref.sort((a, b) => a - b);
      } else {
        t.is(h.peek(), ref[0]);
        t.is(h.pop(), ref.shift());
      }
      t.is(h.size, ref.length);
    }
    const rest: number[] = [];
    while (h.size > 0) rest.push(h.pop()!);
    t.deepEqual(rest, ref);
    t.is(h.pop(), undefined);
    t.is(h.peek(), undefined);
  }
});
