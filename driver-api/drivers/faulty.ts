// Fault injection around any driver (issue 8): faultyDriver(base, plan) is a DriverModule whose tlsdev_ops,
// kernel-helper calls and ndo_start_xmit misbehave the way half-written drivers do: ops that fail, answers
// that come late (after the stack moved on), helpers called at the wrong time, handles leaked in the device.
// The stack must contain each one (data exact, in software where needed) and report it as a
// ContractViolation; `expect` on every injected fault names the violation kinds that may report it.
import { ConfigError } from '../../emulator/errors.ts';
import { EIO, ENOMEM } from '../../emulator/errno.ts';
import type { Nic } from '../../emulator/nic/nic.ts';
import { TcpSegmentView } from '../../emulator/wire/packet.ts';
import { seqAdd } from '../../emulator/wire/seq.ts';
import type { ViolationKind } from '../stack/violations.ts';
import type { NetDevice, SkBuff, Sock, TlsContext, TlsDevOps, TlsKernelHelpers, TlsOffloadCtxDir } from '../ops.ts';
import type { DriverModule, ProbeOptions } from './common.ts';

export const FAULT_KINDS = [
  /** tls_dev_add returns -errno (legal: the direction runs in software; no violation). */
  'add-errno',
  /** tls_dev_add throws before touching the device (logged in the call log as threw). */
  'add-throws',
  /** tls_dev_add installs the device context, then throws: the context leaks. */
  'add-leaks',
  /** tls_dev_add returns 0 and installs the context only delayUs later (cancelled if tls_dev_del comes first). */
  'add-late',
  /** tls_dev_del returns without removing the device context (the driver forgets its handle; the slot leaks). */
  'del-leaks',
  /** tls_dev_del calls a resync helper for the socket it is deleting, then deletes. */
  'del-calls-back',
  /** delayUs after tls_dev_del, a resync request (RX) or TX resync request arrives for the deleted socket. */
  'resync-after-del',
  /** tls_dev_resync returns -errno (legal; RX counts TlsRxDeviceResync, TX keeps the request pending). */
  'resync-errno',
  /** Every resync helper call (request, async start/end/cancel, TX request) arrives delayUs late. */
  'helper-late',
  /** RX resync requests and async answers name a seq 2^30 + 1 MiB behind: outside any TCP window. */
  'resync-stale-seq',
  /** RX resync requests and async answers name a seq 2^30 + 1 MiB ahead: outside any TCP window. */
  'resync-future-seq',
  /**
   * tls_get_record() asked for a seq 2^29 past the one the driver wanted (never sent); the driver acts on the
   * answer (mlx5 drops the segment). Counted per socket; every: 1 would drop a socket's every retransmit.
   */
  'get-record-bad-seq',
  /** tls_encrypt_skb() called on every data skb of a socket whose TX is in software. */
  'encrypt-sw-socket',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export type FaultSpec = {
  kind: FaultKind;
  /** Which direction's ops and helpers it hits (default both). */
  dir?: TlsOffloadCtxDir | 'both';
  /** Inject on eligible call number first, first + every, first + 2*every... (0-based; defaults 0 and 1). */
  first?: number;
  every?: number;
  /** Lateness in µs of virtual time for add-late, resync-after-del, helper-late (default 200). */
  delayUs?: number;
  /** errno for add-errno (default ENOMEM) and resync-errno (default EIO), positive. */
  errno?: number;
};

export type FaultPlan = readonly FaultSpec[];

/** One fault the wrapper injected: which, on which socket and direction, and the violation kinds that report it. */
export type InjectedFault = { kind: FaultKind; sk: number; dir: TlsOffloadCtxDir; expect: readonly ViolationKind[] };

export type FaultTally = Record<FaultKind, number>;

/** A DriverModule plus what it injected (over every netdev it probed). */
export type FaultyDriver = DriverModule & {
  readonly injected: FaultTally;
  /** Injected faults with a violation to expect, in order (capped at `limit`; the tally stays exact). */
  readonly expected: InjectedFault[];
};

const STALE_BY = (1 << 30) + (1 << 20);
const FUTURE_BY = (1 << 30) + (1 << 20);
const EXPECTED_LIMIT = 100_000;

export function faultyDriver(base: DriverModule, plan: FaultPlan): FaultyDriver {
  plan.forEach((f, i) => {
    if (!(FAULT_KINDS as readonly string[]).includes(f.kind)) throw new ConfigError(`unknown fault kind ${String(f.kind)}`, { field: `faults[${i}].kind` });
    if (f.every !== undefined && !(Number.isInteger(f.every) && f.every >= 1)) throw new ConfigError('every must be an integer >= 1', { field: `faults[${i}].every` });
  });
  const injected = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as FaultTally;
  const expected: InjectedFault[] = [];
  const seen = plan.map(() => 0);

  const seenBySock = new WeakMap<Sock, number[]>();

  /**
   * The fault of `kind` that fires on this eligible call in `dir`, if any (counts the call for each spec).
   * With `sk`, calls are counted per socket: a fault on every other tls_get_record must leave each socket's
   * retransmit its turn, whatever the other sockets do.
   */
  function fire(kind: FaultKind, dir: TlsOffloadCtxDir, sk?: Sock): FaultSpec | null {
    let hit: FaultSpec | null = null;
    let counts = seen;
    if (sk) {
      counts = seenBySock.get(sk) ?? plan.map(() => 0);
      seenBySock.set(sk, counts);
    }
    plan.forEach((f, i) => {
      if (f.kind !== kind || (f.dir !== undefined && f.dir !== 'both' && f.dir !== dir)) return;
      const n = counts[i]!++;
      const first = f.first ?? 0;
      if (!hit && n >= first && (n - first) % (f.every ?? 1) === 0) hit = f;
    });
    return hit;
  }

  function note(kind: FaultKind, sk: Sock, dir: TlsOffloadCtxDir, expect: readonly ViolationKind[]): void {
    injected[kind]++;
    if (expect.length && expected.length < EXPECTED_LIMIT) expected.push({ kind, sk: sk.id, dir, expect });
  }

  function probe(nic: Nic, kernel: TlsKernelHelpers, opts: ProbeOptions = {}): NetDevice {
    const schedule = opts.schedule;
    const needsClock = plan.find((f) => f.kind === 'add-late' || f.kind === 'resync-after-del' || f.kind === 'helper-late');
    if (needsClock && !schedule) {
      throw new ConfigError(`fault ${needsClock.kind} needs a clock: pass ProbeOptions.schedule`, { field: 'schedule' });
    }
    const later = (f: FaultSpec, fn: () => void) => schedule!(f.delayUs ?? 200, fn);

    // The helpers the base driver links against: some calls late, some with a wrong seq.
    const lateOr = (dir: TlsOffloadCtxDir, sk: Sock, call: () => void): void => {
      const f = fire('helper-late', dir);
      if (!f) return call();
      note('helper-late', sk, dir, []); // whether it lands after tls_dev_del depends on timing: no fixed expectation
      later(f, call);
    };
    const reseq = (sk: Sock, seq: number): number => {
      if (fire('resync-stale-seq', 'rx')) {
        note('resync-stale-seq', sk, 'rx', ['resync-seq-stale', 'helper-after-del', 'helper-not-offloaded']);
        return seqAdd(seq, -STALE_BY);
      }
      if (fire('resync-future-seq', 'rx')) {
        note('resync-future-seq', sk, 'rx', ['resync-seq-future', 'helper-after-del', 'helper-not-offloaded']);
        return seqAdd(seq, FUTURE_BY);
      }
      return seq;
    };
    const k: TlsKernelHelpers = {
      ...kernel,
      tlsOffloadRxResyncRequest: (sk, seq) => {
        const s = reseq(sk, seq);
        lateOr('rx', sk, () => kernel.tlsOffloadRxResyncRequest(sk, s));
      },
      tlsOffloadRxResyncAsyncRequestStart: (sk, seq, len) =>
        lateOr('rx', sk, () => kernel.tlsOffloadRxResyncAsyncRequestStart(sk, seq, len)),
      tlsOffloadRxResyncAsyncRequestEnd: (sk, seq) => {
        const s = reseq(sk, seq);
        lateOr('rx', sk, () => kernel.tlsOffloadRxResyncAsyncRequestEnd(sk, s));
      },
      tlsOffloadRxResyncAsyncRequestCancel: (sk) =>
        lateOr('rx', sk, () => kernel.tlsOffloadRxResyncAsyncRequestCancel(sk)),
      tlsOffloadTxResyncRequest: (sk, got, exp) =>
        lateOr('tx', sk, () => kernel.tlsOffloadTxResyncRequest(sk, got, exp)),
      tlsGetRecord: (sk, seq) => {
        if (!fire('get-record-bad-seq', 'tx', sk)) return kernel.tlsGetRecord(sk, seq);
        note('get-record-bad-seq', sk, 'tx', ['get-record-out-of-range']);
        return kernel.tlsGetRecord(sk, seqAdd(seq, 1 << 29));
      },
    };

    const netdev = base.probe(nic, k, opts);
    const ops = netdev.tlsdevOps;
    if (!ops) return netdev;
    /** add-late installs still pending, by socket and direction (tls_dev_del cancels them). */
    const pendingAdds = new Map<Sock, Partial<Record<TlsOffloadCtxDir, boolean>>>();

    const calledBack = (sk: Sock, dir: TlsOffloadCtxDir): void => {
      if (dir === 'rx') {
        if (base.name === 'mlx5') kernel.tlsOffloadRxResyncAsyncRequestEnd(sk, 0);
        else kernel.tlsOffloadRxResyncRequest(sk, 0);
      } else kernel.tlsOffloadTxResyncRequest(sk, 0, 0);
    };

    const wrapped: TlsDevOps = {
      tlsDevAdd(nd, sk, dir, info, startSn) {
        let f = fire('add-errno', dir);
        if (f) {
          note('add-errno', sk, dir, []);
          return -(f.errno ?? ENOMEM);
        }
        if (fire('add-throws', dir)) {
          note('add-throws', sk, dir, []);
          throw new Error(`injected fault add-throws (${dir})`);
        }
        if (fire('add-leaks', dir)) {
          const r = ops.tlsDevAdd(nd, sk, dir, info, startSn);
          // Only a context that was installed can leak; the driver forgets it (its state is cleared).
          note('add-leaks', sk, dir, r === 0 ? ['add-failed-left-context'] : []);
          sk.tlsCtx.driverState[dir] = undefined;
          throw new Error(`injected fault add-leaks (${dir}): context installed, then failed`);
        }
        f = fire('add-late', dir);
        if (f) {
          note('add-late', sk, dir, ['add-ok-no-context']);
          const p = pendingAdds.get(sk) ?? {};
          p[dir] = true;
          pendingAdds.set(sk, p);
          later(f, () => {
            if (!pendingAdds.get(sk)?.[dir]) return; // deleted before the install landed
            delete pendingAdds.get(sk)![dir];
            ops.tlsDevAdd(nd, sk, dir, info, startSn); // its result is lost: the stack was told 0 already
          });
          return 0;
        }
        return ops.tlsDevAdd(nd, sk, dir, info, startSn);
      },

      tlsDevDel(nd, ctx: TlsContext, dir) {
        const sk = ctx.sk;
        const p = pendingAdds.get(sk);
        if (p?.[dir]) delete p[dir];
        if (p && !p.rx && !p.tx) pendingAdds.delete(sk);
        if (fire('del-calls-back', dir)) {
          note('del-calls-back', sk, dir, ['helper-after-del']);
          calledBack(sk, dir);
        }
        const f = fire('resync-after-del', dir);
        if (f) {
          note('resync-after-del', sk, dir, ['helper-after-del']);
          later(f, () => calledBack(sk, dir));
        }
        if (fire('del-leaks', dir)) {
          // The device keeps the entry; the driver drops its own state as if it had freed it.
          note('del-leaks', sk, dir, ctx.driverState[dir] !== undefined ? ['del-left-context'] : []);
          ctx.driverState[dir] = undefined;
          return;
        }
        ops.tlsDevDel(nd, ctx, dir);
      },

      tlsDevResync(nd, sk, seq, rcdSn, dir) {
        const f = fire('resync-errno', dir);
        if (f) {
          note('resync-errno', sk, dir, []);
          return -(f.errno ?? EIO);
        }
        return ops.tlsDevResync(nd, sk, seq, rcdSn, dir);
      },
    };

    const view = new TcpSegmentView();
    const startXmit = (skb: SkBuff): void => {
      const sk = skb.sk;
      if (sk && sk.tlsCtx.txConf === 'sw' && view.parse(skb.data) === 'tcp' && view.payloadLength > 0 && fire('encrypt-sw-socket', 'tx')) {
        note('encrypt-sw-socket', sk, 'tx', ['helper-not-offloaded']);
        const out = kernel.tlsEncryptSkb(skb);
        if (out) netdev.startXmit(out);
        return;
      }
      netdev.startXmit(skb);
    };
    return { ...netdev, name: netdev.name, features: netdev.features, tlsdevOps: wrapped, isUp: () => netdev.isUp(), startXmit };
  }

  return { name: `${base.name}+faults`, probe, injected, expected };
}
