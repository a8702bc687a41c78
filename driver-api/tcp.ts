// What net/tls uses of TCP, as a contract between the host's TCP model (driver-api/host/) and the TLS
// stack model (driver-api/stack/), so neither imports the other's internals. Kernel counterparts named.
import type { FourTuple, NetDevice, SkBuff } from './ops.ts';

/** One in-order piece of the received stream as one skb carried it (skb->decrypted kept per piece). */
export type RxChunk = { seq: number; data: Uint8Array; decrypted: boolean };

/** The TLS layer as TCP sees it (struct tcp_ulp_ops + the hooks tls installs on the socket). */
export interface TcpUlp {
  /**
   * In-order bytes arrived (sk_data_ready + the strparser reading the receive queue). Chunks are never
   * merged across different `decrypted` flags (the kernel does not coalesce them: tcp_try_coalesce checks
   * skb->decrypted). With TLS RX installed the ULP copies what it keeps before returning, so chunk data may be
   * the caller's reused buffer, and the array and chunk objects may be reused too; before that (the handshake)
   * chunks are handed to the reader as they are.
   */
  onReceive(chunks: readonly RxChunk[]): void;
  /** snd_una advanced to `sndUna`: every byte before it is acknowledged (tls_device clean_acked_data). */
  onAck(sndUna: number): void;
  /**
   * sk_validate_xmit_skb (tls_validate_xmit_skb): called for every skb of this socket just before
   * dev_queue_xmit on `dev`. Returns the skb to send (possibly software-encrypted) or null to drop it.
   */
  validateXmit?(skb: SkBuff, dev: NetDevice): SkBuff | null;
  /** The peer closed its side (FIN consumed in order). */
  onPeerClose?(): void;
  /**
   * sk_destruct: the socket is gone, after close() once its FIN is acknowledged (TIME_WAIT, CLOSED) or it was
   * aborted. Until then queued data and retransmissions still leave through it (tls_device_sk_destruct()
   * deletes the TX context only now).
   */
  onDestroy?(): void;
}

/** A connected TCP socket as the TLS layer drives it. Seqs are 32-bit, wrap-aware (emulator/wire/seq.ts). */
export interface TcpSock {
  readonly id: number;
  readonly tuple: FourTuple;
  /** tcp_sk(sk)->write_seq: seq the next queued byte will get. */
  readonly writeSeq: number;
  /** tcp_sk(sk)->snd_una */
  readonly sndUna: number;
  /** tcp_sk(sk)->copied_seq: next byte the ULP has not consumed yet. */
  readonly copiedSeq: number;
  /** The device this socket's packets leave through (the route's dst->dev). */
  readonly netdev: NetDevice;
  /** Install the ULP (setsockopt TCP_ULP "tls"). */
  setUlp(ulp: TcpUlp): void;
  /**
   * tcp_sendmsg: queue bytes for transmission. Bytes queued with a different `offloaded` mark than the
   * previous ones start a new skb (skb->decrypted on TX marks "device must encrypt"). `zerocopy`: the skb
   * references `data` instead of copying it (page frags of sendfile/MSG_SPLICE_PAGES): every (re)transmit
   * reads the bytes as they are at that moment.
   */
  queue(data: Uint8Array, offloaded: boolean, zerocopy?: boolean): void;
  /** tcp_write_collapse_fence(): the next queued byte starts a new skb, hence a new segment. */
  fence(): void;
  /** Push what is queued (tcp_push). */
  push(): void;
  /** Close our sending side (FIN after queued data); the socket calls its ULP's onDestroy() when it is gone. */
  close(): void;
}
