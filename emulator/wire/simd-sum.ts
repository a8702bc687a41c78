// The one's-complement sum in WebAssembly SIMD, and the device memory it works on.
//
// A TCP checksum is a sum of 16-bit words; JavaScript sums one 32-bit word per step (~200 ns a 1448-byte
// segment here), a 128-bit SIMD lane sum takes ~50 ns. WebAssembly reads only its own linear memory, so the
// device's TX staging buffer (where the NIC writes each outgoing frame) lives in that memory and is summed
// where it lies. Bytes elsewhere (a received frame, a host's skb) are summed in JS: copying them in first
// cost as much as it saved, and a view per copy was an allocation per packet.
// Without WebAssembly SIMD (an engine that rejects the module), `simdSum` is null and checksum.ts sums in JS.

/** The most one `sum` call may cover: no i32 lane, nor the total of the four, can overflow. */
export const SIMD_CHUNK = 32 * 1024;
const PAGE = 64 * 1024;
const PAGES = 3;
/** The TX staging area: the whole memory but for 16 bytes, which leave room for NET_IP_ALIGN (below). */
export const STAGE_BYTES = PAGES * PAGE - 16;

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
  0x03, 0x02, 0x01, 0x00, // function 0 has type 0
  0x05, 0x03, 0x01, 0x00, PAGES, // one memory of PAGES pages, no maximum
  0x07, 0x0d, 0x02, 0x03, 0x6d, 0x65, 0x6d, 0x02, 0x00, 0x03, 0x73, 0x75, 0x6d, 0x00, 0x00, // export "mem", "sum"
  0x0a, ...leb(body.length + 1 + leb(body.length).length), 0x01, ...leb(body.length), ...body,
]);

export interface SimdSum {
  /** The whole linear memory; never grown, so views of it stay valid. */
  readonly memory: Uint8Array;
  /** Sum of the little-endian 16-bit words of memory[p, p+n): n a multiple of 16 and at most SIMD_CHUNK. */
  readonly sum: (p: number, n: number) => number;
}

/** The part of the WebAssembly JS API used here (the project's lib settings declare none of it). */
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: { mem: { buffer: ArrayBuffer }; sum: (p: number, n: number) => number } };
}

function instantiate(): SimdSum | null {
  const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (!wasm || !wasm.validate(MODULE)) return null;
  const e = new wasm.Instance(new wasm.Module(MODULE)).exports;
  return { memory: new Uint8Array(e.mem.buffer), sum: e.sum };
}

export const simdSum: SimdSum | null = instantiate();

/**
 * The device's TX staging memory for a frame of `n` bytes, its byte 0 at 2 mod 16 (NET_IP_ALIGN: the IP
 * header 16-byte aligned, the TCP payload 4-byte aligned), or null when there is no SIMD memory or the frame
 * does not fit. One area per thread: the caller keeps it for one frame at a time.
 */
export function stageFrame(n: number): Uint8Array | null {
  if (!simdSum || n > STAGE_BYTES) return null;
  return simdSum.memory.subarray(2, 2 + n);
}
