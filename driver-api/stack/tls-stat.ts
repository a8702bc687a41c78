// /proc/net/tls_stat: the LINUX_MIB_TLS* counters (include/uapi/linux/snmp.h) in tls_mib_list order
// (net/tls/tls_proc.c). Counters are data (STYLE 9): one typed record, one formatter.

export const TLS_STAT_NAMES = [
  'TlsCurrTxSw',
  'TlsCurrRxSw',
  'TlsCurrTxDevice',
  'TlsCurrRxDevice',
  'TlsTxSw',
  'TlsRxSw',
  'TlsTxDevice',
  'TlsRxDevice',
  'TlsDecryptError',
  'TlsRxDeviceResync',
  // Both count the TLS 1.3 TLS_RX_EXPECT_NO_PAD optimisation (decrypt assuming no padding, retry when the
  // record had some). That sockopt is not modelled, so they stay 0, as on a kernel where nobody sets it.
  'TlsDecryptRetry',
  'TlsRxNoPadViolation',
  // The TLS 1.3 rekey series (the same that added tls_check_pending_rekey()): a received KeyUpdate counts
  // TlsRxRekeyReceived; setsockopt TLS_TX/TLS_RX again on a TLS 1.2 direction is -EBUSY and counts
  // TlsTxRekeyError/TlsRxRekeyError. Installing a TLS 1.3 next key is not modelled, so the Ok counts stay 0.
  'TlsRxRekeyOk',
  'TlsRxRekeyError',
  'TlsTxRekeyOk',
  'TlsTxRekeyError',
  'TlsRxRekeyReceived',
] as const;

export type TlsStatName = (typeof TLS_STAT_NAMES)[number];
export type TlsStat = Record<TlsStatName, number>;

export function emptyTlsStat(): TlsStat {
  const s = {} as TlsStat;
  for (const n of TLS_STAT_NAMES) s[n] = 0;
  return s;
}

/** models tls_statistics_seq_show(): seq_printf("%-32s\t%lu\n", name, value) per counter. */
export function formatTlsStat(s: TlsStat): string {
  let out = '';
  for (const n of TLS_STAT_NAMES) out += `${n.padEnd(32)}\t${s[n]}\n`;
  return out;
}
