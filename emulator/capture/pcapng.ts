// pcapng (draft-ietf-opsawg-pcapng): blocks of [type u32, total length u32, body, total length u32] in the
// byte order of their section's SHB. We read SHB, IDB, EPB, SPB, OPB (obsolete, read like EPB) and DSB;
// NRB, ISB, custom and unknown blocks are skipped by length, after the same length checks.
import { ByteWindow } from './source.ts';
import { CaptureReader, Truncated } from './reader.ts';
import type { CaptureInterface, CaptureOptions, CapturedPacket } from './types.ts';

export const BT_SHB = 0x0a0d0d0a;
export const BT_IDB = 0x00000001;
export const BT_OPB = 0x00000002;
export const BT_SPB = 0x00000003;
export const BT_NRB = 0x00000004;
export const BT_ISB = 0x00000005;
export const BT_EPB = 0x00000006;
export const BT_DSB = 0x0000000a;
export const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
/** Decryption Secrets Block secrets type for a TLS key log ('TLSK'). */
export const SECRETS_TLS_KEYLOG = 0x544c534b;

export const OPT_ENDOFOPT = 0;
export const OPT_COMMENT = 1;
export const IF_NAME = 2;
export const IF_TSRESOL = 9;
export const IF_TSOFFSET = 14;

const pad4 = (n: number): number => (n + 3) & ~3;
const utf8 = new TextDecoder('utf-8');

/** Per-interface timestamp scaling: ns = units * mul / div + offsetNs. */
type Iface = CaptureInterface & { mul: bigint; div: bigint; offsetNs: bigint };

/** if_tsresol → (mul, div) turning timestamp units into nanoseconds. */
export function tsresolScale(tsresol: number): { mul: bigint; div: bigint } {
  const v = BigInt(tsresol & 0x7f);
  if (tsresol & 0x80) return { mul: 1_000_000_000n, div: 1n << v };
  return v <= 9n ? { mul: 10n ** (9n - v), div: 1n } : { mul: 1n, div: 10n ** (v - 9n) };
}

export class PcapngReader extends CaptureReader {
  readonly format = 'pcapng' as const;
  /** Byte order of the current section. */
  littleEndian = true;
  /** Index of the current section (0 for the first SHB). */
  section = -1;
  private ifaces: Iface[] = [];

  constructor(win: ByteWindow, name: string, opts: CaptureOptions) {
    super(win, name, opts);
    // The first SHB decides whether this is pcapng at all: a truncated one is an error in any mode.
    try {
      this.readBlock(true);
    } catch (e) {
      if (e instanceof Truncated) throw this.error(`truncated pcapng Section Header Block: ${e.at.reason}`, e.at.offset);
      throw e;
    }
    this.prefetch();
  }

  protected readPacket(): CapturedPacket | null {
    for (;;) {
      if (!this.win.ensure(this.pos, 1)) return null;
      const p = this.readBlock(false);
      if (p !== null) return p;
    }
  }

  /** Reads one block at this.pos; returns a packet for EPB/SPB/OPB, null for the others. */
  private readBlock(first: boolean): CapturedPacket | null {
    const at = this.pos;
    let i = this.need(at, 8, 'block header');
    let dv = this.win.dv;
    const typeLe = dv.getUint32(i, true);
    if (typeLe === BT_SHB) {
      // The SHB type is a byte-order palindrome; its byte-order magic says how to read the length.
      i = this.need(at, 12, 'Section Header Block');
      dv = this.win.dv;
      if (dv.getUint32(i + 8, true) === BYTE_ORDER_MAGIC) this.littleEndian = true;
      else if (dv.getUint32(i + 8, false) === BYTE_ORDER_MAGIC) this.littleEndian = false;
      else throw this.error(`Section Header Block byte-order magic is 0x${dv.getUint32(i + 8, false).toString(16).padStart(8, '0')}, not 1a2b3c4d`, at + 8, 'byte_order_magic');
    } else if (first) {
      throw this.error(`pcapng file does not start with a Section Header Block`, at, 'block_type');
    }
    const le = this.littleEndian;
    const type = dv.getUint32(i, le);
    const len = dv.getUint32(i + 4, le);
    const tname = `block type 0x${type.toString(16)}`;
    if (len < 12) throw this.error(`${tname} has total length ${len}, below the 12-byte minimum`, at + 4, 'block_total_length');
    if (len % 4 !== 0) throw this.error(`${tname} has total length ${len}, not a multiple of 4`, at + 4, 'block_total_length');
    if (len > this.opts.maxRecord) throw this.error(`${tname} of ${len} bytes is over the ${this.opts.maxRecord}-byte block cap`, at + 4, 'block_total_length');
    i = this.need(at, len, `${tname} of ${len} bytes`);
    dv = this.win.dv;
    const trailer = dv.getUint32(i + len - 4, le);
    if (trailer !== len) throw this.error(`${tname}: trailing total length ${trailer} does not match the leading ${len}`, at + len - 4, 'block_total_length');
    this.pos = at + len;
    const body = i + 8;
    const bodyLen = len - 12;
    switch (type) {
      case BT_SHB:
        this.sectionHeader(at, body, bodyLen);
        return null;
      case BT_IDB:
        this.interfaceDescription(at, body, bodyLen);
        return null;
      case BT_EPB:
      case BT_OPB:
        return this.enhancedPacket(at, body, bodyLen, type === BT_OPB);
      case BT_SPB:
        return this.simplePacket(at, body, bodyLen);
      case BT_DSB:
        this.decryptionSecretsBlock(at, body, bodyLen);
        return null;
      default:
        // NRB, ISB, custom blocks (0xbad, 0x40000bad) and types we do not know: skipped by their length.
        return null;
    }
  }

  private short(at: number, what: string, bodyLen: number, min: number): void {
    if (bodyLen < min) throw this.error(`${what} body is ${bodyLen} bytes, needs at least ${min}`, at + 4, 'block_total_length');
  }

  private sectionHeader(at: number, body: number, bodyLen: number): void {
    this.short(at, 'Section Header Block', bodyLen, 16);
    const dv = this.win.dv;
    const major = dv.getUint16(body + 4, this.littleEndian);
    if (major !== 1) throw this.error(`pcapng major version ${major} is not 1`, at + 12, 'major_version');
    // A new section restarts interface numbering (pcapng §4.1); earlier interfaces stay in `interfaces`.
    this.section++;
    this.ifaces = [];
  }

  private interfaceDescription(at: number, body: number, bodyLen: number): void {
    this.short(at, 'Interface Description Block', bodyLen, 8);
    const dv = this.win.dv;
    const le = this.littleEndian;
    const iface: Iface = {
      section: this.section,
      id: this.ifaces.length,
      linkType: dv.getUint16(body, le),
      snaplen: dv.getUint32(body + 4, le),
      tsresol: 6,
      tsoffset: 0n,
      mul: 0n,
      div: 1n,
      offsetNs: 0n,
    };
    this.options(at, body + 8, body + bodyLen, (code, v, n) => {
      if (code === IF_TSRESOL && n >= 1) iface.tsresol = this.win.buf[v]!;
      else if (code === IF_TSOFFSET && n >= 8) iface.tsoffset = dv.getBigInt64(v, le);
      else if (code === IF_NAME) iface.name = utf8.decode(this.win.buf.subarray(v, v + n)).replace(/\0+$/, '');
    });
    const { mul, div } = tsresolScale(iface.tsresol);
    iface.mul = mul;
    iface.div = div;
    iface.offsetNs = iface.tsoffset * 1_000_000_000n;
    this.ifaces.push(iface);
    const { mul: _m, div: _d, offsetNs: _o, ...pub } = iface;
    this.interfaces.push(pub);
  }

  private iface(at: number, id: number): Iface {
    const f = this.ifaces[id];
    if (f === undefined) {
      throw this.error(`packet refers to interface ${id}, but section ${this.section} has ${this.ifaces.length} interface(s)`, at + 8, 'interface_id');
    }
    return f;
  }

  private enhancedPacket(at: number, body: number, bodyLen: number, obsolete: boolean): CapturedPacket {
    const what = obsolete ? 'Packet Block' : 'Enhanced Packet Block';
    this.short(at, what, bodyLen, 20);
    const dv = this.win.dv;
    const le = this.littleEndian;
    const id = obsolete ? dv.getUint16(body, le) : dv.getUint32(body, le);
    const f = this.iface(at, id);
    const units = (BigInt(dv.getUint32(body + 4, le)) << 32n) | BigInt(dv.getUint32(body + 8, le));
    const caplen = dv.getUint32(body + 12, le);
    const origLen = dv.getUint32(body + 16, le);
    if (20 + caplen > bodyLen) {
      throw this.error(`${what} captured length ${caplen} runs past the block (${bodyLen - 20} bytes of packet data)`, at + 20, 'captured_packet_length');
    }
    let comment: string | undefined;
    this.options(at, body + 20 + pad4(caplen), body + bodyLen, (code, v, n) => {
      if (code === OPT_COMMENT) {
        const c = utf8.decode(this.win.buf.subarray(v, v + n));
        comment = comment === undefined ? c : `${comment}\n${c}`;
      }
    });
    const data = this.win.buf.subarray(body + 20, body + 20 + caplen);
    const tsNs = (units * f.mul) / f.div + f.offsetNs;
    const p: CapturedPacket = { number: ++this.packets, tsNs, linkType: f.linkType, data, origLen, fileOffset: at, interfaceId: id };
    if (comment !== undefined) p.comment = comment;
    return p;
  }

  private simplePacket(at: number, body: number, bodyLen: number): CapturedPacket {
    this.short(at, 'Simple Packet Block', bodyLen, 4);
    const f = this.iface(at, 0); // an SPB always belongs to the section's first interface (pcapng §4.4)
    const origLen = this.win.dv.getUint32(body, this.littleEndian);
    // Captured length is implicit: the original length cut at the interface snaplen (0 = none).
    let caplen = f.snaplen > 0 ? Math.min(origLen, f.snaplen) : origLen;
    if (caplen > bodyLen - 4) {
      throw this.error(`Simple Packet Block original length ${origLen} runs past the block (${bodyLen - 4} bytes of packet data)`, at + 8, 'original_packet_length');
    }
    const data = this.win.buf.subarray(body + 4, body + 4 + caplen);
    // An SPB has no timestamp: 0n, documented on CapturedPacket.tsNs.
    return { number: ++this.packets, tsNs: 0n, linkType: f.linkType, data, origLen, fileOffset: at, interfaceId: 0 };
  }

  private decryptionSecretsBlock(at: number, body: number, bodyLen: number): void {
    this.short(at, 'Decryption Secrets Block', bodyLen, 8);
    const dv = this.win.dv;
    const type = dv.getUint32(body, this.littleEndian);
    const n = dv.getUint32(body + 4, this.littleEndian);
    if (8 + n > bodyLen) throw this.error(`Decryption Secrets Block secrets length ${n} runs past the block`, at + 12, 'secrets_length');
    if (type === SECRETS_TLS_KEYLOG) this.decryptionSecrets.push(utf8.decode(this.win.buf.subarray(body + 8, body + 8 + n)));
  }

  /** Walks an options list [code u16, length u16, value padded to 4]..., ending at opt_endofopt or `end`. */
  private options(at: number, start: number, end: number, each: (code: number, value: number, len: number) => void): void {
    const dv = this.win.dv;
    const le = this.littleEndian;
    let o = start;
    while (o + 4 <= end) {
      const code = dv.getUint16(o, le);
      const n = dv.getUint16(o + 2, le);
      if (code === OPT_ENDOFOPT) return;
      if (o + 4 + n > end) {
        throw this.error(`option ${code} of ${n} bytes in the block at offset ${at} runs past the block's end`, this.win.start + o, 'options');
      }
      each(code, o + 4, n);
      o += 4 + pad4(n);
    }
  }
}
