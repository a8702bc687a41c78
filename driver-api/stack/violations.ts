// Driver-contract violations the stack contained (issue 8): what the driver or device did, through which
// tlsdev_ops op or kernel helper, on which socket and direction, and what the stack did about it. In the
// kernel most of these are a WARN_ON_ONCE or a use-after-free; the model logs them for the driver author and
// keeps the data exact.
import type { TlsOffloadCtxDir } from '../ops.ts';

/** What kind of misuse, for counting (one name per rule of the contract in ops.ts / SPEC section 2). */
export type ViolationKind =
  /** The device decrypted bytes of a socket whose RX runs in software (a context the stack never added). */
  | 'decrypted-on-sw-socket'
  /** tls_dev_add failed (errno or throw), yet the device holds a context for the flow. */
  | 'add-failed-left-context'
  /** tls_dev_add returned 0 but the device holds no context for the flow (installed late, or never). */
  | 'add-ok-no-context'
  /** tls_dev_del returned but the device still holds the flow's context: a leaked handle. */
  | 'del-left-context'
  /** A kernel helper named a socket and direction after tls_dev_del for it (late answer, callback from del). */
  | 'helper-after-del'
  /** A kernel helper named a socket whose direction was never offloaded (software, or no TLS). */
  | 'helper-not-offloaded'
  /** A kernel helper named a struct sock the stack does not know (never had the tls ULP, or freed). */
  | 'helper-unknown-socket'
  /** An RX resync request or answer more than the largest TCP window (2^30, RFC 7323) behind the parse point. */
  | 'resync-seq-stale'
  /** An RX resync request or answer more than the largest TCP window (2^30, RFC 7323) ahead of it. */
  | 'resync-seq-future'
  /** tls_get_record() for a seq the socket never sent (at or past write_seq). */
  | 'get-record-out-of-range';

export const VIOLATION_KINDS: readonly ViolationKind[] = [
  'decrypted-on-sw-socket', 'add-failed-left-context', 'add-ok-no-context', 'del-left-context', 'helper-after-del',
  'helper-not-offloaded', 'helper-unknown-socket', 'resync-seq-stale', 'resync-seq-future',
  'get-record-out-of-range',
];

/**
 * Something a driver or device did that the kernel contract forbids. The stack contains it (the data keeps
 * flowing, in software where it must) and logs it here so a driver author sees what to fix.
 */
export type ContractViolation = {
  kind: ViolationKind;
  /** The tlsdev_ops op or kernel helper involved, kernel spelling: "tls_dev_del", "tls_get_record". */
  op: string;
  /** Sock id. */
  sk: number;
  /** The connection as the local socket sees it ("10.4.0.2:4433-10.4.0.1:49152"), or "?" when unknown. */
  flow: string;
  dir: TlsOffloadCtxDir;
  /** What was seen and why it is wrong, in a sentence. */
  what: string;
  /** What the stack did about it, in a sentence. */
  action: string;
  /** TCP seq it was seen at, when it concerns a packet, record or resync. */
  seq: number | null;
  /** Further occurrences of the same kind, op, socket and direction (logged once, counted every time). */
  repeats: number;
};

/** One line a user reads: `tls_dev_del(rx) sk 3 10.4.0.2:4433-10.4.0.1:49152 [del-left-context]: ...; stack: ...`. */
export function formatViolation(v: ContractViolation): string {
  const at = v.seq !== null ? ` at seq ${v.seq}` : '';
  const more = v.repeats > 0 ? ` (+${v.repeats} more)` : '';
  return `${v.op}(${v.dir}) sk ${v.sk} ${v.flow}${at} [${v.kind}]: ${v.what}; stack: ${v.action}${more}`;
}

export type ViolationCounts = Record<ViolationKind, number>;

export function emptyViolationCounts(): ViolationCounts {
  return Object.fromEntries(VIOLATION_KINDS.map((k) => [k, 0])) as ViolationCounts;
}

/**
 * The stack's violation log: each (kind, op, socket, direction) listed once with a repeat count, every
 * occurrence counted by kind, and the list capped so a driver that misbehaves per packet cannot grow memory
 * without bound (the counts stay exact).
 */
export class ViolationLog {
  readonly list: ContractViolation[] = [];
  readonly counts: ViolationCounts = emptyViolationCounts();
  /** Distinct violations not listed because the list was full. */
  dropped = 0;
  private readonly seen = new Map<string, ContractViolation>();

  constructor(readonly limit = 10_000) {}

  /** Log one occurrence; returns the entry when it is new (the caller emits it), null for a repeat. */
  add(v: Omit<ContractViolation, 'repeats'>): ContractViolation | null {
    this.counts[v.kind]++;
    const key = `${v.kind}|${v.op}|${v.sk}|${v.dir}`;
    const prev = this.seen.get(key);
    if (prev) {
      prev.repeats++;
      return null;
    }
    const entry: ContractViolation = { ...v, repeats: 0 };
    if (this.list.length >= this.limit) {
      this.dropped++;
      return entry;
    }
    this.list.push(entry);
    this.seen.set(key, entry);
    return entry;
  }

  get total(): number {
    let n = 0;
    for (const k of VIOLATION_KINDS) n += this.counts[k];
    return n;
  }
}
