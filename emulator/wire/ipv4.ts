// IPv4 header view (RFC 791; smoltcp wire/ipv4.rs). checked()/attach() validate once: version, IHL >= 5,
// total length covers the header and fits the buffer. Bytes past total length (Ethernet padding) are not
// part of the packet: `end` says where it stops.
import { WireError } from '../errors.ts';
import { fold, internetChecksum, sum16 } from './checksum.ts';

export const IPV4_MIN_HLEN = 20;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

const IP_DF = 0x4000;
const IP_MF = 0x2000;
const IP_OFFMASK = 0x1fff;

export class Ipv4Packet {
  buf: Uint8Array = new Uint8Array(0);
  offset = 0;

  static checked(buf: Uint8Array, offset = 0): Ipv4Packet {
    return new Ipv4Packet().attach(buf, offset);
  }

  attach(b: Uint8Array, o: number): this {
    if (o + IPV4_MIN_HLEN > b.length) throw new WireError(`IPv4 header needs 20 bytes, ${b.length - o} left`, { offset: o, field: 'ip' });
    const v = b[o]! >> 4;
    if (v !== 4) throw new WireError(`IP version ${v} in an IPv4 header`, { offset: o, field: 'ip.version' });
    const ihl = (b[o]! & 0x0f) * 4;
    if (ihl < IPV4_MIN_HLEN) throw new WireError(`IPv4 IHL ${ihl / 4} is below 5`, { offset: o, field: 'ip.ihl' });
    const total = (b[o + 2]! << 8) | b[o + 3]!;
    if (total < ihl) throw new WireError(`IPv4 total length ${total} is shorter than its header (${ihl})`, { offset: o + 2, field: 'ip.len' });
    if (o + total > b.length) {
      throw new WireError(`IPv4 total length ${total} runs past the frame (${b.length - o} bytes)`, { offset: o + 2, field: 'ip.len' });
    }
    this.buf = b;
    this.offset = o;
    return this;
  }

  get headerLength(): number {
    return (this.buf[this.offset]! & 0x0f) * 4;
  }
  get dscp(): number {
    return this.buf[this.offset + 1]! >> 2;
  }
  get ecn(): number {
    return this.buf[this.offset + 1]! & 3;
  }
  get totalLength(): number {
    return (this.buf[this.offset + 2]! << 8) | this.buf[this.offset + 3]!;
  }
  set totalLength(v: number) {
    this.buf[this.offset + 2] = v >>> 8;
    this.buf[this.offset + 3] = v & 0xff;
  }
  get ident(): number {
    return (this.buf[this.offset + 4]! << 8) | this.buf[this.offset + 5]!;
  }
  set ident(v: number) {
    this.buf[this.offset + 4] = (v >>> 8) & 0xff;
    this.buf[this.offset + 5] = v & 0xff;
  }
  private get fragWord(): number {
    return (this.buf[this.offset + 6]! << 8) | this.buf[this.offset + 7]!;
  }
  get dontFrag(): boolean {
    return (this.fragWord & IP_DF) !== 0;
  }
  get moreFrags(): boolean {
    return (this.fragWord & IP_MF) !== 0;
  }
  /** Fragment offset in bytes. */
  get fragOffset(): number {
    return (this.fragWord & IP_OFFMASK) * 8;
  }
  /** A fragment of a larger datagram (MF set or offset non-zero): not a TCP segment to a NIC. */
  get isFragment(): boolean {
    return (this.fragWord & (IP_MF | IP_OFFMASK)) !== 0;
  }
  get ttl(): number {
    return this.buf[this.offset + 8]!;
  }
  set ttl(v: number) {
    this.buf[this.offset + 8] = v;
  }
  get protocol(): number {
    return this.buf[this.offset + 9]!;
  }
  get checksum(): number {
    return (this.buf[this.offset + 10]! << 8) | this.buf[this.offset + 11]!;
  }
  get srcAddrOffset(): number {
    return this.offset + 12;
  }
  get dstAddrOffset(): number {
    return this.offset + 16;
  }
  get payloadOffset(): number {
    return this.offset + this.headerLength;
  }
  /** End of the packet in buf (total length; any bytes after it are link padding). */
  get end(): number {
    return this.offset + this.totalLength;
  }

  verifyChecksum(): boolean {
    return fold(sum16(this.buf, this.offset, this.headerLength)) === 0xffff;
  }
  /** Recompute the header checksum in place (ip_send_check()). */
  fillChecksum(): void {
    const o = this.offset;
    this.buf[o + 10] = 0;
    this.buf[o + 11] = 0;
    const c = internetChecksum(this.buf, o, this.headerLength);
    this.buf[o + 10] = c >>> 8;
    this.buf[o + 11] = c & 0xff;
  }
}
