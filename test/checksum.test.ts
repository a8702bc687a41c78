// The internet checksum's fast paths (WebAssembly SIMD over packet memory, JavaScript 32-bit words elsewhere)
// equal the plain RFC 1071 16-bit big-endian sum, for every alignment and length.
import test from 'ava';
import { fold, sum16, sum16Scalar } from '../emulator/wire/checksum.ts';
import { SIMD_CHUNK, packetMemory, simdAvailable, simdSumFor } from '../emulator/wire/simd-sum.ts';
import { Prng } from './helpers/prng.ts';

function reference(b: Uint8Array, off: number, len: number): number {
  let acc = 0;
  let i = off;
  for (; i + 1 < off + len; i += 2) acc += (b[i]! << 8) | b[i + 1]!;
  if (i < off + len) acc += b[i]! << 8;
  return fold(acc);
}

for (const [name, sum] of [['sum16', sum16], ['sum16Scalar', sum16Scalar]] as const) {
  test(`${name} equals the byte-wise RFC 1071 sum at every offset and length`, (t) => {
    const rng = new Prng(99);
    for (let run = 0; run < 5000; run++) {
      const backing = rng.bytes(rng.int(1, 9100) + 16);
      const view = backing.subarray(rng.int(0, 7)); // misaligned views too
      const off = rng.int(0, 8);
      const len = rng.int(0, view.length - off);
      const init = rng.chance(0.5) ? rng.int(0, 0xfffff) : 0;
      const got = fold(sum(view, off, len, init));
      const want = fold(reference(view, off, len) + init);
      if (got !== want) return t.fail(`run ${run}: off ${off} len ${len} byteOffset ${view.byteOffset}: ${got} != ${want}`);
    }
    // All-ones and all-zero ranges: the folded sum keeps 0xffff (RFC 1071's negative zero) apart from 0.
    t.is(fold(sum(new Uint8Array(4096).fill(0xff), 0, 4096)), 0xffff);
    t.is(fold(sum(new Uint8Array(4096), 0, 4096)), 0);
  });
}

test('the SIMD sum is there on this Node (else checksums silently take the slow path)', (t) => {
  t.true(simdAvailable, 'WebAssembly SIMD module did not validate');
  t.truthy(simdSumFor(packetMemory(100).buffer));
  t.is(simdSumFor(new Uint8Array(100).buffer), null);
});

test('sum16 over packet memory (summed in place by SIMD) and over ranges longer than one SIMD chunk', (t) => {
  const BYTES = 200_000;
  const mems = [packetMemory(BYTES), packetMemory(5000)];
  const rng = new Prng(5);
  for (let run = 0; run < 600; run++) {
    const mem = mems[run % 2]!; // two memories in turn: each sum is bound to its own
    const view = mem.subarray(rng.int(0, 15));
    const len = rng.chance(0.2) && mem === mems[0] ? rng.int(SIMD_CHUNK - 64, BYTES - 64) : rng.int(0, 4000);
    const off = rng.int(0, 15);
    view.set(rng.bytes(len), off);
    const init = rng.int(0, 0xfffff);
    t.is(fold(sum16(view, off, len, init)), fold(reference(view, off, len) + init), `run ${run}: off ${off} len ${len}`);
  }
  // Worst case for the SIMD lanes: every word 0xffff over the longest range (several chunks).
  const big = mems[0]!.fill(0xff);
  t.true(BYTES > 3 * SIMD_CHUNK);
  t.is(fold(sum16(big, 0, BYTES)), 0xffff);
  t.is(fold(sum16(big, 1, BYTES - 1)), fold(sum16Scalar(big, 1, BYTES - 1)));
});
