// Ethernet II header view with stacked 802.1Q / 802.1ad VLAN tags (smoltcp wire/ethernet.rs shape: a view
// over (buf, offset), validated once by checked(), fields read and written in place).
import { WireError } from '../errors.ts';

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETHERTYPE_VLAN = 0x8100; // 802.1Q C-tag
export const ETHERTYPE_QINQ = 0x88a8; // 802.1ad S-tag
export const ETHERTYPE_QINQ_OLD = 0x9100; // pre-standard Q-in-Q, still seen on switches

export const ETH_HLEN = 14;
export const VLAN_HLEN = 4;

export function isVlanTpid(type: number): boolean {
  return type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ || type === ETHERTYPE_QINQ_OLD;
}

export class EthernetFrame {
  buf: Uint8Array = new Uint8Array(0);
  offset = 0;
  /** Number of VLAN tags between the source MAC and the final ethertype. */
  vlanCount = 0;

  /** A view over the frame at `offset`, checked to hold its header and every VLAN tag. */
  static checked(buf: Uint8Array, offset = 0): EthernetFrame {
    return new EthernetFrame().attach(buf, offset);
  }

  /** Re-point this view at a frame and validate it (no allocation; the NIC reuses one view). */
  attach(buf: Uint8Array, offset = 0): this {
    if (offset + ETH_HLEN > buf.length) {
      throw new WireError(`Ethernet frame of ${buf.length - offset} bytes is shorter than its 14-byte header`, { offset, field: 'eth' });
    }
    let off = offset + 12;
    let n = 0;
    while (isVlanTpid((buf[off]! << 8) | buf[off + 1]!)) {
      off += VLAN_HLEN;
      n++;
      if (off + 2 > buf.length) throw new WireError(`VLAN tag ${n} runs past the end of the frame`, { offset: off - VLAN_HLEN, field: 'eth.vlan' });
    }
    this.buf = buf;
    this.offset = offset;
    this.vlanCount = n;
    return this;
  }

  get dstMac(): Uint8Array {
    return this.buf.subarray(this.offset, this.offset + 6);
  }
  get srcMac(): Uint8Array {
    return this.buf.subarray(this.offset + 6, this.offset + 12);
  }
  /** TPID of VLAN tag i (0 = outermost). */
  vlanTpid(i: number): number {
    const o = this.offset + 12 + VLAN_HLEN * i;
    return (this.buf[o]! << 8) | this.buf[o + 1]!;
  }
  /** 12-bit VLAN ID of tag i (0 = outermost). */
  vlanId(i: number): number {
    const o = this.offset + 14 + VLAN_HLEN * i;
    return ((this.buf[o]! << 8) | this.buf[o + 1]!) & 0x0fff;
  }
  /** 802.1p priority (PCP) of tag i. */
  vlanPcp(i: number): number {
    return this.buf[this.offset + 14 + VLAN_HLEN * i]! >> 5;
  }
  /** The ethertype after all VLAN tags. */
  get ethertype(): number {
    const o = this.offset + 12 + VLAN_HLEN * this.vlanCount;
    return (this.buf[o]! << 8) | this.buf[o + 1]!;
  }
  set ethertype(v: number) {
    const o = this.offset + 12 + VLAN_HLEN * this.vlanCount;
    this.buf[o] = v >>> 8;
    this.buf[o + 1] = v & 0xff;
  }
  get headerLength(): number {
    return ETH_HLEN + VLAN_HLEN * this.vlanCount;
  }
  /** Offset in buf of the L3 header. */
  get payloadOffset(): number {
    return this.offset + this.headerLength;
  }
}
