// The replay's count of connections per 4-tuple whose last connection it let go (cli/replay/tuple-counts.ts):
// typed arrays with linear probing instead of a Map of strings. Against a Map, over enough tuples to grow the
// tables many times, IPv4 and IPv6 keys mixed, keys that differ in one byte, counts set again.
import test from 'ava';
import { TupleCounts } from '../cli/replay/tuple-counts.ts';
import { Prng } from './helpers/prng.ts';

function key(rng: Prng, v6: boolean): Uint8Array {
  const n = v6 ? 16 : 4;
  const k = rng.bytes(1 + 2 * (n + 2));
  k[0] = n;
  return k;
}

test('tuple counts equal a Map of the same keys through growth, set and set again', (t) => {
  const rng = new Prng(7);
  const counts = new TupleCounts();
  const want = new Map<string, number>();
  const keys: Uint8Array[] = [];
  const str = (k: Uint8Array) => Buffer.from(k).toString('hex');
  for (let i = 0; i < 60_000; i++) {
    const r = rng.int(0, 9);
    let k: Uint8Array;
    if (r < 2 && keys.length) k = rng.pick(keys)!; // a tuple reused
    else if (r < 3 && keys.length) {
      k = Uint8Array.from(rng.pick(keys)!); // a neighbour: one byte other (a port, an address)
      const at = rng.int(1, k.length - 1);
      k[at] = (k[at]! + 1) & 0xff;
    } else k = key(rng, rng.chance(0.1));
    // A probe before the set: absent, or the count set last.
    t.is(counts.get(k), want.get(str(k)));
    const n = rng.int(1, 5);
    counts.set(k, n);
    want.set(str(k), n);
    keys.push(k);
  }
  t.is(counts.size, want.size);
  t.true(want.size > 40_000);
  for (const k of keys) if (counts.get(k) !== want.get(str(k))) return t.fail(`key ${str(k)}: ${counts.get(k)} != ${want.get(str(k))}`);
  // Keys never set, and a key of a length no table has.
  for (let i = 0; i < 1000; i++) {
    const k = key(rng, rng.chance(0.5));
    t.is(counts.get(k), want.get(str(k)));
  }
  t.is(counts.get(new Uint8Array(9)), undefined);
  t.throws(() => counts.set(keys[0]!, 0), { instanceOf: RangeError });
});
