// ethtool -S counters for TLS offload (Documentation/networking/tls-offload.rst "Statistics" and mlx5's
// en_accel/ktls_stats / en_stats). One typed record; formatters render it (STYLE principle 9).

export const ETHTOOL_TLS_COUNTERS = [
  'rx_tls_decrypted_packets',
  'rx_tls_decrypted_bytes',
  'rx_tls_ctx',
  'rx_tls_del',
  'rx_tls_resync_req_pkt',
  'rx_tls_resync_req_start',
  'rx_tls_resync_req_end',
  'rx_tls_resync_req_skip',
  'rx_tls_resync_res_ok',
  'rx_tls_resync_res_retry',
  'rx_tls_resync_res_skip',
  'rx_tls_err',
  'tx_tls_encrypted_packets',
  'tx_tls_encrypted_bytes',
  'tx_tls_ctx',
  'tx_tls_del',
  'tx_tls_ooo',
  'tx_tls_dump_packets',
  'tx_tls_dump_bytes',
  'tx_tls_resync_bytes',
  'tx_tls_skip_no_sync_data',
  'tx_tls_drop_no_sync_data',
  'tx_tls_drop_bypass_req',
] as const;

export type EthtoolCounterName = (typeof ETHTOOL_TLS_COUNTERS)[number];
export type EthtoolCounters = Record<EthtoolCounterName, number>;

/**
 * What each counter means here (kernel doc wording where it defines one, mlx5 where it does not):
 * - rx_tls_decrypted_packets/_bytes: RX packets handed up with the decrypted flag / their TCP payload bytes.
 * - rx_tls_ctx / rx_tls_del: RX contexts added / deleted. tx_tls_ctx / tx_tls_del: same for TX.
 * - rx_tls_resync_req_pkt: packets on which the device raised a resync request (any type).
 * - rx_tls_resync_req_start / _end: async resync windows opened / closed with the device's seq.
 * - rx_tls_resync_req_skip: async requests abandoned (device never answered, cancelled).
 * - rx_tls_resync_res_ok: tls_dev_resync(RX) answers the device applied.
 * - rx_tls_resync_res_retry: answers the device could not take yet and the driver retried.
 * - rx_tls_resync_res_skip: answers the device ignored (seq not one it tracks, or already behind it); the
 *   mlx5-like driver never counts it (mlx5 does not learn the device's verdict), the nfp-like one does.
 * - rx_tls_err: packets in which the device failed to authenticate a record (they went up as received).
 * - tx_tls_encrypted_packets/_bytes: wire segments the device encrypted (TSO counts each) / TLS payload bytes.
 * - tx_tls_ooo: TX packets of an offloaded stream that did not arrive in the expected order.
 * - tx_tls_dump_packets/_bytes: record-prefix chunks fed to the device to rebuild crypto state (not sent).
 * - tx_tls_resync_bytes: kept at 0, as mlx5's kTLS path keeps it (only its removed Innova path counted it).
 * - tx_tls_skip_no_sync_data: out-of-order packets wholly before the offload start, sent as they are.
 * - tx_tls_drop_no_sync_data: out-of-order packets dropped: record already acked, or straddling the start.
 * - tx_tls_drop_bypass_req: kept at 0, as mlx5 since 5.6 (a packet straddling the start counts as
 *   drop_no_sync_data; one wholly before it yet marked for the device is dropped uncounted).
 */
export function newEthtoolCounters(): EthtoolCounters {
  const c = {} as EthtoolCounters;
  for (const name of ETHTOOL_TLS_COUNTERS) c[name] = 0;
  return c;
}

/** `ethtool -S <dev>` layout: a header line, then `     name: value` per statistic. */
export function formatEthtool(counters: EthtoolCounters): string {
  const lines = ['NIC statistics:'];
  for (const name of ETHTOOL_TLS_COUNTERS) lines.push(`     ${name}: ${counters[name]}`);
  return lines.join('\n') + '\n';
}
