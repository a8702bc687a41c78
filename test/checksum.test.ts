// The internet checksum's fast paths (WebAssembly SIMD over the device's staging memory, JavaScript 32-bit
// words elsewhere) equal the plain RFC 1071 16-bit big-endian sum, for every alignment and length.
import test from 'ava';
import { fold, sum16, sum16Scalar } from '../emulator/wire/checksum.ts';
import { SIMD_CHUNK, STAGE_BYTES, simdSum, stageFrame } from '../emulator/wire/simd-sum.ts';
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
  t.truthy(simdSum, 'WebAssembly SIMD module did not instantiate');
});

test('sum16 in the device staging memory (summed in place) and over ranges longer than one SIMD chunk', (t) => {
  const stage = stageFrame(STAGE_BYTES)!;
  t.truthy(stage);
  t.is(stage.buffer, simdSum!.memory.buffer);
  const rng = new Prng(5);
  for (let run = 0; run < 400; run++) {
    const len = rng.chance(0.2) ? rng.int(SIMD_CHUNK - 64, STAGE_BYTES - 16) : rng.int(0, 4000);
    const off = rng.int(0, 15);
    stage.set(rng.bytes(len), off);
    const init = rng.int(0, 0xfffff);
    t.is(fold(sum16(stage, off, len, init)), fold(reference(stage, off, len) + init), `run ${run}: off ${off} len ${len}`);
  }
  // Worst case for the SIMD lanes: every word 0xffff over the longest range (several chunks).
  stage.fill(0xff);
  t.true(STAGE_BYTES > 3 * SIMD_CHUNK);
  t.is(fold(sum16(stage, 0, STAGE_BYTES)), 0xffff);
  t.is(fold(sum16(stage, 1, STAGE_BYTES - 1)), fold(sum16Scalar(stage, 1, STAGE_BYTES - 1)));
});

test('sum16 over one reused buffer at changing offsets and contents, and over two buffers in turn', (t) => {
  const rng = new Prng(7);
  const a = rng.bytes(9000);
  const b = rng.bytes(5000);
  for (let run = 0; run < 3000; run++) {
    const buf = rng.chance(0.5) ? a : b;
    if (rng.chance(0.3)) buf.set(rng.bytes(64), rng.int(0, buf.length - 64)); // the frame changes in place
    const view = buf.subarray(rng.int(0, 64));
    const off = rng.int(0, 8);
    const len = rng.int(256, view.length - off);
    const got = fold(sum16(view, off, len));
    const want = reference(view, off, len);
    if (got !== want) return t.fail(`run ${run}: off ${off} len ${len} byteOffset ${view.byteOffset}: ${got} != ${want}`);
  }
  t.pass();
});
