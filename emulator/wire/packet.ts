// The NIC's view of a frame: link (Ethernet + VLAN, raw, SLL, SLL2) -> IPv4/IPv6 (extension headers) -> TCP,
// as numbers over the frame bytes. One view object is reused for every packet (no allocation per parse):
// parse() validates once through the reusable header views and fills the offsets; getters read the buffer.
import { formatIp } from './addr.ts';
import { fillTcpChecksum, fold, tcpSegmentSum } from './checksum.ts';
import { IPPROTO_TCP, Ipv4Packet } from './ipv4.ts';
import { IPV6_WALK_FRAGMENT, Ipv6Packet } from './ipv6.ts';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, LINKTYPE_ETHERNET, linkL3, type L3Location } from './link.ts';
import { TcpHeader, readU32, writeU32 } from './tcp.ts';

export { readU32, writeU32 } from './tcp.ts';

export const FLAG_FIN = 0x01;
export const FLAG_SYN = 0x02;
export const FLAG_RST = 0x04;
export const FLAG_PSH = 0x08;
export const FLAG_ACK = 0x10;
export const FLAG_URG = 0x20;
export const FLAG_ECE = 0x40;
export const FLAG_CWR = 0x80;

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
  /** The header views parse() filled (valid after 'tcp'; ipv4 or ipv6 per ipVersion). */
  readonly ipv4 = new Ipv4Packet();
  readonly ipv6 = new Ipv6Packet();
  readonly tcp = new TcpHeader();
  private readonly l3: L3Location = { offset: 0, ethertype: 0 };

  /**
   * Parse a captured or transmitted frame. 'fragment': an IP fragment (a NIC does not treat it as a TCP
   * segment); 'not-tcp': some other ethertype or protocol. Malformed headers throw WireError with offset
   * and field.
   */
  parse(buf: Uint8Array, linkType: number = LINKTYPE_ETHERNET): ParseResult {
    this.buf = buf;
    linkL3(linkType, buf, this.l3);
    const o = this.l3.offset;
    this.l3Offset = o;
    const type = this.l3.ethertype;
    if (type === ETHERTYPE_IPV4) {
      const ip = this.ipv4.attach(buf, o);
      this.ipVersion = 4;
      this.addrLength = 4;
      this.srcAddrOffset = o + 12;
      this.dstAddrOffset = o + 16;
      this.ipEnd = ip.end;
      if (ip.isFragment) return 'fragment';
      if (ip.protocol !== IPPROTO_TCP) return 'not-tcp';
      return this.parseTcp(buf, ip.payloadOffset);
    }
    if (type === ETHERTYPE_IPV6) {
      const ip = this.ipv6.attach(buf, o);
      this.ipVersion = 6;
      this.addrLength = 16;
      this.srcAddrOffset = o + 8;
      this.dstAddrOffset = o + 24;
      this.ipEnd = ip.end;
      const proto = ip.walk();
      if (proto === IPV6_WALK_FRAGMENT) return 'fragment';
      if (proto !== IPPROTO_TCP) return 'not-tcp';
      return this.parseTcp(buf, ip.upperOffset);
    }
    return 'not-tcp';
  }

  private parseTcp(b: Uint8Array, o: number): ParseResult {
    const t = this.tcp.attach(b, o, this.ipEnd);
    this.l4Offset = o;
    this.payloadOffset = t.payloadOffset;
    // From the IP length, not the frame: short frames carry Ethernet padding after the packet.
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
  set ack(v: number) {
    writeU32(this.buf, this.l4Offset + 8, v);
  }
  get flags(): number {
    return this.buf[this.l4Offset + 13]!;
  }
  set flags(v: number) {
    this.buf[this.l4Offset + 13] = v;
  }
  get window(): number {
    return (this.buf[this.l4Offset + 14]! << 8) | this.buf[this.l4Offset + 15]!;
  }
  set window(v: number) {
    this.buf[this.l4Offset + 14] = v >>> 8;
    this.buf[this.l4Offset + 15] = v & 0xff;
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

  verifyTcpChecksum(): boolean {
    return fold(tcpSegmentSum(this.buf, this.srcAddrOffset, this.dstAddrOffset, this.addrLength, this.l4Offset, this.ipEnd)) === 0xffff;
  }

  updateTcpChecksum(): void {
    fillTcpChecksum(this.buf, this.srcAddrOffset, this.dstAddrOffset, this.addrLength, this.l4Offset, this.ipEnd);
  }

  /** IPv4 header checksum verifies (always true for IPv6, which has none). */
  verifyIpChecksum(): boolean {
    return this.ipVersion === 6 || this.ipv4.verifyChecksum();
  }
}
