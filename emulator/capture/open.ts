// Format sniffing: the first four bytes say classic pcap (either byte order, µs or ns) or pcapng.
import { CaptureError } from '../errors.ts';
import { PCAP_MAGIC_NS, PCAP_MAGIC_US, PcapReader } from './pcap.ts';
import { BT_SHB, PcapngReader } from './pcapng.ts';
import { DEFAULT_CHUNK, describeMagic, type CaptureReader } from './reader.ts';
import { ByteWindow } from './source.ts';
import type { CaptureOptions } from './types.ts';

function open(win: ByteWindow, name: string, opts: CaptureOptions): CaptureReader {
  try {
    if (!win.ensure(0, 4)) {
      throw new CaptureError(win.end === 0 ? 'empty file: not a capture' : `file of ${win.end} bytes is too short to be a capture`, { file: name, offset: 0 });
    }
    const dv = win.dv;
    const le = dv.getUint32(0, true);
    const be = dv.getUint32(0, false);
    if (le === BT_SHB) return new PcapngReader(win, name, opts);
    for (const m of [PCAP_MAGIC_US, PCAP_MAGIC_NS]) if (le === m || be === m) return new PcapReader(win, name, opts);
    throw new CaptureError(`not a pcap or pcapng file: first bytes are ${describeMagic(win.buf)}`, { file: name, offset: 0, field: 'magic' });
  } catch (e) {
    win.close();
    throw e;
  }
}

/**
 * Opens a capture file for streaming, synchronous reading (fs.readSync in chunks; memory independent of
 * file size). Packet `data` is a view into a reused buffer, valid until the iterator advances.
 */
export function openCapture(path: string, opts: CaptureOptions = {}): CaptureReader {
  const name = opts.name ?? path;
  let win: ByteWindow;
  try {
    win = ByteWindow.fromFile(path, opts.chunkSize ?? DEFAULT_CHUNK);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new CaptureError(`cannot open capture: ${err.code ?? err.message}`, { file: name });
  }
  return open(win, name, opts);
}

/** Reads a capture already in memory. Packet `data` views the caller's buffer (no copies). */
export function readCaptureBytes(buf: Uint8Array, opts: CaptureOptions = {}): CaptureReader {
  return open(ByteWindow.fromBytes(buf), opts.name ?? '<memory>', opts);
}
