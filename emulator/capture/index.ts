// Capture I/O: streaming pcap/pcapng readers and writers. See types.ts for what a packet holds and how
// long its bytes stay valid.
export { openCapture, readCaptureBytes } from './open.ts';
export { CaptureReader } from './reader.ts';
export { PcapReader } from './pcap.ts';
export { PcapngReader, SECRETS_TLS_KEYLOG } from './pcapng.ts';
export { PcapWriter, PcapngWriter, type PcapWriterOptions, type PcapngWriterOptions, type WritePacket } from './writer.ts';
export {
  LINKTYPE_ETHERNET,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_LINUX_SLL2,
  LINKTYPE_LOOP,
  LINKTYPE_NULL,
  LINKTYPE_RAW,
  LINKTYPE_RAW_BSD,
  type CaptureFormat,
  type CaptureInterface,
  type CaptureOptions,
  type CapturedPacket,
  type TruncatedAt,
} from './types.ts';
