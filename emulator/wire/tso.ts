// TCP segmentation offload as a NIC does it: headers copied to each segment, payload cut at the MSS, seq
// advanced, IPv4 ID incremented, lengths and checksums fixed; FIN and PSH only on the last segment, CWR
// only on the first.
import { WireError } from '../errors.ts';
import { withPayload } from './builder.ts';
import { FLAG_CWR, FLAG_FIN, FLAG_PSH, TcpSegmentView } from './packet.ts';
import { internetChecksum } from './checksum.ts';
import { seqAdd } from './seq.ts';

export function tsoSegment(frame: Uint8Array, mss: number): Uint8Array[] {
  if (!Number.isInteger(mss) || mss < 1) throw new WireError(`TSO MSS ${mss} is not a positive integer`, { field: 'gso_size' });
  const v = new TcpSegmentView();
  if (v.parse(frame) !== 'tcp') throw new WireError('TSO frame is not a TCP segment', { field: 'gso' });
  if (v.payloadLength <= mss) return [frame];
  const payload = v.payload();
  const seq0 = v.seq;
  const flags = v.flags;
  const ipId = v.ipVersion === 4 ? (frame[v.l3Offset + 4]! << 8) | frame[v.l3Offset + 5]! : 0;
  const out: Uint8Array[] = [];
  const n = Math.ceil(payload.length / mss);
  for (let i = 0; i < n; i++) {
    const seg = withPayload(frame, v, seqAdd(seq0, i * mss), payload.subarray(i * mss, Math.min(payload.length, (i + 1) * mss)));
    const t = v.l4Offset;
    let f = flags;
    if (i < n - 1) f &= ~(FLAG_FIN | FLAG_PSH);
    if (i > 0) f &= ~FLAG_CWR;
    seg[t + 13] = f;
    if (v.ipVersion === 4) {
      const id = (ipId + i) & 0xffff;
      const ip = v.l3Offset;
      seg[ip + 4] = id >>> 8;
      seg[ip + 5] = id & 0xff;
      seg[ip + 10] = 0;
      seg[ip + 11] = 0;
      const c = internetChecksum(seg, ip, (seg[ip]! & 0x0f) * 4);
      seg[ip + 10] = c >>> 8;
      seg[ip + 11] = c & 0xff;
    }
    const w = new TcpSegmentView();
    w.parse(seg);
    w.updateTcpChecksum();
    out.push(seg);
  }
  return out;
}
