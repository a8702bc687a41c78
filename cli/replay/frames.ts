// Captured packets as the NIC sees them: Ethernet frames. Captures of other link types (raw IP, Linux
// SLL/SLL2) get a synthetic Ethernet header; the L3 bytes are unchanged.
import { WireError } from '../../emulator/errors.ts';
import { LINKTYPE_ETHERNET, linkL3 } from '../../emulator/wire/link.ts';

const SYNTH_MAC_A = [0x02, 0x74, 0x6c, 0x73, 0x00, 0x01];
const SYNTH_MAC_B = [0x02, 0x74, 0x6c, 0x73, 0x00, 0x02];

/** A copy of the packet as an Ethernet frame (the NIC writes RX plaintext into it), or null if not IP. */
export function toEthernet(linkType: number, data: Uint8Array): Uint8Array | null {
  if (linkType === LINKTYPE_ETHERNET) return Uint8Array.from(data);
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
