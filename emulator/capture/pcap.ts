// Classic libpcap files (pcap-savefile(5); draft-ietf-opsawg-pcap): a 24-byte global header, then
// 16-byte record headers. Magic a1b2c3d4 = µs timestamps, a1b23c4d = ns, in either byte order.
import { ByteWindow } from './source.ts';
import { CaptureReader } from './reader.ts';
import type { CaptureOptions, CapturedPacket } from './types.ts';

export const PCAP_MAGIC_US = 0xa1b2c3d4;
export const PCAP_MAGIC_NS = 0xa1b23c4d;
export const PCAP_GLOBAL_HEADER = 24;
export const PCAP_RECORD_HEADER = 16;
/** libpcap's MAXIMUM_SNAPLEN: records above max(snaplen, this) are corrupt, as pcap_next_packet() says. */
export const PCAP_MAX_SNAPLEN = 262144;

export class PcapReader extends CaptureReader {
  readonly format = 'pcap' as const;
  readonly littleEndian: boolean;
  readonly nanosecond: boolean;
  private lastSec = -1;
  private lastSecNs = 0n;
  readonly snaplen: number;
  readonly linkType: number;
  readonly version: string;

  constructor(win: ByteWindow, name: string, opts: CaptureOptions) {
    super(win, name, opts);
    // The caller checked 4 bytes of magic; the rest of the header must be there even in 'stop' mode.
    if (!win.ensure(0, PCAP_GLOBAL_HEADER)) {
      throw this.error(`truncated pcap global header: ${win.end} of ${PCAP_GLOBAL_HEADER} bytes`, 0);
    }
    const dv = win.dv;
    const le = dv.getUint32(0, true) === PCAP_MAGIC_US || dv.getUint32(0, true) === PCAP_MAGIC_NS;
    const magic = dv.getUint32(0, le);
    this.littleEndian = le;
    this.nanosecond = magic === PCAP_MAGIC_NS;
    this.version = `${dv.getUint16(4, le)}.${dv.getUint16(6, le)}`;
    // libpcap reads only major version 2 (pcap_check_header()); 2.4 is what everyone writes.
    if (dv.getUint16(4, le) !== 2) throw this.error(`pcap version ${this.version} is not 2.x`, 4, 'version_major');
    this.snaplen = dv.getUint32(16, le);
    // The upper bits of the LinkType field carry FCS length flags (pcap draft §4); the type is the low 16.
    this.linkType = dv.getUint32(20, le) & 0xffff;
    this.interfaces.push({ section: 0, id: 0, linkType: this.linkType, snaplen: this.snaplen, tsresol: this.nanosecond ? 9 : 6, tsoffset: 0n });
    this.pos = PCAP_GLOBAL_HEADER;
  }

  protected readPacket(): CapturedPacket | null {
    const at = this.pos;
    if (!this.win.ensure(at, 1)) return null; // clean end of file
    let i = this.need(at, PCAP_RECORD_HEADER, 'record header');
    const le = this.littleEndian;
    let dv = this.win.dv;
    const sec = dv.getUint32(i, le);
    const frac = dv.getUint32(i + 4, le);
    const caplen = dv.getUint32(i + 8, le);
    const origLen = dv.getUint32(i + 12, le);
    const limit = Math.max(this.snaplen, PCAP_MAX_SNAPLEN);
    if (caplen > limit) {
      throw this.error(`record claims ${caplen} captured bytes, more than the snaplen ${this.snaplen} allows (limit ${limit}): corrupt record header`, at, 'incl_len');
    }
    if (caplen > this.opts.maxRecord) {
      throw this.error(`record of ${caplen} bytes is over the ${this.opts.maxRecord}-byte record cap`, at, 'incl_len');
    }
    // ts_usec/ts_nsec >= 1e9 happens in files from buggy writers; libpcap and Wireshark carry it over, so do we.
    i = this.need(at, PCAP_RECORD_HEADER + caplen, `record of ${caplen} captured bytes`);
    dv = this.win.dv;
    this.pos = at + PCAP_RECORD_HEADER + caplen;
    // Packets of one second share its BigInt (a capture holds thousands a second): one BigInt per packet, not three.
    if (sec !== this.lastSec) {
      this.lastSec = sec;
      this.lastSecNs = BigInt(sec) * 1_000_000_000n;
    }
    const tsNs = this.lastSecNs + BigInt(this.nanosecond ? frac : frac * 1000);
    const data = this.win.buf.subarray(i + PCAP_RECORD_HEADER, i + PCAP_RECORD_HEADER + caplen);
    return { number: ++this.packets, tsNs, linkType: this.linkType, data, origLen, fileOffset: at, interfaceId: 0 };
  }
}
