// The common half of the capture readers: sniffing the format, the iterator, typed errors with a place,
// and the truncated-tail policy. Formats live in pcap.ts and pcapng.ts.
import { CaptureError } from '../errors.ts';
import { ByteWindow } from './source.ts';
import type { CaptureFormat, CaptureInterface, CaptureOptions, CapturedPacket, TruncatedAt } from './types.ts';

export const DEFAULT_CHUNK = 1 << 20;
export const DEFAULT_MAX_RECORD = 64 << 20;

/** Thrown inside a parser to end iteration at a truncated tail; caught by next(). */
export class Truncated {
  constructor(readonly at: TruncatedAt) {}
}

export abstract class CaptureReader implements Iterable<CapturedPacket> {
  abstract readonly format: CaptureFormat;
  readonly name: string;
  /** Interfaces seen so far (pcapng IDBs across all sections; classic pcap: one, from the global header). */
  readonly interfaces: CaptureInterface[] = [];
  /** TLS key log text from pcapng Decryption Secrets Blocks (secrets type 'TLSK'), in file order. */
  readonly decryptionSecrets: string[] = [];
  /** Where and why iteration stopped early in `truncated: 'stop'` mode; null after a full read. */
  truncatedAt: TruncatedAt | null = null;
  /** Packets handed out so far (the last packet's `number`). */
  packets = 0;
  protected readonly win: ByteWindow;
  protected readonly opts: Required<Omit<CaptureOptions, 'name'>>;
  /** File offset of the next record/block. */
  protected pos = 0;
  private done = false;
  /** A packet read ahead by prefetch() (undefined: none waiting). */
  private pending: CapturedPacket | null | undefined = undefined;

  constructor(win: ByteWindow, name: string, opts: CaptureOptions) {
    this.win = win;
    this.name = name;
    this.opts = {
      truncated: opts.truncated ?? 'throw',
      copy: opts.copy ?? false,
      chunkSize: opts.chunkSize ?? DEFAULT_CHUNK,
      maxRecord: opts.maxRecord ?? DEFAULT_MAX_RECORD,
    };
  }

  /** Next packet or null at the end. Throws CaptureError on bad input ('throw' mode also on a truncated tail). */
  next(): CapturedPacket | null {
    if (this.pending !== undefined) {
      const p = this.pending;
      this.pending = undefined;
      return p;
    }
    if (this.done) return null;
    try {
      const p = this.readPacket();
      if (p === null) this.finish();
      else if (this.opts.copy) p.data = p.data.slice();
      return p;
    } catch (e) {
      this.finish();
      if (e instanceof Truncated) {
        if (this.opts.truncated === 'stop') {
          this.truncatedAt = e.at;
          return null;
        }
        throw this.error(`truncated capture: ${e.at.reason}`, e.at.offset);
      }
      // An I/O failure under readSync (EIO, a file shrinking under us) is still the capture's error.
      const code = (e as NodeJS.ErrnoException | null)?.code;
      if (!(e instanceof CaptureError) && typeof code === 'string') throw this.error(`read failed: ${code}`, this.pos);
      throw e;
    }
  }

  *[Symbol.iterator](): Iterator<CapturedPacket> {
    for (let p = this.next(); p !== null; p = this.next()) yield p;
  }

  close(): void {
    this.finish();
  }

  /** Reads up to the first packet at open, so header blocks (interfaces, key logs) are known before iterating. */
  protected prefetch(): void {
    this.pending = this.next();
  }

  protected abstract readPacket(): CapturedPacket | null;

  private finish(): void {
    this.done = true;
    this.win.close();
  }

  /** A CaptureError placed at `offset`, naming the packet about to be read. */
  error(message: string, offset: number, field?: string): CaptureError {
    return new CaptureError(message, {
      file: this.name,
      offset,
      packet: this.packets + 1,
      ...(field !== undefined ? { field } : {}),
    });
  }

  /**
   * Make `n` bytes at `offset` readable, or signal a truncated tail. `what` names the record for the message.
   * Returns the index of `offset` in win.buf.
   */
  protected need(offset: number, n: number, what: string): number {
    if (!this.win.ensure(offset, n)) {
      const have = Math.max(0, this.win.end - offset);
      throw new Truncated({ offset, reason: `${what} needs ${n} bytes at offset ${offset}, the file ends after ${have}` });
    }
    return offset - this.win.start;
  }
}

export function describeMagic(b: Uint8Array): string {
  const hex = Array.from(b.subarray(0, 4), (x) => x.toString(16).padStart(2, '0')).join(' ');
  if (b[0] === 0x1f && b[1] === 0x8b) return `${hex} (gzip: decompress it first)`;
  return hex;
}

export type { CaptureFormat };
