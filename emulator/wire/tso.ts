// TCP segmentation offload as a NIC does it (the kernel's tcp_gso_segment() rules, done in silicon): headers
// copied to each segment, payload cut at the MSS, seq advanced, IPv4 ID incremented per segment, lengths and
// checksums fixed; FIN and PSH only on the last segment, CWR only on the first.
import { WireError } from '../errors.ts';
import { fillTcpChecksum } from './checksum.ts';
import { LINKTYPE_ETHERNET } from './link.ts';
import { FLAG_CWR, FLAG_FIN, FLAG_PSH, TcpSegmentView } from './packet.ts';
import { seqAdd } from './seq.ts';
import { writeU32 } from './tcp.ts';

/**
 * Cut a TSO super-segment into MSS segments. `tcpChecksum` false leaves each segment's TCP checksum to the
 * caller: a device that encrypts the payload next computes it over the ciphertext anyway.
 */
export function tsoSegment(frame: Uint8Array, mss: number, linkType: number = LINKTYPE_ETHERNET, tcpChecksum = true): Uint8Array[] {
  if (!Number.isInteger(mss) || mss < 1) throw new WireError(`TSO MSS ${mss} is not a positive integer`, { field: 'gso_size' });
  const v = new TcpSegmentView();
  const kind = v.parse(frame, linkType);
  if (kind !== 'tcp') throw new WireError(`TSO frame is not a TCP segment (${kind})`, { field: 'gso' });
  if (v.payloadLength <= mss) return [frame];
  const hdr = v.payloadOffset;
  const ip = v.l3Offset;
  const t = v.l4Offset;
  const seq0 = v.seq;
  const flags = v.flags;
  const ipId = v.ipVersion === 4 ? v.ipv4.ident : 0;
  const total = v.payloadLength;
  const n = Math.ceil(total / mss);
  const out: Uint8Array[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const start = i * mss;
    const len = Math.min(mss, total - start);
    const seg = new Uint8Array(hdr + len);
    seg.set(frame.subarray(0, hdr), 0);
    seg.set(frame.subarray(hdr + start, hdr + start + len), hdr);
    let f = flags;
    if (i < n - 1) f &= ~(FLAG_FIN | FLAG_PSH);
    if (i > 0) f &= ~FLAG_CWR;
    seg[t + 13] = f;
    writeU32(seg, t + 4, seqAdd(seq0, start));
    if (v.ipVersion === 4) {
      const ipLen = hdr - ip + len;
      const id = (ipId + i) & 0xffff;
      seg[ip + 2] = ipLen >>> 8;
      seg[ip + 3] = ipLen & 0xff;
      seg[ip + 4] = id >>> 8;
      seg[ip + 5] = id & 0xff;
      v.ipv4.attach(seg, ip).fillChecksum();
    } else {
      const plen = hdr - ip - 40 + len;
      seg[ip + 4] = plen >>> 8;
      seg[ip + 5] = plen & 0xff;
    }
    if (tcpChecksum) fillTcpChecksum(seg, v.srcAddrOffset, v.dstAddrOffset, v.addrLength, t, seg.length);
    out[i] = seg;
  }
  return out;
}
