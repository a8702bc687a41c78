// IPv6 header view (RFC 8200; smoltcp wire/ipv6.rs) and the extension header walk a NIC parser does to
// reach TCP: hop-by-hop, routing, fragment, destination options and AH (RFC 4302) are stepped over;
// anything else (TCP, UDP, ESP, no-next-header) ends the walk.
import { WireError } from '../errors.ts';

export const IPV6_HLEN = 40;
export const IPV6_EXT_HOPOPTS = 0;
export const IPV6_EXT_ROUTING = 43;
export const IPV6_EXT_FRAGMENT = 44;
export const IPV6_EXT_AH = 51;
export const IPV6_EXT_DSTOPTS = 60;

/** walk() result for a non-first fragment or a first fragment with more to come. */
export const IPV6_WALK_FRAGMENT = -1;

export class Ipv6Packet {
  buf: Uint8Array = new Uint8Array(0);
  offset = 0;
  /** After walk(): the upper-layer protocol number and where its header starts. */
  upperProtocol = 0;
  upperOffset = 0;

  static checked(buf: Uint8Array, offset = 0): Ipv6Packet {
    return new Ipv6Packet().attach(buf, offset);
  }

  attach(b: Uint8Array, o: number): this {
    if (o + IPV6_HLEN > b.length) throw new WireError(`IPv6 header needs 40 bytes, ${b.length - o} left`, { offset: o, field: 'ipv6' });
    const v = b[o]! >> 4;
    if (v !== 6) throw new WireError(`IP version ${v} in an IPv6 header`, { offset: o, field: 'ip.version' });
    const plen = (b[o + 4]! << 8) | b[o + 5]!;
    if (o + IPV6_HLEN + plen > b.length) {
      throw new WireError(`IPv6 payload length ${plen} runs past the frame (${b.length - o - IPV6_HLEN} bytes after the header)`, {
        offset: o + 4,
        field: 'ipv6.plen',
      });
    }
    this.buf = b;
    this.offset = o;
    this.upperProtocol = b[o + 6]!;
    this.upperOffset = o + IPV6_HLEN;
    return this;
  }

  get trafficClass(): number {
    return ((this.buf[this.offset]! & 0x0f) << 4) | (this.buf[this.offset + 1]! >> 4);
  }
  get flowLabel(): number {
    const o = this.offset;
    return ((this.buf[o + 1]! & 0x0f) << 16) | (this.buf[o + 2]! << 8) | this.buf[o + 3]!;
  }
  get payloadLength(): number {
    return (this.buf[this.offset + 4]! << 8) | this.buf[this.offset + 5]!;
  }
  set payloadLength(v: number) {
    this.buf[this.offset + 4] = v >>> 8;
    this.buf[this.offset + 5] = v & 0xff;
  }
  get nextHeader(): number {
    return this.buf[this.offset + 6]!;
  }
  get hopLimit(): number {
    return this.buf[this.offset + 7]!;
  }
  set hopLimit(v: number) {
    this.buf[this.offset + 7] = v;
  }
  get srcAddrOffset(): number {
    return this.offset + 8;
  }
  get dstAddrOffset(): number {
    return this.offset + 24;
  }
  /** End of the packet in buf (bytes after it are link padding). */
  get end(): number {
    return this.offset + IPV6_HLEN + this.payloadLength;
  }

  /**
   * Step over extension headers (as ipv6_skip_exthdr() does) and set upperProtocol/upperOffset. Returns the
   * upper-layer protocol, or IPV6_WALK_FRAGMENT for a real fragment. An atomic fragment (offset 0, M clear,
   * RFC 6946) carries the whole packet and is stepped over.
   */
  walk(): number {
    const b = this.buf;
    const end = this.end;
    let next = b[this.offset + 6]!;
    let off = this.offset + IPV6_HLEN;
    for (;;) {
      let len: number;
      if (next === IPV6_EXT_HOPOPTS || next === IPV6_EXT_ROUTING || next === IPV6_EXT_DSTOPTS) {
        if (off + 8 > end) throw new WireError(`IPv6 extension header ${next} runs past the packet`, { offset: off, field: 'ipv6.ext' });
        len = (b[off + 1]! + 1) * 8;
      } else if (next === IPV6_EXT_AH) {
        if (off + 12 > end) throw new WireError('IPv6 AH header runs past the packet', { offset: off, field: 'ipv6.ah' });
        len = (b[off + 1]! + 2) * 4; // RFC 4302 2.2: payload len in 4-octet units, minus 2
      } else if (next === IPV6_EXT_FRAGMENT) {
        if (off + 8 > end) throw new WireError('IPv6 fragment header runs past the packet', { offset: off, field: 'ipv6.frag' });
        const fo = (b[off + 2]! << 8) | b[off + 3]!;
        if ((fo & 0xfff9) !== 0) {
          this.upperProtocol = b[off]!;
          this.upperOffset = off + 8;
          return IPV6_WALK_FRAGMENT;
        }
        len = 8;
      } else {
        this.upperProtocol = next;
        this.upperOffset = off;
        return next;
      }
      if (off + len > end) throw new WireError(`IPv6 extension header ${next} (${len} bytes) runs past the packet`, { offset: off, field: 'ipv6.ext' });
      next = b[off]!;
      off += len;
    }
  }
}
