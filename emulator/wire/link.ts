// Link-layer framing of captured packets: where the IP header starts, and which ethertype it is.
import { readU32 } from '../bytes.ts';
import { WireError } from '../errors.ts';
import {
  LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_LOOP, LINKTYPE_NULL, LINKTYPE_RAW,
  LINKTYPE_RAW_BSD as DLT_RAW, LINKTYPE_RAW_OPENBSD as DLT_RAW_ALT,
} from '../capture/types.ts';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, isVlanTpid } from './ethernet.ts';

export { ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from './ethernet.ts';

// The numbers are the capture formats' (tcpdump.org/linktypes.html), kept with the capture types.
export { DLT_RAW, DLT_RAW_ALT, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_LOOP, LINKTYPE_NULL, LINKTYPE_RAW };

/** AF_INET everywhere; AF_INET6 as Linux (10), NetBSD/OpenBSD (24), FreeBSD (28) and macOS (30) number it. */
const AF_INET = 2;
const AF_INET6 = new Set([10, 24, 28, 30]);

export type L3Location = { offset: number; ethertype: number };

/**
 * Find the L3 header in a frame of the given link type; fills `out` (no allocation). Ethertypes that are
 * not IP come back as they are (the caller says 'not-tcp'); a header that does not fit is a WireError.
 */
export function linkL3(linkType: number, buf: Uint8Array, out: L3Location): void {
  switch (linkType) {
    case LINKTYPE_ETHERNET: {
      if (buf.length < 14) throw new WireError(`Ethernet frame of ${buf.length} bytes is shorter than its 14-byte header`, { offset: 0, field: 'eth' });
      let off = 12;
      let type = (buf[off]! << 8) | buf[off + 1]!;
      while (isVlanTpid(type)) {
        off += 4;
        if (off + 2 > buf.length) throw new WireError('VLAN tag runs past the end of the frame', { offset: off - 4, field: 'eth.vlan' });
        type = (buf[off]! << 8) | buf[off + 1]!;
      }
      out.offset = off + 2;
      out.ethertype = type;
      return;
    }
    case LINKTYPE_RAW:
    case DLT_RAW:
    case DLT_RAW_ALT: {
      // Raw IP has no ethertype: the version nibble decides (libpcap's DLT_RAW).
      if (buf.length < 1) throw new WireError('empty raw IP packet', { offset: 0, field: 'ip.version' });
      const v = buf[0]! >> 4;
      if (v !== 4 && v !== 6) throw new WireError(`raw IP packet has IP version ${v}`, { offset: 0, field: 'ip.version' });
      out.offset = 0;
      out.ethertype = v === 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6;
      return;
    }
    case LINKTYPE_LINUX_SLL: {
      // 16 bytes: packet type, ARPHRD, address length, 8-byte address, protocol (ethertype) at 14.
      if (buf.length < 16) throw new WireError(`Linux SLL header needs 16 bytes, have ${buf.length}`, { offset: 0, field: 'sll' });
      out.offset = 16;
      out.ethertype = (buf[14]! << 8) | buf[15]!;
      return;
    }
    case LINKTYPE_LINUX_SLL2: {
      // 20 bytes: protocol (ethertype) first, then reserved, ifindex, ARPHRD, packet type, address.
      if (buf.length < 20) throw new WireError(`Linux SLL2 header needs 20 bytes, have ${buf.length}`, { offset: 0, field: 'sll2' });
      out.offset = 20;
      out.ethertype = (buf[0]! << 8) | buf[1]!;
      return;
    }
    case LINKTYPE_NULL:
    case LINKTYPE_LOOP: {
      const field = linkType === LINKTYPE_NULL ? 'null.family' : 'loop.family';
      if (buf.length < 4) throw new WireError(`loopback header needs 4 bytes, have ${buf.length}`, { offset: 0, field });
      const be = readU32(buf, 0);
      // DLT_NULL is in the byte order of the host that captured, which the file does not say: a family in
      // the upper half means the other order (as Wireshark decides).
      const family = linkType === LINKTYPE_NULL && be > 0xffff ? ((buf[3]! << 24) | (buf[2]! << 16) | (buf[1]! << 8) | buf[0]!) >>> 0 : be;
      out.offset = 4;
      // Not IP: an ethertype no caller takes for IP (the caller says 'not-tcp').
      out.ethertype = family === AF_INET ? ETHERTYPE_IPV4 : AF_INET6.has(family) ? ETHERTYPE_IPV6 : 0;
      return;
    }
    default:
      throw new WireError(`link type ${linkType} is not one tlsnic reads (Ethernet 1, raw IP 101/12/14, Linux SLL 113, SLL2 276, BSD loopback 0/108)`, {
        field: 'linktype',
      });
  }
}
