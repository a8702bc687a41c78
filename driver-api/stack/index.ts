// The kernel TLS stack model (net/tls/): see stack.ts.
export { TlsStack, TlsSocket, formatDriverCall, type DevState, type DriverCall, type TlsMode, type TlsStackEvent, type TlsStackOptions } from './stack.ts';
export { TLS_STAT_NAMES, emptyTlsStat, formatTlsStat, type TlsStat, type TlsStatName } from './tls-stat.ts';
export { cryptoInfoSchema, parseCryptoInfo } from './crypto-info-schema.ts';
export { TAG_PLACEHOLDER, encryptFramedRecord, frameOffloadRecord } from './record-ops.ts';
export { RxResync, RESYNC_ASYNC_LOGMAX, RESYNC_NH_MAX_IVAL, RESYNC_NH_START_IVAL } from './rx-resync.ts';
export { TxRecordsList, isStartMarker, type TxOffloadRecord } from './tx-records.ts';
export {
  VIOLATION_KINDS, ViolationLog, emptyViolationCounts, formatViolation, type ContractViolation, type ViolationCounts, type ViolationKind,
} from './violations.ts';
