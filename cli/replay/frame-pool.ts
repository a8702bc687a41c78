// Buffers for the captured TX segments the replay holds back until their records complete. The replay
// knows when each one is done (after it is transmitted), so blocks go back to a free list and are reused:
// fresh memory per held segment made V8 run a full GC for every ~64 MB of it (external memory pressure).
// Frames larger than a block (captures with TSO/GRO super-segments) get memory of their own.
const BLOCK = 2048;
const BLOCKS_PER_CHUNK = 512;

export class FramePool {
  private readonly free: Uint8Array[] = [];

  /** A copy of `src`, and the block to give back with release() (null: not from the pool). */
  copy(src: Uint8Array): { frame: Uint8Array; block: Uint8Array | null } {
    if (src.length > BLOCK) return { frame: src.slice(), block: null };
    if (this.free.length === 0) {
      const chunk = new ArrayBuffer(BLOCK * BLOCKS_PER_CHUNK);
      for (let i = BLOCKS_PER_CHUNK - 1; i >= 0; i--) this.free.push(new Uint8Array(chunk, i * BLOCK, BLOCK));
    }
    const block = this.free.pop()!;
    block.set(src);
    return { frame: block.subarray(0, src.length), block };
  }

  /** Give a block back; nothing may use the frame copied into it afterwards. */
  release(block: Uint8Array | null): void {
    if (block) this.free.push(block);
  }

  /** Free blocks (tests: every held segment went back). */
  get freeBlocks(): number {
    return this.free.length;
  }
}
