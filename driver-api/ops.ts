// The contract between the kernel's tls_device and a NIC driver, mirrored from include/net/tls.h and
// include/linux/netdevice.h so a driver prototyped against it ports to C line by line.
// Names follow the kernel: tls_dev_add -> tlsDevAdd, start_offload_tcp_sn -> startOffloadTcpSn.
import type { CryptoInfo } from '../emulator/tls/crypto-info.ts';

export * from '../emulator/tls/crypto-info.ts';

// errno values drivers return negated.
export * from '../emulator/errno.ts';

/** enum tls_offload_ctx_dir */
export type TlsOffloadCtxDir = 'rx' | 'tx';

/** enum tls_offload_sync_type */
export type TlsOffloadSyncType = 'driver_req' | 'core_next_hint' | 'driver_req_async';

/** TLS_BASE / TLS_SW / TLS_HW, per direction, as tls_context.tx_conf / rx_conf. */
export type TlsConf = 'base' | 'sw' | 'hw';

/** A TCP connection as the local socket sees it: s = local, d = remote. IPv6 addresses in RFC 5952 text. */
export type FourTuple = {
  family: 4 | 6;
  saddr: string;
  sport: number;
  daddr: string;
  dport: number;
};

/** struct sock, reduced to what drivers and the device look at. */
export interface Sock {
  readonly id: number;
  readonly tuple: FourTuple;
  /** tls_get_ctx(sk) */
  readonly tlsCtx: TlsContext;
}

/** struct tls_context, reduced. */
export interface TlsContext {
  readonly sk: Sock;
  txConf: TlsConf;
  rxConf: TlsConf;
  /** The device the offload was added on; null once tls_device_down() detached it. */
  netdev: NetDevice | null;
  /** tls_driver_ctx(sk, dir): per-direction area owned by the driver (TLS_DRIVER_STATE_SIZE_{TX,RX}). */
  driverState: { tx: unknown; rx: unknown };
}

/** struct sk_buff, reduced. `data` is an Ethernet frame. */
export interface SkBuff {
  data: Uint8Array;
  /** TX: the owning socket; drivers find the TLS context through it (skb->sk). */
  sk: Sock | null;
  /**
   * RX: the device decrypted and authenticated the TLS payload (skb->decrypted).
   * TX: the payload is plaintext TLS records the device must encrypt (tls_is_skb_tx_device_offloaded()).
   */
  decrypted: boolean;
  /** TX segmentation offload: MSS to cut the payload into, 0 for none (skb_shinfo(skb)->gso_size). */
  gsoSize: number;
}

/** netdev features that matter to TLS offload (NETIF_F_HW_TLS_TX, NETIF_F_HW_TLS_RX, NETIF_F_HW_CSUM...). */
export type NetDevFeatures = {
  tlsHwTxOffload: boolean;
  tlsHwRxOffload: boolean;
  /** TX checksum offload: TLS TX offload depends on it (netdev_fix_features drops TLS TX without it). */
  txChecksumOffload: boolean;
  rxChecksumOffload: boolean;
};

/** struct tlsdev_ops */
export interface TlsDevOps {
  /** 0 on success or a negative errno; any failure makes the stack use software for that direction. */
  tlsDevAdd(
    netdev: NetDevice,
    sk: Sock,
    direction: TlsOffloadCtxDir,
    cryptoInfo: CryptoInfo,
    startOffloadTcpSn: number,
  ): number;
  /** Called exactly once per successfully added direction. */
  tlsDevDel(netdev: NetDevice, tlsCtx: TlsContext, direction: TlsOffloadCtxDir): void;
  /**
   * "The record at TCP `seq` has record number `rcdSn`" (8 bytes, big-endian). 0 or -errno. `seq` is the
   * record's start, except for an RX answer to DRIVER_REQ (tlsOffloadRxResyncRequest): there it is the seq the
   * driver asked about, the header's last byte (record start + 4), as tls_device_rx_resync_new_rec() passes it.
   */
  tlsDevResync(netdev: NetDevice, sk: Sock, seq: number, rcdSn: Uint8Array, direction: TlsOffloadCtxDir): number;
}

/** struct net_device, reduced. A driver's probe() returns one. */
export interface NetDevice {
  readonly name: string;
  features: NetDevFeatures;
  readonly tlsdevOps: TlsDevOps | null;
  /** netif_running() && carrier */
  isUp(): boolean;
  /**
   * ndo_start_xmit: hand one skb (possibly a TSO super-segment) to the driver. `skb.data` is valid until this
   * returns: the NIC reads a frame while transmit() runs (DMA of the mapped skb), and callers may build the
   * next skb in the same memory (the replay does). A driver that defers a transmit keeps a copy.
   */
  startXmit(skb: SkBuff): void;
  /**
   * Debug view of the device's TLS context table (netdevsim's debugfs dump, reduced to one lookup): does the
   * device hold a context for this connection (local view) and direction? Optional. The stack checks it after
   * tls_dev_add and tls_dev_del, as a debug kernel would, to catch a driver that returns 0 without a context,
   * fails yet leaves one, or returns from tls_dev_del with its handle still in the table (leaked).
   */
  tlsDebugHasContext?(tuple: FourTuple, direction: TlsOffloadCtxDir): boolean;
}

/** One TX record as tls_get_record() finds it in the offload context's records list. */
export type TlsTxRecord = {
  /** TCP seq of the record's first byte (its header). */
  startSeq: number;
  /** The record as the stack framed it: header, explicit nonce, plaintext, 16-byte tag placeholder. */
  data: Uint8Array;
};

/**
 * The kernel functions a driver calls (exported from net/tls/). The stack model implements them; a driver
 * receives them at probe time, the way a kernel module links against the exported symbols.
 */
export interface TlsKernelHelpers {
  tlsOffloadRxResyncRequest(sk: Sock, seq: number): void;
  tlsOffloadRxResyncAsyncRequestStart(sk: Sock, seq: number, len: number): void;
  tlsOffloadRxResyncAsyncRequestEnd(sk: Sock, seq: number): void;
  tlsOffloadRxResyncAsyncRequestCancel(sk: Sock): void;
  tlsOffloadRxResyncSetType(sk: Sock, type: TlsOffloadSyncType): void;
  tlsOffloadTxResyncRequest(sk: Sock, gotSeq: number, expSeq: number): void;
  tlsOffloadTxResyncPending(sk: Sock): boolean;
  /** tls_get_record(): the record holding `seq` and its record number, or null (already acknowledged). */
  tlsGetRecord(sk: Sock, seq: number): { record: TlsTxRecord; rcdSn: bigint } | null;
  /** tls_encrypt_skb(): software fallback for one TX skb; null means drop it. */
  tlsEncryptSkb(skb: SkBuff): SkBuff | null;
  /** netif_receive_skb(): hand an RX skb to the stack. */
  netifReceiveSkb(skb: SkBuff): void;
}
