// The connection reports `tlsnic replay` prints (`--json`, the table), in the order the connections came, without
// holding them all: a capture of hundreds of thousands of short connections has a report of hundreds of MB.
import { closeSync, mkdtempSync, openSync, readSync, rmdirSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, onOutput } from '../../emulator/errors.ts';
import type { FlowReport } from './engine.ts';

/** Reports kept in memory; past that many they all go to a temporary file (TLSNIC_REPORTS_IN_MEMORY sets it). */
export const REPORTS_IN_MEMORY = 4096;

const WRITE_BUFFER = 1 << 18;
const READ_BLOCK = 1 << 20;

/**
 * Reports as the replay hands them over (ReplayOptions.onReport: once final, so not in the order the
 * connections came), read back in that order (the capture packet of each one's first packet). Up to
 * `inMemory` of them stay objects; past that each is a JSON line in a temporary file (in `dir`, default the
 * system's: TMPDIR), unlinked as soon as it is open, so nothing is left behind even if the process dies; what
 * stays in memory is 20 bytes a connection (where its line is). Iterate as often as needed (the table reads
 * the reports twice: once for its column widths); each pass gives fresh objects.
 */
export class ReportSpill implements Iterable<FlowReport> {
  private held: FlowReport[] = [];
  private first = new Float64Array(256);
  private offset = new Float64Array(0);
  private size = new Uint32Array(0);
  private count = 0;
  /** Report indices in first-packet order, made at the first read after the last add (the table reads up to three times). */
  private sorted: Uint32Array | null = null;
  private fd: number | null = null;
  private path = '';
  /** Bytes of the file, written or in `out`. */
  private end = 0;
  private out: Buffer | null = null;
  private outLen = 0;
  private closed = false;

  constructor(private readonly inMemory = REPORTS_IN_MEMORY, private readonly dir = tmpdir()) {}

  get length(): number {
    return this.count;
  }

  /** Whether the reports went to the temporary file. */
  get spilled(): boolean {
    return this.fd !== null;
  }

  add(report: FlowReport, firstPacket: number): void {
    if (this.closed) throw new ConfigError('connection report added after the reports were closed');
    if (this.count === this.first.length) this.first = grow(this.first);
    this.first[this.count] = firstPacket;
    this.sorted = null;
    if (this.fd === null && this.held.length < this.inMemory) {
      this.held.push(report);
      this.count++;
      return;
    }
    if (this.fd === null) this.open();
    this.append(report, this.count++);
  }

  *[Symbol.iterator](): Generator<FlowReport> {
    if (this.closed) throw new ConfigError('connection reports read after they were closed');
    const order = (this.sorted ??= this.order());
    if (this.fd === null) {
      for (const i of order) yield this.held[i]!;
      return;
    }
    this.flush();
    let block = Buffer.allocUnsafe(READ_BLOCK);
    let blockAt = 0;
    let blockLen = 0;
    for (const i of order) {
      const at = this.offset[i]!;
      const n = this.size[i]!;
      if (at < blockAt || at + n > blockAt + blockLen) {
        if (n > block.length) block = Buffer.allocUnsafe(n);
        blockAt = at;
        blockLen = this.read(block, at);
        if (blockLen < n) throw new ConfigError(`${this.path}: a connection report is cut short (${blockLen} of ${n} bytes at offset ${at}): was the temporary file changed?`, { file: this.path });
      }
      const from = at - blockAt;
      yield JSON.parse(block.toString('utf8', from, from + n)) as FlowReport;
    }
  }

  /** Lets the file go (its space is freed when the descriptor closes: it has no name). */
  close(): void {
    this.closed = true;
    this.held = [];
    this.sorted = null;
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  /** Report indices by first packet (connections are handed over as they end, which is not the order they came in). */
  private order(): Uint32Array {
    const order = new Uint32Array(this.count);
    let sorted = true;
    for (let i = 0; i < this.count; i++) {
      order[i] = i;
      if (i > 0 && this.first[i]! < this.first[i - 1]!) sorted = false;
    }
    const first = this.first;
    return sorted ? order : order.sort((a, b) => first[a]! - first[b]!);
  }

  private open(): void {
    this.path = join(this.dir, 'tlsnic-reports-XXXXXX');
    const dir = onOutput(this.path, 'TMPDIR', () => mkdtempSync(join(this.dir, 'tlsnic-reports-')));
    this.path = join(dir, 'reports.jsonl');
    try {
      this.fd = onOutput(this.path, 'TMPDIR', () => openSync(this.path, 'w+'));
    } finally {
      // Unnamed from the start: the file lives as long as the descriptor.
      try {
        if (this.fd !== null) unlinkSync(this.path);
        rmdirSync(dir);
      } catch {
        // Left for the system's cleanup of TMPDIR; the reports do not depend on it.
      }
    }
    this.offset = new Float64Array(this.first.length);
    this.size = new Uint32Array(this.first.length);
    this.out = Buffer.allocUnsafe(WRITE_BUFFER);
    const held = this.held;
    this.held = [];
    held.forEach((r, i) => this.append(r, i));
  }

  private append(report: FlowReport, i: number): void {
    if (this.offset.length <= i) {
      this.offset = grow(this.offset);
      this.size = grow(this.size);
    }
    const line = JSON.stringify(report) + '\n';
    const n = Buffer.byteLength(line);
    this.offset[i] = this.end;
    this.size[i] = n;
    this.end += n;
    if (this.outLen + n > this.out!.length) this.flush();
    if (n > this.out!.length) this.write(Buffer.from(line));
    else this.outLen += this.out!.write(line, this.outLen);
  }

  private flush(): void {
    if (this.outLen === 0) return;
    this.write(this.out!.subarray(0, this.outLen));
    this.outLen = 0;
  }

  private write(b: Buffer): void {
    onOutput(this.path, 'TMPDIR', () => {
      for (let off = 0; off < b.length;) off += writeSync(this.fd!, b, off);
    });
  }

  private read(into: Buffer, at: number): number {
    return onOutput(this.path, 'TMPDIR', () => {
      let got = 0;
      while (got < into.length) {
        const n = readSync(this.fd!, into, got, into.length - got, at + got);
        if (n === 0) break;
        got += n;
      }
      return got;
    });
  }
}

function grow<T extends Float64Array | Uint32Array>(a: T): T {
  const b = new (a.constructor as new (n: number) => T)(Math.max(256, a.length * 2));
  b.set(a);
  return b;
}
