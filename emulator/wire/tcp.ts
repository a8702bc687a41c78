// TCP header view (RFC 9293 3.1; smoltcp wire/tcp.rs) and option iteration (RFC 9293 3.2, RFC 7323
// window scale and timestamps, RFC 2018 SACK). checked()/attach() validate once: 20 fixed bytes, data
// offset >= 5 and within the segment. Options are validated as they are walked.
import { readU32, writeU32 } from '../bytes.ts';
import { WireError } from '../errors.ts';

export { readU32, writeU32 } from '../bytes.ts';

export const TCP_MIN_HLEN = 20;

export const TCPOPT_EOL = 0;
export const TCPOPT_NOP = 1;
export const TCPOPT_MSS = 2;
export const TCPOPT_WINDOW = 3;
export const TCPOPT_SACK_PERM = 4;
export const TCPOPT_SACK = 5;
export const TCPOPT_TIMESTAMP = 8;

export class TcpHeader {
  buf: Uint8Array = new Uint8Array(0);
  offset = 0;
  /** End of the segment in buf (from the IP length, not the frame). */
  end = 0;

  /** A view of the TCP header at `offset` in a segment ending at `end` (default: the buffer's end). */
  static checked(buf: Uint8Array, offset = 0, end = buf.length): TcpHeader {
    return new TcpHeader().attach(buf, offset, end);
  }

  attach(b: Uint8Array, o: number, end: number): this {
    if (o + TCP_MIN_HLEN > end) throw new WireError(`TCP header needs 20 bytes, ${end - o} left`, { offset: o, field: 'tcp' });
    const doff = (b[o + 12]! >> 4) * 4;
    if (doff < TCP_MIN_HLEN) throw new WireError(`TCP data offset ${doff / 4} is below 5`, { offset: o + 12, field: 'tcp.doff' });
    if (o + doff > end) {
      throw new WireError(`TCP data offset ${doff / 4} (${doff} bytes) runs past the segment (${end - o} bytes)`, { offset: o + 12, field: 'tcp.doff' });
    }
    this.buf = b;
    this.offset = o;
    this.end = end;
    return this;
  }

  get srcPort(): number {
    return (this.buf[this.offset]! << 8) | this.buf[this.offset + 1]!;
  }
  set srcPort(v: number) {
    this.buf[this.offset] = v >>> 8;
    this.buf[this.offset + 1] = v & 0xff;
  }
  get dstPort(): number {
    return (this.buf[this.offset + 2]! << 8) | this.buf[this.offset + 3]!;
  }
  set dstPort(v: number) {
    this.buf[this.offset + 2] = v >>> 8;
    this.buf[this.offset + 3] = v & 0xff;
  }
  get seq(): number {
    return readU32(this.buf, this.offset + 4);
  }
  set seq(v: number) {
    writeU32(this.buf, this.offset + 4, v);
  }
  get ack(): number {
    return readU32(this.buf, this.offset + 8);
  }
  set ack(v: number) {
    writeU32(this.buf, this.offset + 8, v);
  }
  get headerLength(): number {
    return (this.buf[this.offset + 12]! >> 4) * 4;
  }
  get flags(): number {
    return this.buf[this.offset + 13]!;
  }
  set flags(v: number) {
    this.buf[this.offset + 13] = v;
  }
  get window(): number {
    return (this.buf[this.offset + 14]! << 8) | this.buf[this.offset + 15]!;
  }
  set window(v: number) {
    this.buf[this.offset + 14] = v >>> 8;
    this.buf[this.offset + 15] = v & 0xff;
  }
  get checksum(): number {
    return (this.buf[this.offset + 16]! << 8) | this.buf[this.offset + 17]!;
  }
  get urgentPointer(): number {
    return (this.buf[this.offset + 18]! << 8) | this.buf[this.offset + 19]!;
  }
  get payloadOffset(): number {
    return this.offset + this.headerLength;
  }
  get payloadLength(): number {
    return this.end - this.payloadOffset;
  }
}

/**
 * A reusable cursor over a TCP header's options (tcp_parse_options() order and rules): EOL ends the list,
 * NOP is one byte, every other option has a length byte >= 2 that must fit the header, and the options
 * tlsnic knows must have their RFC length. `for (it.reset(h); it.next(); ) { it.kind ... }`.
 */
export class TcpOptionIter {
  buf: Uint8Array = new Uint8Array(0);
  /** Current option: kind, offset of its kind byte, total length (1 for NOP). */
  kind = 0;
  offset = 0;
  length = 0;
  private pos = 0;
  private end = 0;

  reset(h: TcpHeader): this {
    this.buf = h.buf;
    this.pos = h.offset + TCP_MIN_HLEN;
    this.end = h.offset + h.headerLength;
    return this;
  }

  next(): boolean {
    const b = this.buf;
    const p = this.pos;
    if (p >= this.end) return false;
    const kind = b[p]!;
    if (kind === TCPOPT_EOL) {
      this.pos = this.end;
      return false;
    }
    let len = 1;
    if (kind !== TCPOPT_NOP) {
      if (p + 2 > this.end) throw new WireError(`TCP option ${kind} has no length byte`, { offset: p, field: 'tcp.options' });
      len = b[p + 1]!;
      if (len < 2) throw new WireError(`TCP option ${kind} has length ${len} (below 2)`, { offset: p + 1, field: 'tcp.options' });
      if (p + len > this.end) throw new WireError(`TCP option ${kind} of length ${len} runs past the header`, { offset: p + 1, field: 'tcp.options' });
      const want = optionLengthRule(kind, len);
      if (want !== null) throw new WireError(`TCP option ${optionName(kind)} has length ${len}, must be ${want}`, { offset: p + 1, field: `tcp.options.${optionName(kind)}` });
    }
    this.kind = kind;
    this.offset = p;
    this.length = len;
    this.pos = p + len;
    return true;
  }
}

/** null when `len` is right for `kind`, otherwise the rule (for the error message). */
function optionLengthRule(kind: number, len: number): string | null {
  switch (kind) {
    case TCPOPT_MSS:
      return len === 4 ? null : '4';
    case TCPOPT_WINDOW:
      return len === 3 ? null : '3';
    case TCPOPT_SACK_PERM:
      return len === 2 ? null : '2';
    case TCPOPT_SACK:
      return len >= 10 && (len - 2) % 8 === 0 ? null : '2 + 8n (n >= 1)';
    case TCPOPT_TIMESTAMP:
      return len === 10 ? null : '10';
    default:
      return null;
  }
}

function optionName(kind: number): string {
  switch (kind) {
    case TCPOPT_MSS:
      return 'mss';
    case TCPOPT_WINDOW:
      return 'wscale';
    case TCPOPT_SACK_PERM:
      return 'sack_perm';
    case TCPOPT_SACK:
      return 'sack';
    case TCPOPT_TIMESTAMP:
      return 'timestamp';
    default:
      return String(kind);
  }
}

/** The options a TCP stack acts on, decoded (allocates: for tests, the host model and dumps, not the NIC). */
export type TcpOptions = {
  mss?: number;
  wscale?: number;
  sackPermitted: boolean;
  /** SACK blocks as [left, right) seq pairs. */
  sack: Array<[number, number]>;
  timestamp?: { tsval: number; tsecr: number };
  /** Kinds tlsnic does not decode, in order. */
  unknown: number[];
};

export function parseTcpOptions(h: TcpHeader): TcpOptions {
  const out: TcpOptions = { sackPermitted: false, sack: [], unknown: [] };
  const it = new TcpOptionIter().reset(h);
  const b = h.buf;
  while (it.next()) {
    const p = it.offset;
    switch (it.kind) {
      case TCPOPT_NOP:
        break;
      case TCPOPT_MSS:
        out.mss = (b[p + 2]! << 8) | b[p + 3]!;
        break;
      case TCPOPT_WINDOW:
        out.wscale = b[p + 2]!;
        break;
      case TCPOPT_SACK_PERM:
        out.sackPermitted = true;
        break;
      case TCPOPT_SACK:
        for (let q = p + 2; q < p + it.length; q += 8) out.sack.push([readU32(b, q), readU32(b, q + 4)]);
        break;
      case TCPOPT_TIMESTAMP:
        out.timestamp = { tsval: readU32(b, p + 2), tsecr: readU32(b, p + 6) };
        break;
      default:
        out.unknown.push(it.kind);
    }
  }
  return out;
}

/** Encode options (MSS, WS, SACK-permitted, SACK, timestamps) NOP-padded to a multiple of 4, as Linux lays them out. */
export function encodeTcpOptions(o: Partial<Omit<TcpOptions, 'unknown'>>): Uint8Array {
  const bytes: number[] = [];
  const u32 = (v: number) => bytes.push(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  if (o.mss !== undefined) bytes.push(TCPOPT_MSS, 4, o.mss >>> 8, o.mss & 0xff);
  if (o.sackPermitted && o.timestamp) bytes.push(TCPOPT_SACK_PERM, 2);
  else if (o.sackPermitted) bytes.push(TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK_PERM, 2);
  if (o.timestamp) {
    if (!o.sackPermitted) bytes.push(TCPOPT_NOP, TCPOPT_NOP);
    bytes.push(TCPOPT_TIMESTAMP, 10);
    u32(o.timestamp.tsval);
    u32(o.timestamp.tsecr);
  }
  if (o.wscale !== undefined) bytes.push(TCPOPT_NOP, TCPOPT_WINDOW, 3, o.wscale);
  if (o.sack && o.sack.length > 0) {
    bytes.push(TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK, 2 + 8 * o.sack.length);
    for (const [l, r] of o.sack) {
      u32(l);
      u32(r);
    }
  }
  while (bytes.length % 4 !== 0) bytes.push(TCPOPT_NOP);
  if (bytes.length > 40) throw new WireError(`TCP options take ${bytes.length} bytes, over the 40-byte limit`, { field: 'tcp.options' });
  return Uint8Array.from(bytes);
}

