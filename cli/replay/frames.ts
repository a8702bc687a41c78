// Captured packets as the NIC sees them: Ethernet frames. Captures of other link types (raw IP, Linux
// SLL/SLL2) get a synthetic Ethernet header; the L3 bytes are unchanged.
import { WireError } from '../../emulator/errors.ts';
import { fillTcpChecksum, fold, internetChecksum, pseudoHeaderSum } from '../../emulator/wire/checksum.ts';
import { LINKTYPE_ETHERNET, linkL3 } from '../../emulator/wire/link.ts';
import type { TcpSegmentView } from '../../emulator/wire/packet.ts';

const SYNTH_MAC_A = [0x02, 0x74, 0x6c, 0x73, 0x00, 0x01];
const SYNTH_MAC_B = [0x02, 0x74, 0x6c, 0x73, 0x00, 0x02];

/**
 * The packet as an Ethernet frame: `data` itself when it is one (no copy: the caller owns the bytes and
 * lets the NIC write into them), else a new frame with a synthetic Ethernet header; null if not IP.
 */
export function ethernetFrame(linkType: number, data: Uint8Array): Uint8Array | null {
  if (linkType === LINKTYPE_ETHERNET) return data;
  const l3 = { offset: 0, ethertype: 0 };
  try {
    linkL3(linkType, data, l3);
  } catch (e) {
    if (e instanceof WireError) return null;
    throw e;
  }
  if (l3.ethertype !== 0x0800 && l3.ethertype !== 0x86dd) return null;
  const out = new Uint8Array(14 + data.length - l3.offset);
  out.set(SYNTH_MAC_A, 0);
  out.set(SYNTH_MAC_B, 6);
  out[12] = l3.ethertype >>> 8;
  out[13] = l3.ethertype & 0xff;
  out.set(data.subarray(l3.offset), 14);
  return out;
}

/**
 * Headers of a segment whose payload is already in place behind headers copied from a captured frame (its
 * layout parsed in `v`): IP length, IPv4 header checksum, TCP seq and checksum. What withPayload()
 * (emulator/wire/builder.ts) does, without building the frame again. With `csumPartial` the TCP checksum
 * field gets only the pseudo-header sum, as the kernel leaves a CHECKSUM_PARTIAL skb for a device with
 * checksum offload (__tcp_v4_send_check()): for segments of offloaded records, which the device (or the
 * software fallback) encrypts and checksums again, a sum over the plaintext would be computed for nothing.
 */
export function fixSegmentHeaders(out: Uint8Array, v: TcpSegmentView, seq: number, csumPartial = false): void {
  const ip = v.l3Offset;
  const payloadLength = out.length - v.payloadOffset;
  if (v.ipVersion === 4) {
    const total = v.payloadOffset - ip + payloadLength;
    out[ip + 2] = total >>> 8;
    out[ip + 3] = total & 0xff;
    out[ip + 10] = 0;
    out[ip + 11] = 0;
    const sum = internetChecksum(out, ip, (out[ip]! & 0x0f) * 4);
    out[ip + 10] = sum >>> 8;
    out[ip + 11] = sum & 0xff;
  } else {
    const plen = v.payloadOffset - ip - 40 + payloadLength;
    out[ip + 4] = plen >>> 8;
    out[ip + 5] = plen & 0xff;
  }
  const t = v.l4Offset + 4;
  out[t] = seq >>> 24;
  out[t + 1] = (seq >>> 16) & 0xff;
  out[t + 2] = (seq >>> 8) & 0xff;
  out[t + 3] = seq & 0xff;
  if (!csumPartial) {
    fillTcpChecksum(out, v.srcAddrOffset, v.dstAddrOffset, v.addrLength, v.l4Offset, out.length);
    return;
  }
  const sum = fold(pseudoHeaderSum(out, v.srcAddrOffset, v.dstAddrOffset, v.addrLength, out.length - v.l4Offset));
  out[v.l4Offset + 16] = sum >>> 8;
  out[v.l4Offset + 17] = sum & 0xff;
}
