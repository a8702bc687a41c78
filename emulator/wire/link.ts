// Link-layer framing of captured packets: where the IP header starts, and which ethertype it is.
import { WireError } from '../errors.ts';

export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const DLT_RAW = 12;
export const DLT_RAW_ALT = 14; // OpenBSD's DLT_RAW value, seen in some captures
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_LINUX_SLL2 = 276;

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100;
const ETHERTYPE_QINQ = 0x88a8;
const ETHERTYPE_QINQ_OLD = 0x9100;

export type L3Location = { offset: number; ethertype: number };

/** Find the L3 header in a frame of the given link type; fills `out`. Throws WireError if it does not fit. */
export function linkL3(linkType: number, buf: Uint8Array, out: L3Location): void {
  switch (linkType) {
    case LINKTYPE_ETHERNET: {
      if (buf.length < 14) throw new WireError(`Ethernet frame of ${buf.length} bytes is shorter than its 14-byte header`, { offset: 0 });
      let off = 12;
      let type = (buf[off]! << 8) | buf[off + 1]!;
      while (type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ || type === ETHERTYPE_QINQ_OLD) {
        off += 4;
        if (off + 2 > buf.length) throw new WireError('VLAN tag runs past the end of the frame', { offset: off, field: 'vlan' });
        type = (buf[off]! << 8) | buf[off + 1]!;
      }
      out.offset = off + 2;
      out.ethertype = type;
      return;
    }
    case LINKTYPE_RAW:
    case DLT_RAW:
    case DLT_RAW_ALT: {
      if (buf.length < 1) throw new WireError('empty raw IP packet', { offset: 0 });
      const v = buf[0]! >> 4;
      out.offset = 0;
      out.ethertype = v === 4 ? ETHERTYPE_IPV4 : v === 6 ? ETHERTYPE_IPV6 : 0;
      return;
    }
    case LINKTYPE_LINUX_SLL: {
      if (buf.length < 16) throw new WireError(`Linux SLL header needs 16 bytes, have ${buf.length}`, { offset: 0 });
      out.offset = 16;
      out.ethertype = (buf[14]! << 8) | buf[15]!;
      return;
    }
    case LINKTYPE_LINUX_SLL2: {
      if (buf.length < 20) throw new WireError(`Linux SLL2 header needs 20 bytes, have ${buf.length}`, { offset: 0 });
      out.offset = 20;
      out.ethertype = (buf[0]! << 8) | buf[1]!;
      return;
    }
    default:
      throw new WireError(`link type ${linkType} is not one tlsnic reads (Ethernet 1, raw IP 101/12, Linux SLL 113, SLL2 276)`, {
        field: 'linktype',
      });
  }
}
