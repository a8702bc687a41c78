// Issue 4: "a driver that throws or returns an error from any op never loses data: the stack falls back to
// software". Each case wraps a real reference driver's tlsdev_ops so one op faults (throws, or returns an
// errno), on one side and one direction, over a lossy link so resyncs happen; then asserts both applications
// read exactly what the other wrote, the wire equals software TLS (no placeholder, no plaintext where a
// record was due), the fault is in the stack's call log, and the fallback reason says what happened.
import test, { type ExecutionContext } from 'ava';
import { EIO, ENOMEM } from '../emulator/errno.ts';
import type { SkBuff, TlsDevOps, TlsOffloadCtxDir } from '../driver-api/ops.ts';
import { Rng } from '../driver-api/host/rng.ts';
import {
  assertDelivery, assertWire, byOffset, closeBoth, connectTls, makeWorld, randomWrites, recordOffsets, runIdle, type DriverName, type E2eConn,
  type E2eHost, type E2eOptions, type E2eWorld,
} from './helpers/e2e.ts';

type Fault = 'throw' | 'errno' | 'throw-after';
type Op = 'add' | 'resync' | 'del';

/** Wrap `ops` so `op` in direction `dir` faults every time it is called (or only the first `times`). */
function faulty(op: Op, dir: TlsOffloadCtxDir, fault: Fault, errno: number, hits: { n: number }) {
  return (ops: TlsDevOps): TlsDevOps => {
    const fail = <R>(real: () => R, fallback: R): R => {
      hits.n++;
      if (fault === 'errno') return fallback;
      if (fault === 'throw-after') real();
      throw new Error(`injected ${op} ${dir} fault`);
    };
    return {
      tlsDevAdd: (nd, sk, d, ci, sn) => (op === 'add' && d === dir ? fail(() => ops.tlsDevAdd(nd, sk, d, ci, sn), -errno) : ops.tlsDevAdd(nd, sk, d, ci, sn)),
      tlsDevDel: (nd, ctx, d) => (op === 'del' && d === dir ? fail(() => ops.tlsDevDel(nd, ctx, d), undefined) : ops.tlsDevDel(nd, ctx, d)),
      tlsDevResync: (nd, sk, seq, sn, d) => (op === 'resync' && d === dir ? fail(() => ops.tlsDevResync(nd, sk, seq, sn, d), -errno) : ops.tlsDevResync(nd, sk, seq, sn, d)),
    };
  };
}

/**
 * TX resync requests come from a gap the driver sees in the TX stream: a segment lost between TCP and the
 * driver (a qdisc drop). Drop every 25th data skb of side `side` once; TCP retransmits it later.
 */
function qdiscDrops(side: 'a' | 'b'): Partial<E2eOptions> {
  let n = 0;
  return {
    xmitHook: {
      [side]: (skb: SkBuff, send: (skb: SkBuff) => void) => {
        if (skb.data.length > 200 && ++n % 25 === 0) return;
        send(skb);
      },
    },
  };
}

function runFault(driver: DriverName, side: 'a' | 'b', op: Op, dir: TlsOffloadCtxDir, fault: Fault, seed: number, extra: Partial<E2eOptions> = {}) {
  const hits = { n: 0 };
  const errno = op === 'add' ? ENOMEM : EIO;
  const rng = new Rng(seed).fork('writes');
  const writesA = randomWrites(rng, 250_000);
  const writesB = randomWrites(rng, 150_000);
  // Besides the random loss, lose the first copy of the segments holding the headers of A's records 3 and 9:
  // B's device loses sync there and some resync must follow, whatever the random loss hit.
  const rec = recordOffsets(517, writesA);
  const lose = [rec[3]!, rec[9]!];
  const w = makeWorld({
    driver, keyBits: seed % 2 ? 256 : 128, seed, loss: 0.03, reorder: 0.02, tcp: { tso: true },
    impair: byOffset('a>b', (off, len, copy) => (copy === 0 && lose.some((h) => off <= h && h < off + len) ? 'drop' : 'pass')),
    wrapOps: { [side]: faulty(op, dir, fault, errno, hits) }, ...extra,
  });
  // Spread the writes over time (one every 2 ms) so records are still being pushed after a TX gap: the TX
  // resync happens when the next record is pushed (tls_device_resync_tx from tls_push_record).
  const spread = (from: 'a' | 'b', ws: Uint8Array[]) => ws.forEach((wr, i) => w.sim.schedule(2000 * (i + 1), () => c.write(from, wr)));
  const c = connectTls(w, {
    onInstalled: () => {
      spread('a', writesA);
      spread('b', writesB);
    },
  });
  runIdle(w);
  return { w, c, hits, errno };
}

function assertExact(t: ExecutionContext, w: E2eWorld, c: E2eConn): void {
  assertDelivery(t, c);
  assertWire(t, w, c.ab);
  assertWire(t, w, c.ba);
  for (const h of [w.a, w.b]) t.is(h.stack.tlsStat.TlsDecryptError, 0, `${h.side}: TlsDecryptError`);
  t.is(c.client.error, null, 'client socket error');
  t.is(c.server.error, null, 'server socket error');
}

function faultedCalls(h: E2eHost, op: string, dir: TlsOffloadCtxDir) {
  return h.stack.callLog.filter((x) => x.op === `tls_dev_${op}` && x.dir === dir);
}

for (const driver of ['mlx5', 'nfp'] as const) {
  for (const dir of ['tx', 'rx'] as const) {
    for (const fault of ['throw', 'errno', 'throw-after'] as const) {
      test(`${driver}: tls_dev_add ${dir} ${fault === 'errno' ? 'returns -ENOMEM' : fault === 'throw' ? 'throws' : 'installs a context, then throws'} -> that direction in software, data exact`, (t) => {
        const { w, c, hits } = runFault(driver, 'b', 'add', dir, fault, 21 + (fault === 'throw' ? 0 : fault === 'errno' ? 1 : 2));
        assertExact(t, w, c);
        t.is(hits.n, 1, 'one tls_dev_add per direction');
        const s = c.server;
        const mode = dir === 'tx' ? s.txMode : s.rxMode;
        const reason = dir === 'tx' ? s.txReason : s.rxReason;
        t.is(mode, 'sw');
        t.regex(reason!, fault === 'errno' ? /^driver tls_dev_add returned -ENOMEM$/ : /^driver tls_dev_add threw Error: injected add/);
        const [call] = faultedCalls(w.b, 'add', dir);
        t.truthy(call);
        if (fault === 'errno') t.is(call!.result, -ENOMEM);
        else t.regex(call!.threw!, /injected add/);
        // The other direction still offloads; the peer is untouched.
        t.is(dir === 'tx' ? s.rxMode : s.txMode, 'hw');
        t.is(w.b.stack.tlsStat[dir === 'tx' ? 'TlsTxSw' : 'TlsRxSw'], 1);
        // The device never saw this direction's bytes as offloaded: nothing was device-encrypted for B's TX,
        // and (a context leaked by a throw-after or not) nothing B received was accepted as device-decrypted.
        if (dir === 'tx') t.is(w.b.nic.counters.tx_tls_encrypted_bytes, 0, 'no device TX encryption in SW mode');
        // A driver that installed an RX context and then failed leaves the device decrypting for a socket in
        // software: the stack undoes it, keeps the data exact, and names the violation once.
        // A throw-after leaves a device context the stack never added: named first (the debug check of the
        // device table right after the failed add). On RX the leaked context then makes the driver ask the
        // stack for resyncs on a socket that is not offloaded: each such call is refused and named too.
        const v = w.b.stack.violations;
        if (fault === 'throw-after') {
          t.true(v.length >= 1);
          t.is(v[0]!.kind, 'add-failed-left-context');
          t.is(v[0]!.dir, dir);
          t.regex(v[0]!.what, /context the stack never added/);
          for (const later of v.slice(1)) t.is(later.kind, 'helper-not-offloaded', `${later.kind}: ${later.what}`);
          if (dir === 'rx') t.true(w.b.nic.counters.rx_tls_decrypted_packets > 0, 'the leaked context did decrypt');
          else t.is(v.length, 1);
        } else {
          t.deepEqual(v, []);
        }
        closeBoth(w, c);
        // No tls_dev_del for a direction whose add failed (the kernel frees the SW resources only).
        t.is(faultedCalls(w.b, 'del', dir).length, 0);
        t.is(faultedCalls(w.b, 'del', dir === 'tx' ? 'rx' : 'tx').length, 1);
      });
    }
  }

  for (const dir of ['tx', 'rx'] as const) {
    for (const fault of ['throw', 'errno'] as const) {
      // RX resyncs need a lost header (the lossy link); TX resyncs only happen on nfp (next record sync).
      if (dir === 'tx' && driver === 'mlx5') continue;
      test(`${driver}: tls_dev_resync ${dir} ${fault === 'throw' ? 'throws' : 'returns -EIO'} every time -> data exact, the stack keeps going`, (t) => {
        const side = dir === 'tx' ? 'a' : 'b';
        const { w, c, hits } = runFault(driver, side, 'resync', dir, fault, 31 + (fault === 'throw' ? 0 : 1), dir === 'tx' ? qdiscDrops(side) : {});
        assertExact(t, w, c);
        const h = side === 'a' ? w.a : w.b;
        const calls = faultedCalls(h, 'resync', dir);
        t.true(hits.n >= 1, 'the link made the stack call tls_dev_resync');
        t.is(calls.length, hits.n);
        for (const x of calls) {
          if (fault === 'throw') t.regex(x.threw!, /injected resync/);
          t.is(x.result, -EIO, fault === 'throw' ? 'a throw is logged as -EIO' : 'the returned errno is logged');
        }
        if (dir === 'rx') t.is(h.stack.tlsStat.TlsRxDeviceResync, calls.length, 'every attempt counted, as tls_device_resync_rx does');
        // A failed TX resync stays pending: the stack asks again on a later record instead of giving up.
        if (dir === 'tx') t.true(calls.length >= 2, `${calls.length} TX resync attempts`);
        closeBoth(w, c);
      });
    }
  }

  for (const fault of ['throw', 'throw-after'] as const) {
    test(`${driver}: tls_dev_del ${fault === 'throw' ? 'throws before' : 'throws after'} removing -> logged once per direction, data exact, a new connection offloads`, (t) => {
      const hitsTx = { n: 0 };
      const hitsRx = { n: 0 };
      const w = makeWorld({
        driver, keyBits: 128, seed: 41, loss: 0.02,
        wrapOps: { a: (ops) => faulty('del', 'tx', fault, 0, hitsTx)(faulty('del', 'rx', fault, 0, hitsRx)(ops)) },
      });
      const rng = new Rng(41).fork('writes');
      const c = connectTls(w, { writesA: randomWrites(rng, 100_000), writesB: randomWrites(rng, 80_000) });
      runIdle(w);
      assertExact(t, w, c);
      closeBoth(w, c);
      t.is(hitsTx.n, 1);
      t.is(hitsRx.n, 1);
      for (const d of ['tx', 'rx'] as const) {
        const del = faultedCalls(w.a, 'del', d);
        t.is(del.length, 1, `tls_dev_del ${d} exactly once`);
        t.regex(del[0]!.threw!, /injected del/);
      }
      // A second connection on the same hosts: the stack and driver still work (with a leaked context when
      // the driver threw before freeing it, the table has room to spare).
      const rng2 = new Rng(42).fork('writes');
      const c2 = connectTls(w, { port: 4434, writesA: randomWrites(rng2, 60_000), writesB: randomWrites(rng2, 60_000) });
      runIdle(w);
      assertDelivery(t, c2);
      assertWire(t, w, c2.ab);
      assertWire(t, w, c2.ba);
      t.is(c2.client.txMode, 'hw');
      t.is(c2.client.rxMode, 'hw');
    });
  }
}
