// The NIC's view of a frame: Ethernet (VLAN) -> IPv4/IPv6 (extension headers) -> TCP, as numbers over the
// frame bytes. One view object is reused for every packet (no allocation per parse): parse() validates
// once and fills the offsets; getters read the buffer.
import { WireError } from '../errors.ts';
import { formatIp } from './addr.ts';
import { fold, pseudoHeaderSum, sum16 } from './checksum.ts';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, LINKTYPE_ETHERNET, linkL3, type L3Location } from './link.ts';

export const FLAG_FIN = 0x01;
export const FLAG_SYN = 0x02;
export const FLAG_RST = 0x04;
export const FLAG_PSH = 0x08;
export const FLAG_ACK = 0x10;
export const FLAG_URG = 0x20;
export const FLAG_ECE = 0x40;
export const FLAG_CWR = 0x80;

const IPPROTO_TCP = 6;
const IPV6_EXT_HOPOPTS = 0;
const IPV6_EXT_ROUTING = 43;
const IPV6_EXT_FRAGMENT = 44;
const IPV6_EXT_AH = 51;
const IPV6_EXT_DSTOPTS = 60;

export type ParseResult = 'tcp' | 'not-tcp' | 'fragment';

export class TcpSegmentView {
  buf: Uint8Array = new Uint8Array(0);
  l3Offset = 0;
  ipVersion: 4 | 6 = 4;
  l4Offset = 0;
  payloadOffset = 0;
  payloadLength = 0;
  srcAddrOffset = 0;
  dstAddrOffset = 0;
  addrLength: 4 | 16 = 4;
  /** End of the IP packet in buf (frames may carry Ethernet padding after it). */
  ipEnd = 0;
  private readonly l3: L3Location = { offset: 0, ethertype: 0 };

  parse(buf: Uint8Array, linkType: number = LINKTYPE_ETHERNET): ParseResult {
    this.buf = buf;
    linkL3(linkType, buf, this.l3);
    const o = this.l3.offset;
    this.l3Offset = o;
    if (this.l3.ethertype === ETHERTYPE_IPV4) return this.parseV4(buf, o);
    if (this.l3.ethertype === ETHERTYPE_IPV6) return this.parseV6(buf, o);
    return 'not-tcp';
  }

  private parseV4(b: Uint8Array, o: number): ParseResult {
    if (o + 20 > b.length) throw new WireError(`IPv4 header needs 20 bytes, ${b.length - o} left`, { offset: o });
    if (b[o]! >> 4 !== 4) throw new WireError(`IP version ${b[o]! >> 4} in an IPv4 ethertype frame`, { offset: o, field: 'ip.version' });
    const ihl = (b[o]! & 0x0f) * 4;
    if (ihl < 20) throw new WireError(`IPv4 IHL ${ihl / 4} is below 5`, { offset: o, field: 'ip.ihl' });
    const total = (b[o + 2]! << 8) | b[o + 3]!;
    if (total < ihl) throw new WireError(`IPv4 total length ${total} is shorter than its header (${ihl})`, { offset: o + 2, field: 'ip.len' });
    if (o + total > b.length) throw new WireError(`IPv4 total length ${total} runs past the frame (${b.length - o} bytes)`, { offset: o + 2, field: 'ip.len' });
    this.ipVersion = 4;
    this.addrLength = 4;
    this.srcAddrOffset = o + 12;
    this.dstAddrOffset = o + 16;
    this.ipEnd = o + total;
    const frag = ((b[o + 6]! << 8) | b[o + 7]!) & 0x3fff; // MF flag + fragment offset
    if (frag !== 0) return 'fragment';
    if (b[o + 9] !== IPPROTO_TCP) return 'not-tcp';
    return this.parseTcp(b, o + ihl);
  }

  private parseV6(b: Uint8Array, o: number): ParseResult {
    if (o + 40 > b.length) throw new WireError(`IPv6 header needs 40 bytes, ${b.length - o} left`, { offset: o });
    if (b[o]! >> 4 !== 6) throw new WireError(`IP version ${b[o]! >> 4} in an IPv6 ethertype frame`, { offset: o, field: 'ip.version' });
    const plen = (b[o + 4]! << 8) | b[o + 5]!;
    if (o + 40 + plen > b.length) throw new WireError(`IPv6 payload length ${plen} runs past the frame`, { offset: o + 4, field: 'ipv6.plen' });
    this.ipVersion = 6;
    this.addrLength = 16;
    this.srcAddrOffset = o + 8;
    this.dstAddrOffset = o + 24;
    this.ipEnd = o + 40 + plen;
    let next = b[o + 6]!;
    let off = o + 40;
    for (;;) {
      if (next === IPPROTO_TCP) return this.parseTcp(b, off);
      if (next === IPV6_EXT_HOPOPTS || next === IPV6_EXT_ROUTING || next === IPV6_EXT_DSTOPTS) {
        if (off + 8 > this.ipEnd) throw new WireError('IPv6 extension header runs past the packet', { offset: off, field: 'ipv6.ext' });
        const len = (b[off + 1]! + 1) * 8;
        next = b[off]!;
        off += len;
      } else if (next === IPV6_EXT_AH) {
        if (off + 8 > this.ipEnd) throw new WireError('IPv6 AH header runs past the packet', { offset: off, field: 'ipv6.ah' });
        const len = (b[off + 1]! + 2) * 4;
        next = b[off]!;
        off += len;
      } else if (next === IPV6_EXT_FRAGMENT) {
        if (off + 8 > this.ipEnd) throw new WireError('IPv6 fragment header runs past the packet', { offset: off, field: 'ipv6.frag' });
        const fo = (b[off + 2]! << 8) | b[off + 3]!;
        if ((fo & 0xfff9) !== 0) return 'fragment'; // offset or M set; an atomic fragment carries the whole packet
        next = b[off]!;
        off += 8;
      } else {
        return 'not-tcp';
      }
      if (off > this.ipEnd) throw new WireError('IPv6 extension headers run past the packet', { offset: off, field: 'ipv6.ext' });
    }
  }

  private parseTcp(b: Uint8Array, o: number): ParseResult {
    if (o + 20 > this.ipEnd) throw new WireError(`TCP header needs 20 bytes, ${this.ipEnd - o} left`, { offset: o, field: 'tcp' });
    const doff = (b[o + 12]! >> 4) * 4;
    if (doff < 20) throw new WireError(`TCP data offset ${doff / 4} is below 5`, { offset: o + 12, field: 'tcp.doff' });
    if (o + doff > this.ipEnd) throw new WireError(`TCP data offset ${doff / 4} runs past the segment`, { offset: o + 12, field: 'tcp.doff' });
    this.l4Offset = o;
    this.payloadOffset = o + doff;
    this.payloadLength = this.ipEnd - this.payloadOffset;
    return 'tcp';
  }

  get srcPort(): number {
    return (this.buf[this.l4Offset]! << 8) | this.buf[this.l4Offset + 1]!;
  }
  get dstPort(): number {
    return (this.buf[this.l4Offset + 2]! << 8) | this.buf[this.l4Offset + 3]!;
  }
  get seq(): number {
    return readU32(this.buf, this.l4Offset + 4);
  }
  set seq(v: number) {
    writeU32(this.buf, this.l4Offset + 4, v);
  }
  get ack(): number {
    return readU32(this.buf, this.l4Offset + 8);
  }
  get flags(): number {
    return this.buf[this.l4Offset + 13]!;
  }
  get window(): number {
    return (this.buf[this.l4Offset + 14]! << 8) | this.buf[this.l4Offset + 15]!;
  }
  get tcpHeaderLength(): number {
    return this.payloadOffset - this.l4Offset;
  }
  get syn(): boolean {
    return (this.flags & FLAG_SYN) !== 0;
  }
  get fin(): boolean {
    return (this.flags & FLAG_FIN) !== 0;
  }
  get rst(): boolean {
    return (this.flags & FLAG_RST) !== 0;
  }
  get psh(): boolean {
    return (this.flags & FLAG_PSH) !== 0;
  }
  get ackFlag(): boolean {
    return (this.flags & FLAG_ACK) !== 0;
  }

  srcIp(): string {
    return formatIp(this.buf, this.srcAddrOffset, this.addrLength);
  }
  dstIp(): string {
    return formatIp(this.buf, this.dstAddrOffset, this.addrLength);
  }

  payload(): Uint8Array {
    return this.buf.subarray(this.payloadOffset, this.payloadOffset + this.payloadLength);
  }

  private tcpSum(): number {
    const tcpLen = this.ipEnd - this.l4Offset;
    const acc = pseudoHeaderSum(this.buf, this.srcAddrOffset, this.dstAddrOffset, this.addrLength, tcpLen);
    return sum16(this.buf, this.l4Offset, tcpLen, acc);
  }

  verifyTcpChecksum(): boolean {
    return fold(this.tcpSum()) === 0xffff;
  }

  updateTcpChecksum(): void {
    const c = this.l4Offset + 16;
    this.buf[c] = 0;
    this.buf[c + 1] = 0;
    const v = ~fold(this.tcpSum()) & 0xffff;
    this.buf[c] = v >>> 8;
    this.buf[c + 1] = v & 0xff;
  }
}

export function readU32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

export function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}
