// Device-side types shared by the NIC's modules. The device knows nothing of sockets or the stack: a
// connection is a 4-tuple, a context is a handle.
import type { CryptoInfo } from '../tls/crypto-info.ts';

/** A connection from the local host's view (same shape as driver-api FourTuple). */
export type FlowTuple = {
  family: 4 | 6;
  saddr: string;
  sport: number;
  daddr: string;
  dport: number;
};

/** How the device gets back in sync on RX (chosen by the driver from its resync type). */
export type RxResyncMode =
  /** Scan the stream for headers and ask for confirmation (DRIVER_REQ, DRIVER_REQ_ASYNC). */
  | 'scan'
  /** Wait for the stack to say where a record starts (CORE_NEXT_HINT). */
  | 'hint';

/** Device policy for stream-scan resync (SPEC section 6; tls-offload.rst "Stream scan resynchronization"). */
export type ScanPolicy = {
  /** Headers that must chain by length (the first match included) before asking for confirmation. */
  confirmHeaders: number;
  /** With a request outstanding, ask again about the latest header after this many more records. */
  rerequestEveryRecords: number;
  /** After this many unanswered requests, drop the chain and scan afresh (a false match cannot wedge). */
  restartScanAfterRequests: number;
  /** Start scanning only once the stream is more than one maximum record past where sync was lost. */
  skipOneMaxRecord: boolean;
};

export const DEFAULT_SCAN_POLICY: ScanPolicy = {
  confirmHeaders: 2,
  rerequestEveryRecords: 8,
  restartScanAfterRequests: 4,
  skipOneMaxRecord: true,
};

export type NicProfile = {
  name: string;
  /** Context table capacity (both directions); adding beyond it fails with -ENOSPC. */
  maxContexts: number;
  /** TCP segmentation offload. */
  tso: boolean;
  scan: ScanPolicy;
  /** TLS 1.3 inline crypto (the proposed kernel series); mainline devices have it off. */
  tls13: boolean;
};

export const DEFAULT_PROFILE: NicProfile = {
  name: 'tlsnic0',
  maxContexts: 65536,
  tso: true,
  scan: DEFAULT_SCAN_POLICY,
  tls13: false,
};

export type AddContextParams = {
  tuple: FlowTuple;
  info: CryptoInfo;
  /** TCP seq where the record numbered info.recSeq starts (start_offload_tcp_sn). */
  startSeq: number;
  rxResync?: RxResyncMode;
};

/** RX completion (the CQE a driver reads), one per received frame. */
export type RxCompletion = {
  frame: Uint8Array;
  /** The device decrypted and authenticated every record byte in this frame; it holds plaintext. */
  decrypted: boolean;
  /** RX context handle the frame matched, or -1. */
  ctx: number;
  /** Set when the device wants the driver to ask the stack for a resync (scan found a header chain). */
  resyncRequest: RxResyncRequest | null;
};

export type RxResyncRequest = {
  /** TCP seq where the guessed record starts. */
  recordSeq: number;
  /** TCP seq of the guessed header's last byte: what DRIVER_REQ passes to tls_offload_rx_resync_request. */
  headerEndSeq: number;
  /** The frame's TCP seq and payload length: what DRIVER_REQ_ASYNC passes to ..._async_request_start. */
  packetSeq: number;
  packetLen: number;
};

/** Result of a device RX resync command (what a driver reports as res_ok / res_skip). */
export type RxResyncResult = 'ok' | 'skip';

/** GET_PSV-style query of the device's RX tracking state (mlx5: resync_handle_seq_match / get_psv). */
export type RxTrackingState = {
  state: 'sync' | 'lost' | 'scan' | 'chain' | 'armed';
  /** Start of the header the device last asked about; -1 if none. */
  resyncTcpSn: number;
};

/** Events the device emits for timelines and tests; nothing depends on them. */
export type NicEvent =
  | { kind: 'rx'; ctx: number; seq: number; len: number; decrypted: boolean; note?: string }
  | { kind: 'rx-lost'; ctx: number; seq: number; reason: string }
  | { kind: 'rx-resync-request'; ctx: number; recordSeq: number }
  | { kind: 'rx-resync'; ctx: number; seq: number; recSeq: bigint; result: RxResyncResult }
  | { kind: 'tx'; ctx: number; seq: number; len: number; encrypted: boolean }
  | { kind: 'tx-drop'; ctx: number; seq: number; len: number; reason: string }
  | { kind: 'tx-dump'; ctx: number; seq: number; len: number }
  | { kind: 'tx-resync'; ctx: number; seq: number; recSeq: bigint }
  | { kind: 'ctx-add'; ctx: number; dir: 'rx' | 'tx'; tuple: FlowTuple; startSeq: number }
  | { kind: 'ctx-del'; ctx: number; dir: 'rx' | 'tx' }
  | { kind: 'violation'; ctx: number; message: string };
