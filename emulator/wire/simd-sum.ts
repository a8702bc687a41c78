// The one's-complement sum in WebAssembly SIMD, and the packet memory it works on.
//
// A TCP checksum is a sum of 16-bit words; JavaScript sums one 32-bit word per step (~200 ns a 1448-byte
// segment here, more when the frame is not in cache), a 128-bit SIMD lane sum takes ~50 ns. WebAssembly reads
// only linear memory, so the buffers packets live in come from packetMemory(): the NIC's TX staging buffer, a
// capture's read window, the bench's RX ring. Each is a WebAssembly.Memory of its own with an instance of the
// sum bound to it, found by the ArrayBuffer a view sits on. Bytes elsewhere (a frame a test builds, a host's
// skb) are summed in JS: copying them in first cost as much as it saved.
// Without WebAssembly SIMD (an engine that rejects the module) packetMemory() hands out plain memory and every
// sum is JS.

/** The most one `sum` call may cover: no i32 lane, nor the total of the four, can overflow. */
export const SIMD_CHUNK = 32 * 1024;
const PAGE = 64 * 1024;
/** Packet memory over this is plain memory (WebAssembly memories stop at 4 GiB; nothing here needs more). */
const MAX_PACKET_MEMORY = 1 << 30;

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

const get = (i: number) => [0x20, i];
const set = (i: number) => [0x21, i];
// acc_in_stack + pairwise(v128.load offset=o (local 0)): i32x4 lanes each take the sum of two 16-bit words.
const addVector = (o: number) => [0x20, 0x00, 0xfd, 0x00, 0x04, o, 0xfd, 0x7f, 0xfd, 0xae, 0x01];

/*
 * (func (export "sum") (param $p i32) (param $n i32) (result i32)   ;; $n a multiple of 16, at most SIMD_CHUNK
 *   (local $acc v128) (local $end i32)
 *   (local.set $end (i32.add $p $n))
 *   (block (loop                                ;; 64 bytes a step
 *     (br_if 1 (i32.gt_u (i32.add $p 64) $end))
 *     (local.set $acc (acc + extadd_pairwise_i16x8_u(load $p+0) + ... (load $p+48)))  ;; i32x4.add
 *     (local.set $p (i32.add $p 64)) (br 0)))
 *   (block (loop                                ;; then 16 bytes a step
 *     (br_if 1 (i32.ge_u $p $end))
 *     (local.set $acc (acc + extadd_pairwise_i16x8_u(load $p)))
 *     (local.set $p (i32.add $p 16)) (br 0)))
 *   lane 0 + lane 1 + lane 2 + lane 3)
 * Each step adds at most 2 * 0xffff to a lane, so SIMD_CHUNK bytes keep every lane and their total below 2^31.
 */
const body = [
  0x02, 0x01, 0x7b, 0x01, 0x7f, // locals: 1 x v128, 1 x i32
  ...get(0), ...get(1), 0x6a, ...set(3),
  0x02, 0x40, 0x03, 0x40,
  ...get(0), 0x41, 0xc0, 0x00, 0x6a, ...get(3), 0x4b, 0x0d, 0x01,
  ...get(2), ...addVector(0), ...addVector(16), ...addVector(32), ...addVector(48), ...set(2),
  ...get(0), 0x41, 0xc0, 0x00, 0x6a, ...set(0),
  0x0c, 0x00, 0x0b, 0x0b,
  0x02, 0x40, 0x03, 0x40,
  ...get(0), ...get(3), 0x4f, 0x0d, 0x01,
  ...get(2), ...addVector(0), ...set(2),
  ...get(0), 0x41, 0x10, 0x6a, ...set(0),
  0x0c, 0x00, 0x0b, 0x0b,
  ...get(2), 0xfd, 0x1b, 0x00,
  ...get(2), 0xfd, 0x1b, 0x01, 0x6a,
  ...get(2), 0xfd, 0x1b, 0x02, 0x6a,
  ...get(2), 0xfd, 0x1b, 0x03, 0x6a,
  0x0b,
];

const MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // \0asm, version 1
  0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f, // type 0: (i32, i32) -> i32
  0x02, 0x08, 0x01, 0x01, 0x65, 0x01, 0x6d, 0x02, 0x00, 0x01, // import memory "e" "m", at least 1 page
  0x03, 0x02, 0x01, 0x00, // function 0 has type 0
  0x07, 0x07, 0x01, 0x03, 0x73, 0x75, 0x6d, 0x00, 0x00, // export "sum"
  0x0a, ...leb(body.length + 1 + leb(body.length).length), 0x01, ...leb(body.length), ...body,
]);

/** Sum of the little-endian 16-bit words of memory[p, p+n): n a multiple of 16 and at most SIMD_CHUNK. */
export type SimdSumFn = (p: number, n: number) => number;

/** The part of the WebAssembly JS API used here (the project's lib settings declare none of it). */
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Memory: new (d: { initial: number }) => { buffer: ArrayBuffer };
  Instance: new (module: object, imports: object) => { exports: { sum: SimdSumFn } };
}

const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
const compiled = wasm && wasm.validate(MODULE) ? new wasm.Module(MODULE) : null;

/** Whether packet memory is WebAssembly memory with a SIMD sum (false: an engine without SIMD). */
export const simdAvailable = compiled !== null;

/** Each packet memory's ArrayBuffer (never grown, so never replaced) and its bound sum. */
const sums = new WeakMap<ArrayBufferLike, SimdSumFn>();
let lastBuffer: ArrayBufferLike | null = null;
let lastSum: SimdSumFn | null = null;

/**
 * `bytes` of zeroed memory for packets, which the checksum sums with SIMD where it lies. Byte 0 is at
 * offset 0 of the memory (page aligned). Plain memory when there is no SIMD, `bytes` is over 1 GiB, or the
 * engine will not make another WebAssembly memory.
 */
export function packetMemory(bytes: number): Uint8Array {
  if (!compiled || !wasm || bytes > MAX_PACKET_MEMORY) return new Uint8Array(bytes);
  let memory: { buffer: ArrayBuffer };
  try {
    memory = new wasm.Memory({ initial: Math.max(1, Math.ceil(bytes / PAGE)) });
  } catch (e) {
    // V8 reserves address space per WebAssembly memory and refuses more past ~13,000 live ones here: a
    // program holding that many capture windows open gets plain memory (summed in JS) from then on.
    if (e instanceof RangeError) return new Uint8Array(bytes);
    throw e;
  }
  const { sum } = new wasm.Instance(compiled, { e: { m: memory } }).exports;
  sums.set(memory.buffer, sum);
  return new Uint8Array(memory.buffer, 0, bytes);
}

/** The SIMD sum over `buffer`, or null when it is not packet memory. */
export function simdSumFor(buffer: ArrayBufferLike): SimdSumFn | null {
  if (buffer !== lastBuffer) {
    lastBuffer = buffer;
    lastSum = sums.get(buffer) ?? null;
  }
  return lastSum;
}
