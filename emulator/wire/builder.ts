// Frames for tests and the host model: Ethernet (+VLAN) / IPv4 or IPv6 (+extension headers) / TCP with
// correct checksums.
import { WireError } from '../errors.ts';
import { parseIp } from './addr.ts';
import { fillTcpChecksum } from './checksum.ts';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN } from './ethernet.ts';
import { Ipv4Packet } from './ipv4.ts';
import { IPV6_EXT_AH, IPV6_EXT_DSTOPTS, IPV6_EXT_FRAGMENT, IPV6_EXT_HOPOPTS, IPV6_EXT_ROUTING } from './ipv6.ts';
import type { TcpSegmentView } from './packet.ts';
import { writeU32 } from './tcp.ts';

export { FLAG_ACK, FLAG_CWR, FLAG_ECE, FLAG_FIN, FLAG_PSH, FLAG_RST, FLAG_SYN, FLAG_URG } from './packet.ts';

export type Ipv6ExtType = typeof IPV6_EXT_HOPOPTS | typeof IPV6_EXT_ROUTING | typeof IPV6_EXT_FRAGMENT | typeof IPV6_EXT_DSTOPTS | typeof IPV6_EXT_AH;

/** An IPv6 extension header for the builder: its type and total length in bytes (a multiple of 8; fragment is always 8). */
export type Ipv6Ext = { type: Ipv6ExtType; length?: number };

export type TcpFrameOptions = {
  family: 4 | 6;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window?: number;
  payload?: Uint8Array;
  /** TCP options, zero (EOL) padded here to a multiple of 4. */
  options?: Uint8Array;
  /** VLAN IDs, outermost first; with more than one tag the outer is an 802.1ad S-tag (0x88a8). */
  vlan?: number[];
  /** IPv6 extension headers between the fixed header and TCP, in order (an atomic fragment for type 44). */
  ipv6Ext?: Ipv6Ext[];
  ipId?: number;
  ttl?: number;
  hopLimit?: number;
  srcMac?: Uint8Array;
  dstMac?: Uint8Array;
  /** Leave a wrong TCP checksum (for impairments and tests). */
  badChecksum?: boolean;
};

const DEFAULT_SRC_MAC = Uint8Array.of(0x02, 0, 0, 0, 0, 0x01);
const DEFAULT_DST_MAC = Uint8Array.of(0x02, 0, 0, 0, 0, 0x02);

function extLength(e: Ipv6Ext): number {
  const len = e.type === IPV6_EXT_FRAGMENT ? 8 : (e.length ?? 8);
  if (len < 8 || len % 8 !== 0 || len > (e.type === IPV6_EXT_AH ? 1024 : 2048)) {
    throw new WireError(`IPv6 extension header ${e.type} length ${len} is not a multiple of 8 in range`, { field: 'ipv6.ext' });
  }
  return len;
}

export function buildTcpFrame(o: TcpFrameOptions): Uint8Array {
  const payload = o.payload ?? new Uint8Array(0);
  const opts = o.options ?? new Uint8Array(0);
  const optLen = (opts.length + 3) & ~3;
  if (optLen > 40) throw new WireError(`TCP options of ${opts.length} bytes exceed 40`, { field: 'tcp.options' });
  const vlans = o.vlan ?? [];
  for (const id of vlans) if (!Number.isInteger(id) || id < 0 || id > 4095) throw new WireError(`VLAN ID ${id} is not in 0..4095`, { field: 'eth.vlan' });
  const src = parseIp(o.srcIp);
  const dst = parseIp(o.dstIp);
  const alen = o.family === 4 ? 4 : 16;
  if (src.length !== alen || dst.length !== alen) {
    throw new WireError(`addresses ${o.srcIp} -> ${o.dstIp} are not IPv${o.family}`, { field: 'address' });
  }
  const exts = o.family === 6 ? (o.ipv6Ext ?? []) : [];
  let extTotal = 0;
  for (const e of exts) extTotal += extLength(e);
  const l2 = 14 + 4 * vlans.length;
  const l3 = o.family === 4 ? 20 : 40 + extTotal;
  const tcpLen = 20 + optLen;
  const ipLen = l3 + tcpLen + payload.length;
  if (o.family === 4 ? ipLen > 0xffff : ipLen - 40 > 0xffff) throw new WireError(`IP packet of ${ipLen} bytes is over the 16-bit length`, { field: 'ip.len' });
  const out = new Uint8Array(l2 + ipLen);
  out.set(o.dstMac ?? DEFAULT_DST_MAC, 0);
  out.set(o.srcMac ?? DEFAULT_SRC_MAC, 6);
  let off = 12;
  for (let i = 0; i < vlans.length; i++) {
    const tpid = i === 0 && vlans.length > 1 ? ETHERTYPE_QINQ : ETHERTYPE_VLAN;
    out[off] = tpid >>> 8;
    out[off + 1] = tpid & 0xff;
    out[off + 2] = (vlans[i]! >>> 8) & 0x0f;
    out[off + 3] = vlans[i]! & 0xff;
    off += 4;
  }
  const ethertype = o.family === 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6;
  out[off] = ethertype >>> 8;
  out[off + 1] = ethertype & 0xff;
  const ip = l2;
  if (o.family === 4) {
    out[ip] = 0x45;
    out[ip + 2] = ipLen >>> 8;
    out[ip + 3] = ipLen & 0xff;
    out[ip + 4] = ((o.ipId ?? 0) >>> 8) & 0xff;
    out[ip + 5] = (o.ipId ?? 0) & 0xff;
    out[ip + 6] = 0x40; // DF, as Linux sends TCP with PMTU discovery on
    out[ip + 8] = o.ttl ?? 64;
    out[ip + 9] = 6;
    out.set(src, ip + 12);
    out.set(dst, ip + 16);
    new Ipv4Packet().attach(out, ip).fillChecksum();
  } else {
    out[ip] = 0x60;
    const plen = ipLen - 40;
    out[ip + 4] = plen >>> 8;
    out[ip + 5] = plen & 0xff;
    out[ip + 6] = exts.length > 0 ? exts[0]!.type : 6;
    out[ip + 7] = o.hopLimit ?? o.ttl ?? 64;
    out.set(src, ip + 8);
    out.set(dst, ip + 24);
    let e = ip + 40;
    for (let i = 0; i < exts.length; i++) {
      const x = exts[i]!;
      const len = extLength(x);
      out[e] = i + 1 < exts.length ? exts[i + 1]!.type : 6;
      if (x.type === IPV6_EXT_AH) out[e + 1] = len / 4 - 2;
      else if (x.type !== IPV6_EXT_FRAGMENT) {
        out[e + 1] = len / 8 - 1;
        // Body: one PadN option covering the rest (RFC 8200 4.2), so the options area stays well formed.
        if (x.type !== IPV6_EXT_ROUTING) {
          out[e + 2] = 1;
          out[e + 3] = len - 4;
        }
      } else writeU32(out, e + 4, 0x1234abcd + i); // fragment identification; offset 0 and M clear: atomic
      e += len;
    }
  }
  const t = ip + l3;
  out[t] = o.srcPort >>> 8;
  out[t + 1] = o.srcPort & 0xff;
  out[t + 2] = o.dstPort >>> 8;
  out[t + 3] = o.dstPort & 0xff;
  writeU32(out, t + 4, o.seq >>> 0);
  writeU32(out, t + 8, o.ack >>> 0);
  out[t + 12] = (tcpLen / 4) << 4;
  out[t + 13] = o.flags & 0xff;
  const win = o.window ?? 65535;
  out[t + 14] = win >>> 8;
  out[t + 15] = win & 0xff;
  out.set(opts, t + 20);
  out.set(payload, t + tcpLen);
  const srcOff = o.family === 4 ? ip + 12 : ip + 8;
  fillTcpChecksum(out, srcOff, srcOff + alen, alen, t, out.length);
  if (o.badChecksum) out[t + 16] = out[t + 16]! ^ 0xff;
  return out;
}

/**
 * A copy of `frame` (parsed into `v`, any link type) with `payload` in place of its payload and TCP seq
 * `seq`: IP lengths, the IPv4 header checksum and the TCP checksum fixed. Link padding is dropped. TSO and
 * the replay use it.
 */
export function withPayload(frame: Uint8Array, v: TcpSegmentView, seq: number, payload: Uint8Array): Uint8Array {
  const hdr = v.payloadOffset;
  const out = new Uint8Array(hdr + payload.length);
  out.set(frame.subarray(0, hdr), 0);
  out.set(payload, hdr);
  const ip = v.l3Offset;
  if (v.ipVersion === 4) {
    const total = hdr - ip + payload.length;
    out[ip + 2] = total >>> 8;
    out[ip + 3] = total & 0xff;
    new Ipv4Packet().attach(out, ip).fillChecksum();
  } else {
    const plen = hdr - ip - 40 + payload.length;
    out[ip + 4] = plen >>> 8;
    out[ip + 5] = plen & 0xff;
  }
  writeU32(out, v.l4Offset + 4, seq >>> 0);
  // Same header layout as `frame`, so v's offsets hold in `out`; no re-parse (which would assume Ethernet).
  fillTcpChecksum(out, v.srcAddrOffset, v.dstAddrOffset, v.addrLength, v.l4Offset, out.length);
  return out;
}
