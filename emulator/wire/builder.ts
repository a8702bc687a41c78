// Frames for tests and the host model: Ethernet (+VLAN) / IPv4 or IPv6 / TCP with correct checksums.
import { parseIp } from './addr.ts';
import { internetChecksum } from './checksum.ts';
import { TcpSegmentView, writeU32 } from './packet.ts';

export { FLAG_ACK, FLAG_CWR, FLAG_ECE, FLAG_FIN, FLAG_PSH, FLAG_RST, FLAG_SYN, FLAG_URG } from './packet.ts';

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
  /** TCP options, padded to a multiple of 4 with NOPs/zeros by the caller or here. */
  options?: Uint8Array;
  /** VLAN IDs, outermost first. */
  vlan?: number[];
  ipId?: number;
  ttl?: number;
  srcMac?: Uint8Array;
  dstMac?: Uint8Array;
  /** Leave a wrong TCP checksum (for impairments and tests). */
  badChecksum?: boolean;
};

const DEFAULT_SRC_MAC = Uint8Array.of(0x02, 0, 0, 0, 0, 0x01);
const DEFAULT_DST_MAC = Uint8Array.of(0x02, 0, 0, 0, 0, 0x02);

export function buildTcpFrame(o: TcpFrameOptions): Uint8Array {
  const payload = o.payload ?? new Uint8Array(0);
  const opts = o.options ?? new Uint8Array(0);
  const optLen = (opts.length + 3) & ~3;
  const vlans = o.vlan ?? [];
  const l2 = 14 + 4 * vlans.length;
  const l3 = o.family === 4 ? 20 : 40;
  const tcpLen = 20 + optLen;
  const out = new Uint8Array(l2 + l3 + tcpLen + payload.length);
  out.set(o.dstMac ?? DEFAULT_DST_MAC, 0);
  out.set(o.srcMac ?? DEFAULT_SRC_MAC, 6);
  let off = 12;
  for (let i = 0; i < vlans.length; i++) {
    out[off] = i === 0 && vlans.length > 1 ? 0x88 : 0x81;
    out[off + 1] = i === 0 && vlans.length > 1 ? 0xa8 : 0x00;
    out[off + 2] = (vlans[i]! >>> 8) & 0x0f;
    out[off + 3] = vlans[i]! & 0xff;
    off += 4;
  }
  out[off] = o.family === 4 ? 0x08 : 0x86;
  out[off + 1] = o.family === 4 ? 0x00 : 0xdd;
  const ip = l2;
  const src = parseIp(o.srcIp);
  const dst = parseIp(o.dstIp);
  if (o.family === 4) {
    out[ip] = 0x45;
    const total = l3 + tcpLen + payload.length;
    out[ip + 2] = total >>> 8;
    out[ip + 3] = total & 0xff;
    out[ip + 4] = ((o.ipId ?? 0) >>> 8) & 0xff;
    out[ip + 5] = (o.ipId ?? 0) & 0xff;
    out[ip + 6] = 0x40; // DF
    out[ip + 8] = o.ttl ?? 64;
    out[ip + 9] = 6;
    out.set(src, ip + 12);
    out.set(dst, ip + 16);
    const c = internetChecksum(out, ip, 20);
    out[ip + 10] = c >>> 8;
    out[ip + 11] = c & 0xff;
  } else {
    out[ip] = 0x60;
    const plen = tcpLen + payload.length;
    out[ip + 4] = plen >>> 8;
    out[ip + 5] = plen & 0xff;
    out[ip + 6] = 6;
    out[ip + 7] = o.ttl ?? 64;
    out.set(src, ip + 8);
    out.set(dst, ip + 24);
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
  const v = new TcpSegmentView();
  v.parse(out);
  v.updateTcpChecksum();
  if (o.badChecksum) out[t + 16] = out[t + 16]! ^ 0xff;
  return out;
}

/**
 * A copy of `frame` (parsed into `v`) with `payload` in place of its payload and TCP seq `seq`: IP lengths,
 * the IPv4 header checksum and the TCP checksum fixed. TSO and the replay use it.
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
    out[ip + 10] = 0;
    out[ip + 11] = 0;
    const ihl = (out[ip]! & 0x0f) * 4;
    const c = internetChecksum(out, ip, ihl);
    out[ip + 10] = c >>> 8;
    out[ip + 11] = c & 0xff;
  } else {
    const plen = hdr - ip - 40 + payload.length;
    out[ip + 4] = plen >>> 8;
    out[ip + 5] = plen & 0xff;
  }
  writeU32(out, v.l4Offset + 4, seq >>> 0);
  const w = new TcpSegmentView();
  w.parse(out);
  w.updateTcpChecksum();
  return out;
}
