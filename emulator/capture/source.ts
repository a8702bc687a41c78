// A bounded read window over a capture: a file read with fs.readSync in chunks, or bytes already in memory.
// Memory is independent of file size: one buffer of `chunkSize`, grown only when a single record is larger
// (up to the caller's cap), and compacted (copyWithin) instead of reallocated as the cursor moves. A file's
// window is packet memory (wire/simd-sum.ts): the packets read stay where they are and their checksums are
// summed with SIMD.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { packetMemory } from '../wire/simd-sum.ts';

export class ByteWindow {
  buf: Uint8Array;
  dv: DataView;
  /** File offset of buf[0]. */
  start = 0;
  /** File offset one past the last valid byte in buf. */
  end = 0;
  eof: boolean;
  /** Total size when known (files: fstat at open; memory: the buffer length). */
  readonly size: number;
  private fd: number | null;
  private readonly chunkSize: number;

  private constructor(fd: number | null, buf: Uint8Array, size: number, chunkSize: number) {
    this.fd = fd;
    this.buf = buf;
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.size = size;
    this.chunkSize = chunkSize;
    this.eof = fd === null;
    if (fd === null) this.end = buf.length;
  }

  static fromFile(path: string, chunkSize: number): ByteWindow {
    const fd = openSync(path, 'r');
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'ENOTREG' });
      const size = st.size;
      return new ByteWindow(fd, packetMemory(chunkSize), size, chunkSize);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  static fromBytes(bytes: Uint8Array): ByteWindow {
    return new ByteWindow(null, bytes, bytes.length, bytes.length);
  }

  /**
   * Make [offset, offset + n) addressable at buf[offset - start]. False when the input ends first (then
   * `end` says how far it goes). The caller bounds n (record caps) before asking.
   */
  ensure(offset: number, n: number): boolean {
    if (offset >= this.start && offset + n <= this.end) return true;
    if (this.fd === null) return false;
    if (this.eof && offset + n > this.end) return false;
    // Keep only what is at or after `offset`: earlier bytes (and views handed out on them) are done.
    if (offset > this.start) {
      const keep = Math.max(0, this.end - offset);
      if (keep > 0) this.buf.copyWithin(0, offset - this.start, this.end - this.start);
      this.start = offset;
      this.end = offset + keep;
    }
    if (n > this.buf.length) {
      // One record larger than a chunk: grow to fit it (rounded to chunks), never the whole file.
      const size = Math.ceil(n / this.chunkSize) * this.chunkSize;
      const bigger = packetMemory(size);
      bigger.set(this.buf.subarray(0, this.end - this.start));
      this.buf = bigger;
      this.dv = new DataView(bigger.buffer);
    }
    while (this.end - this.start < n + (offset - this.start) && !this.eof) {
      const at = this.end - this.start;
      const got = readSync(this.fd, this.buf, at, this.buf.length - at, this.end);
      if (got === 0) this.eof = true;
      this.end += got;
    }
    return offset + n <= this.end;
  }

  close(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
      this.eof = true;
    }
  }
}
