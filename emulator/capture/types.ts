// What a capture reader hands out, and the link types tlsnic carries. Decoding the link header is
// emulator/wire's job; the reader only passes the link type through.

/** LINKTYPE_* values (tcpdump.org/linktypes.html) the replay must carry. */
export const LINKTYPE_ETHERNET = 1;
/** DLT_RAW as some BSDs number it in pcap files; Wireshark reads it as raw IP too. */
export const LINKTYPE_RAW_BSD = 12;
/** OpenBSD's DLT_RAW value, seen in some captures. */
export const LINKTYPE_RAW_OPENBSD = 14;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_LINUX_SLL2 = 276;
/** BSD loopback: a 4-byte address family in the capturing host's byte order (macOS `lo0`, FreeBSD). */
export const LINKTYPE_NULL = 0;
/** OpenBSD loopback: the same 4-byte address family, in network byte order. */
export const LINKTYPE_LOOP = 108;

export type CapturedPacket = {
  /** 1-based, counting every packet record in the file, like Wireshark's frame.number. */
  number: number;
  /** Capture time in nanoseconds since the Unix epoch (pcapng: after if_tsoffset). 0n for SPB (no timestamp). */
  tsNs: bigint;
  linkType: number;
  /**
   * Captured bytes. For a file reader this is a VIEW into the reader's reused chunk buffer: valid until the
   * iterator advances. Copy (`data.slice()`) what you keep, or open with `{ copy: true }`. For
   * readCaptureBytes it is a view into the caller's buffer and stays valid as long as that buffer does.
   */
  data: Uint8Array;
  /** Length on the wire (may exceed data.length when the capture was cut at snaplen). */
  origLen: number;
  /** Byte offset in the file of this packet's record (pcap record header / pcapng block start). */
  fileOffset: number;
  /** pcapng: interface id within its section; classic pcap: 0. */
  interfaceId: number;
  /** pcapng EPB opt_comment (several comments joined by '\n'). */
  comment?: string;
};

export type CaptureFormat = 'pcap' | 'pcapng';

/** One pcapng Interface Description Block (or the implicit interface of a classic pcap file). */
export type CaptureInterface = {
  /** Index of the pcapng section (0 for the first SHB). */
  section: number;
  /** Interface id within its section (what EPBs refer to). */
  id: number;
  linkType: number;
  /** 0 means unlimited (pcapng) */
  snaplen: number;
  /** if_tsresol as written: MSB clear = 10^-n s, MSB set = 2^-n s. Default 6 (µs). */
  tsresol: number;
  /** if_tsoffset, seconds added to every timestamp. */
  tsoffset: bigint;
  name?: string;
};

export type TruncatedAt = { offset: number; reason: string };

export type CaptureOptions = {
  /** 'throw' (default): a truncated tail is a CaptureError. 'stop': iteration ends and reader.truncatedAt is set. */
  truncated?: 'throw' | 'stop';
  /** Copy each packet's data out of the reused chunk buffer (file readers only). Default false. */
  copy?: boolean;
  /** Read size for file readers; default 1 MiB. */
  chunkSize?: number;
  /** Largest single record/block accepted; the read buffer grows up to this. Default 64 MiB. */
  maxRecord?: number;
  /** Name used in error places (defaults to the path, or '<memory>'). */
  name?: string;
};
