// Capture writers. Both buffer into one 1 MiB chunk and flush with fs.writeSync (or keep the chunks in
// memory when no path is given), so writing a large file costs bounded memory.
import { closeSync, openSync, writeSync } from 'node:fs';
import { ContractError, onOutput } from '../errors.ts';
import { PCAP_MAGIC_NS, PCAP_MAGIC_US } from './pcap.ts';
import { BT_DSB, BT_EPB, BT_IDB, BT_SHB, BYTE_ORDER_MAGIC, IF_TSRESOL, OPT_COMMENT, SECRETS_TLS_KEYLOG, tsresolScale } from './pcapng.ts';
import { LINKTYPE_ETHERNET } from './types.ts';

export type WritePacket = {
  data: Uint8Array;
  tsNs: bigint;
  /** Defaults to data.length. */
  origLen?: number;
  /** pcapng only: EPB opt_comment. */
  comment?: string;
  /** pcapng only: defaults to the writer's link type; a new link type gets its own IDB. */
  linkType?: number;
};

const FLUSH_AT = 1 << 20;
const utf8 = new TextEncoder();

/** Chunked byte sink: a file through a sync fd, or memory. */
class Sink {
  private fd: number | null;
  private chunk = new Uint8Array(FLUSH_AT);
  private used = 0;
  private readonly kept: Uint8Array[] | null;
  private closed = false;
  readonly path: string | null;

  constructor(path: string | null) {
    this.path = path;
    this.fd = path === null ? null : onOutput(path, undefined, () => openSync(path, 'w'));
    this.kept = path === null ? [] : null;
  }

  /** Reserve n bytes and return a DataView + offset to fill them (avoids per-record allocations). */
  reserve(n: number): { view: DataView; bytes: Uint8Array; at: number } {
    if (this.closed) throw new ContractError('write after close', { file: this.path ?? '<memory>' });
    if (this.used + n > this.chunk.length) {
      this.flush();
      if (n > this.chunk.length) this.chunk = new Uint8Array(n);
    }
    const at = this.used;
    this.used += n;
    return { view: new DataView(this.chunk.buffer), bytes: this.chunk, at };
  }

  flush(): void {
    if (this.used === 0) return;
    if (this.fd !== null) {
      const fd = this.fd;
      let off = 0;
      onOutput(this.path!, undefined, () => {
        while (off < this.used) off += writeSync(fd, this.chunk, off, this.used - off);
      });
    } else {
      this.kept!.push(this.chunk.slice(0, this.used));
    }
    this.used = 0;
  }

  bytes(): Uint8Array {
    if (this.kept === null) throw new ContractError('bytes() is for in-memory writers', { file: this.path ?? '' });
    this.flush();
    const total = this.kept.reduce((s, c) => s + c.length, 0);
    const out = new Uint8Array(total);
    let o = 0;
    for (const c of this.kept) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

export type PcapWriterOptions = {
  linkType?: number;
  /** Timestamp resolution, default 'us' (magic a1b2c3d4); 'ns' writes a1b23c4d. */
  resolution?: 'us' | 'ns';
  snaplen?: number;
  bigEndian?: boolean;
};

/** Classic pcap writer (pcap-savefile(5)), the format of pcap_dump(). `path` null keeps bytes in memory. */
export class PcapWriter {
  readonly linkType: number;
  readonly resolution: 'us' | 'ns';
  readonly snaplen: number;
  private readonly le: boolean;
  private readonly sink: Sink;

  constructor(path: string | null = null, opts: PcapWriterOptions = {}) {
    this.linkType = opts.linkType ?? LINKTYPE_ETHERNET;
    this.resolution = opts.resolution ?? 'us';
    this.snaplen = opts.snaplen ?? 262144;
    this.le = !opts.bigEndian;
    this.sink = new Sink(path);
    const { view, at } = this.sink.reserve(24);
    view.setUint32(at, this.resolution === 'ns' ? PCAP_MAGIC_NS : PCAP_MAGIC_US, this.le);
    view.setUint16(at + 4, 2, this.le);
    view.setUint16(at + 6, 4, this.le);
    view.setInt32(at + 8, 0, this.le);
    view.setUint32(at + 12, 0, this.le);
    view.setUint32(at + 16, this.snaplen, this.le);
    view.setUint32(at + 20, this.linkType, this.le);
  }

  write(p: WritePacket): void {
    const caplen = Math.min(p.data.length, this.snaplen);
    const { view, bytes, at } = this.sink.reserve(16 + caplen);
    const sec = p.tsNs / 1_000_000_000n;
    const ns = Number(p.tsNs - sec * 1_000_000_000n);
    view.setUint32(at, Number(sec), this.le);
    view.setUint32(at + 4, this.resolution === 'ns' ? ns : Math.floor(ns / 1000), this.le);
    view.setUint32(at + 8, caplen, this.le);
    view.setUint32(at + 12, p.origLen ?? p.data.length, this.le);
    bytes.set(caplen === p.data.length ? p.data : p.data.subarray(0, caplen), at + 16);
  }

  /** The file so far (in-memory writers only). */
  bytes(): Uint8Array {
    return this.sink.bytes();
  }

  close(): void {
    this.sink.close();
  }
}

export type PcapngWriterOptions = {
  /** Link type of interface 0, written up front; default Ethernet. */
  linkType?: number;
  snaplen?: number;
  /** if_tsresol byte; default 9 (ns). 0x80|n = 2^-n seconds. */
  tsresol?: number;
  bigEndian?: boolean;
  /** TLS key log (NSS format) for a Decryption Secrets Block right after the first IDB. */
  keyLog?: string;
  /** SHB opt_comment. */
  comment?: string;
};

/**
 * pcapng writer: SHB, one IDB per link type (interface 0 up front, more when a packet brings a new link
 * type), EPBs with optional opt_comment, and DSBs carrying a TLS key log so Wireshark/tshark decrypt the
 * file on their own. `path` null keeps bytes in memory.
 */
export class PcapngWriter {
  private readonly le: boolean;
  private readonly sink: Sink;
  private readonly snaplen: number;
  private readonly tsresol: number;
  private readonly mul: bigint;
  private readonly div: bigint;
  private readonly ifByLink = new Map<number, number>();
  private readonly defaultLink: number;

  constructor(path: string | null = null, opts: PcapngWriterOptions = {}) {
    this.le = !opts.bigEndian;
    this.sink = new Sink(path);
    this.snaplen = opts.snaplen ?? 0;
    this.tsresol = opts.tsresol ?? 9;
    // Writing inverts reading: units = ns * div / mul.
    const { mul, div } = tsresolScale(this.tsresol);
    this.mul = mul;
    this.div = div;
    this.defaultLink = opts.linkType ?? LINKTYPE_ETHERNET;
    const shbOpts = opts.comment !== undefined ? [optBytes(OPT_COMMENT, utf8.encode(opts.comment))] : [];
    this.block(BT_SHB, 16, shbOpts, (v, o) => {
      v.setUint32(o, BYTE_ORDER_MAGIC, this.le);
      v.setUint16(o + 4, 1, this.le);
      v.setUint16(o + 6, 0, this.le);
      v.setBigInt64(o + 8, -1n, this.le); // section length unknown: we stream
    });
    this.interfaceFor(this.defaultLink);
    if (opts.keyLog !== undefined) this.addKeyLog(opts.keyLog);
  }

  /** Embeds a TLS key log in a Decryption Secrets Block; it applies to the packets written after it. */
  addKeyLog(text: string): void {
    const secret = utf8.encode(text);
    this.block(BT_DSB, 8 + ((secret.length + 3) & ~3), [], (v, o, b) => {
      v.setUint32(o, SECRETS_TLS_KEYLOG, this.le);
      v.setUint32(o + 4, secret.length, this.le);
      b.set(secret, o + 8);
    });
  }

  write(p: WritePacket): void {
    const id = this.interfaceFor(p.linkType ?? this.defaultLink);
    const caplen = this.snaplen > 0 ? Math.min(p.data.length, this.snaplen) : p.data.length;
    const units = (p.tsNs * this.div) / this.mul;
    const opts = p.comment !== undefined ? [optBytes(OPT_COMMENT, utf8.encode(p.comment))] : [];
    this.block(BT_EPB, 20 + ((caplen + 3) & ~3), opts, (v, o, b) => {
      v.setUint32(o, id, this.le);
      v.setUint32(o + 4, Number(units >> 32n), this.le);
      v.setUint32(o + 8, Number(units & 0xffffffffn), this.le);
      v.setUint32(o + 12, caplen, this.le);
      v.setUint32(o + 16, p.origLen ?? p.data.length, this.le);
      b.set(caplen === p.data.length ? p.data : p.data.subarray(0, caplen), o + 20);
    });
  }

  bytes(): Uint8Array {
    return this.sink.bytes();
  }

  close(): void {
    this.sink.close();
  }

  private interfaceFor(linkType: number): number {
    let id = this.ifByLink.get(linkType);
    if (id !== undefined) return id;
    id = this.ifByLink.size;
    this.ifByLink.set(linkType, id);
    this.block(BT_IDB, 8, [optBytes(IF_TSRESOL, Uint8Array.of(this.tsresol))], (v, o) => {
      v.setUint16(o, linkType, this.le);
      v.setUint16(o + 2, 0, this.le);
      v.setUint32(o + 4, this.snaplen, this.le);
    });
    return id;
  }

  /** One block: header, `fixed` bytes filled by `fill`, options (+ opt_endofopt), trailer. */
  private block(type: number, fixed: number, options: Array<{ code: number; value: Uint8Array }>, fill: (v: DataView, o: number, b: Uint8Array) => void): void {
    let optLen = 0;
    for (const op of options) optLen += 4 + ((op.value.length + 3) & ~3);
    if (optLen > 0) optLen += 4;
    const len = 12 + fixed + optLen;
    const { view, bytes, at } = this.sink.reserve(len);
    // Padding and reserved bytes must be zero, and the chunk buffer is reused.
    bytes.fill(0, at, at + len);
    view.setUint32(at, type, this.le);
    view.setUint32(at + 4, len, this.le);
    fill(view, at + 8, bytes);
    let o = at + 8 + fixed;
    for (const op of options) {
      view.setUint16(o, op.code, this.le);
      view.setUint16(o + 2, op.value.length, this.le);
      bytes.set(op.value, o + 4);
      o += 4 + ((op.value.length + 3) & ~3);
    }
    view.setUint32(at + len - 4, len, this.le);
  }
}

function optBytes(code: number, value: Uint8Array): { code: number; value: Uint8Array } {
  if (value.length > 0xffff) throw new ContractError(`option ${code} value of ${value.length} bytes does not fit a pcapng option`, { field: 'options' });
  return { code, value };
}
