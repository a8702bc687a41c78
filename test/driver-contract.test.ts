// Issue 8, driver faults beyond "an op throws or returns an errno": a driver that answers after the stack
// moved on, calls kernel helpers at the wrong time, or leaks device handles. Each case wraps a reference
// driver in faultyDriver() through a scenario's `faults`, over a lossy link so resyncs happen, and expects:
// every byte exactly once and in order (the runner's delivery check), nothing with a bad tag accepted
// (TlsDecryptError 0), the misuse reported as the named ContractViolation kind, and nothing reported by a
// driver without faults. Then the cases a scenario cannot express, built on the testbed world directly.
import test from 'ava';
import { ENOSPC, EEXIST } from '../emulator/errno.ts';
import type { Sock } from '../driver-api/ops.ts';
import { formatViolation, type ViolationKind } from '../driver-api/stack/violations.ts';
import type { FaultKind } from '../driver-api/drivers/faulty.ts';
import { runScenario } from '../testbed/ava.ts';
import type { ScenarioInput } from '../testbed/schema.ts';
import { buildWorld, connectFlow, type Flow, type FlowTraffic, type TbWorld } from '../testbed/world.ts';
import { ScenarioError } from '../testbed/load.ts';

const DRIVERS: ScenarioInput['driver'] = [{ name: 'mlx5' }, { name: 'nfp', rxResyncType: 'driver_req' }];

function faultScenario(kind: FaultKind, extra: Partial<ScenarioInput> = {}, fault: Record<string, unknown> = {}): ScenarioInput {
  return {
    name: `fault-${kind}`, seed: 81, driver: DRIVERS,
    traffic: { records: 30, recordSize: 9000, reverseBytes: 60_000, flows: 2 },
    impairments: [
      { kind: 'drop', record: 4 },
      { kind: 'drop', record: 12, copy: 0, dir: 'a>b', flow: 1 },
      { kind: 'random', loss: 0.02, reorder: 0.02, duplicate: 0.01, dir: 'both' },
    ],
    faults: [{ kind, side: 'b', ...fault } as never],
    expect: { delivery: 'exact', recovered: false, tlsStat: { a: { TlsDecryptError: 0 }, b: { TlsDecryptError: 0 } } },
    ...extra,
  };
}

/** The case table: fault, what it must be reported as, and a word the report must carry. */
const CASES: Array<{ kind: FaultKind; report: ViolationKind; says: RegExp; fault?: Record<string, unknown> }> = [
  { kind: 'add-late', report: 'add-ok-no-context', says: /returned 0 but the device holds no/, fault: { delayUs: 3000 } },
  { kind: 'add-leaks', report: 'add-failed-left-context', says: /context the stack never added/ },
  { kind: 'del-leaks', report: 'del-left-context', says: /leaked handle/ },
  { kind: 'del-calls-back', report: 'helper-after-del', says: /after tls_dev_del/ },
  { kind: 'resync-after-del', report: 'helper-after-del', says: /after tls_dev_del|closed socket/, fault: { delayUs: 100 } },
  { kind: 'resync-stale-seq', report: 'resync-seq-stale', says: /behind the record being parsed/, fault: { dir: 'rx' } },
  { kind: 'resync-future-seq', report: 'resync-seq-future', says: /ahead of the record being parsed/, fault: { dir: 'rx' } },
];

for (const c of CASES) {
  test(`fault ${c.kind}: contained (data exact, no bad tag accepted) and reported as ${c.report}`, (t) => {
    const r = runScenario(faultScenario(c.kind, {}, c.fault));
    t.deepEqual(r.failures, [], 'exact delivery, every injected violation reported, none from the fault-free side');
    for (const run of r.runs) {
      const b = run.hosts.b;
      t.true(b.faultsInjected![c.kind] > 0, `${run.profile}: the fault was injected`);
      t.true(b.violationCounts[c.report] > 0, `${run.profile}: reported as ${c.report}`);
      t.true(b.violations.some((v) => v.includes(`[${c.report}]`) && c.says.test(v)), `${run.profile}: the report says what happened`);
      t.is(run.hosts.a.violations.length, 0, 'the fault-free side reports nothing');
      t.true(run.flows.every((f) => f.exact && f.socketError === null));
    }
  });
}

test('fault resync-stale-seq on mlx5 hits async answers; resync-future-seq on nfp hits requests: both ignored, never a wrong tls_dev_resync', (t) => {
  for (const kind of ['resync-stale-seq', 'resync-future-seq'] as const) {
    const r = runScenario(faultScenario(kind, {}, { dir: 'rx' }));
    t.deepEqual(r.failures, []);
    // The runner fails any tls_dev_resync(RX) that names a non-record start or a wrong record number.
    for (const run of r.runs) t.true(run.flows.every((f) => f.resyncs.every((x) => x.record >= 0 && x.rcdSnOk)));
  }
});

test('fault helper-late: every resync helper answers 2 ms late; data exact, and what lands after tls_dev_del is reported', (t) => {
  const r = runScenario(faultScenario('helper-late', {}, { delayUs: 2000 }));
  t.deepEqual(r.failures, []);
  for (const run of r.runs) t.true(run.hosts.b.faultsInjected!['helper-late'] > 0, run.profile);
});

test('fault get-record-bad-seq (mlx5): tls_get_record past write_seq answered null, the segment is dropped and retransmitted', (t) => {
  const r = runScenario(faultScenario('get-record-bad-seq', { driver: { name: 'mlx5' } }, { every: 2, side: 'a' }));
  t.deepEqual(r.failures, []);
  const a = r.runs[0]!.hosts.a;
  t.true(a.violationCounts['get-record-out-of-range'] > 0);
  t.true(a.violations.some((v) => /tls_get_record\(tx\).*was never sent/.test(v)));
});

test('fault encrypt-sw-socket: tls_encrypt_skb on a software-TX socket returns the skb unchanged and is reported', (t) => {
  // B's driver answers -ENOSPC to every tls_dev_add: B runs in software, and the driver still calls the helper.
  const r = runScenario(faultScenario('encrypt-sw-socket', {
    faults: [{ kind: 'add-errno', side: 'b', errno: ENOSPC }, { kind: 'encrypt-sw-socket', side: 'b', dir: 'tx' }],
  }));
  t.deepEqual(r.failures, []);
  for (const run of r.runs) {
    t.true(run.hosts.b.violationCounts['helper-not-offloaded'] > 0);
    t.is(run.hosts.b.tlsStat.TlsTxSw, 2);
  }
});

test('add-late on TX: the stack sends every offloaded skb through the software fallback, so the late context never sees plaintext', (t) => {
  const r = runScenario(faultScenario('add-late', {}, { dir: 'tx', delayUs: 500 }));
  t.deepEqual(r.failures, []);
  for (const run of r.runs) {
    t.is(run.hosts.b.violationCounts['add-ok-no-context'], 2, `${run.profile}: one per flow`);
    t.is(run.hosts.b.ethtool.tx_tls_encrypted_packets, 0, `${run.profile}: the device encrypted nothing for B`);
  }
});

test('a contract violation reads as a sentence: op, direction, socket, flow, kind, what, what the stack did', (t) => {
  const r = runScenario(faultScenario('del-leaks', { driver: { name: 'nfp', rxResyncType: 'driver_req' } }));
  const line = r.runs[0]!.hosts.b.violations[0]!;
  t.log(line);
  t.regex(line, /^tls_dev_del\((rx|tx)\) sk \d+ 10\.4\.0\.2:443\d-10\.4\.0\.1:\d+ \[del-left-context\]: tls_dev_del returned with the device still holding this flow's (RX|TX) context: a leaked handle .*; stack: nothing more goes to the device/);
});

test('scenario faults: zod errors name the field', (t) => {
  const bad = (faults: unknown[]) => t.throws(() => runScenario({ ...faultScenario('del-leaks'), faults } as ScenarioInput), { instanceOf: ScenarioError });
  t.regex(bad([{ kind: 'explode' }]).message, /faults\[0\]\.kind/);
  t.regex(bad([{ kind: 'del-leaks', every: 0 }]).message, /faults\[0\]\.every/);
  t.regex(bad([{ kind: 'del-leaks', side: 'c' }]).message, /faults\[0\]\.side/);
  t.regex(bad([{ kind: 'del-leaks', bogus: 1 }]).message, /faults\[0\]\.bogus: unknown field/);
});

// ---- the stack side, directly ----

function world(faults: Parameters<typeof buildWorld>[0]['faults'], maxContexts?: number): TbWorld {
  return buildWorld({
    seed: 5, driver: { name: 'nfp', rxResyncType: 'driver_req' }, ...(faults ? { faults } : {}),
    ...(maxContexts !== undefined ? { nicProfile: { b: { maxContexts } } } : {}),
  });
}

const TRAFFIC: FlowTraffic = { keyBits: 128, writesA: [30_000, 16384, 5000], writesB: [20_000], handshakeA: 517, handshakeB: 4000 };

function exact(f: Flow): boolean {
  const same = (w: Uint8Array[], r: Uint8Array[]) => Buffer.concat(w).equals(Buffer.concat(r));
  return same(f.ab.writes, f.ab.received) && same(f.ba.writes, f.ba.received);
}

function closeAndForget(w: TbWorld, f: Flow): void {
  f.client.close();
  f.server!.close();
  w.sim.run();
  // TIME_WAIT has no 2MSL timer in the host model: release the 4-tuple the way its expiry would.
  w.a.host.forget(f.client.tcp as never);
  w.b.host.forget(f.server!.tcp as never);
}

test('leaked handle: a new connection on the same 4-tuple gets -EEXIST, runs in software, and the stale context decrypts none of its bytes', (t) => {
  const w = world({ b: [{ kind: 'del-leaks' }] });
  const f1 = connectFlow(w, 0, { ...TRAFFIC, sport: 50_000 });
  w.sim.run();
  t.true(exact(f1));
  closeAndForget(w, f1);
  t.is(w.b.nic.contextCount, 2, 'both of B\'s contexts leaked');
  t.deepEqual(w.b.stack.violations.map((v) => [v.kind, v.dir]), [['del-left-context', 'rx'], ['del-left-context', 'tx']]);
  const decryptedBefore = w.b.nic.counters.rx_tls_decrypted_packets;
  const f2 = connectFlow(w, 0, { ...TRAFFIC, sport: 50_000 });
  w.sim.run();
  t.deepEqual(f2.server!.sk.tuple, f1.server!.sk.tuple, 'the same 4-tuple');
  t.true(exact(f2), 'every byte exactly once, in order');
  t.is(f2.server!.rxMode, 'sw');
  t.is(f2.server!.txMode, 'sw');
  t.regex(f2.server!.rxReason!, new RegExp(`-EEXIST|${-EEXIST}`));
  t.is(w.b.nic.counters.rx_tls_decrypted_packets, decryptedBefore, 'the stale RX context (old key) decrypted nothing of the new connection');
  t.is(w.b.stack.tlsStat.TlsDecryptError, 0);
  t.false(w.b.stack.violations.some((v) => v.kind === 'decrypted-on-sw-socket'));
  // A's side is untouched: it offloads as usual.
  t.is(f2.client.txMode, 'hw');
});

test('leaked handles fill the table: later flows get -ENOSPC and fall back to software cleanly, counted in tls_stat', (t) => {
  const w = world({ b: [{ kind: 'del-leaks' }] }, 4);
  for (let wave = 0; wave < 3; wave++) {
    const flows = [0, 1].map((i) => connectFlow(w, wave * 2 + i, TRAFFIC));
    w.sim.run();
    for (const f of flows) {
      t.true(exact(f), `wave ${wave}: data exact`);
      const mode = wave === 0 ? 'hw' : 'sw';
      t.is(f.server!.rxMode, mode, `wave ${wave}`);
      t.is(f.server!.txMode, mode, `wave ${wave}`);
      if (wave > 0) t.regex(f.server!.rxReason!, /-ENOSPC/);
      f.client.close();
      f.server!.close();
    }
    w.sim.run();
  }
  const st = w.b.stack.tlsStat;
  t.is(st.TlsRxDevice, 2);
  t.is(st.TlsTxDevice, 2);
  t.is(st.TlsRxSw, 4);
  t.is(st.TlsTxSw, 4);
  t.is(st.TlsDecryptError, 0);
  t.is(w.b.nic.contextCount, 4, 'the table is full of leaked contexts');
  t.is(w.b.stack.callLog.filter((c) => c.op === 'tls_dev_add' && c.result === -ENOSPC).length, 8);
  t.is(w.b.stack.violationCounts['del-left-context'], 4, 'only the offloaded directions leaked, each reported');
});

test('tls_dev_del is called exactly once per added direction, also when the link goes down before close', (t) => {
  const w = world({ b: [{ kind: 'del-calls-back' }] });
  const f = connectFlow(w, 0, TRAFFIC);
  w.sim.run();
  w.b.nic.setLink(false);
  w.b.stack.netdevDown(w.b.netdev);
  w.b.stack.netdevDown(w.b.netdev);
  w.b.nic.setLink(true);
  f.client.close();
  f.server!.close();
  w.sim.run();
  const dels = w.b.stack.callLog.filter((c) => c.op === 'tls_dev_del');
  t.deepEqual(dels.map((c) => c.dir).sort(), ['rx', 'tx']);
  // The driver called back into the stack from inside tls_dev_del: refused, reported, nothing thrown.
  t.deepEqual(w.b.stack.violations.map((v) => [v.kind, v.op, v.dir]), [
    ['helper-after-del', 'tls_offload_tx_resync_request', 'tx'], ['helper-after-del', 'tls_offload_rx_resync_request', 'rx'],
  ]);
  t.true(exact(f));
});

test('helpers on a socket the stack never saw, or never offloaded, are refused and reported, never thrown into the driver', (t) => {
  const w = world({ b: [{ kind: 'add-errno', errno: ENOSPC }] });
  const f = connectFlow(w, 0, TRAFFIC);
  w.sim.run();
  const stack = w.b.stack;
  const stranger = { id: 999, tuple: { family: 4, saddr: '10.9.9.9', sport: 1, daddr: '10.9.9.8', dport: 2 }, tlsCtx: f.server!.tlsCtx } as Sock;
  stack.tlsOffloadRxResyncRequest(stranger, 5);
  t.is(stack.tlsGetRecord(f.server!.sk, 0), null, 'B\'s TX is in software (-ENOSPC)');
  stack.tlsOffloadRxResyncAsyncRequestEnd(f.server!.sk, 0);
  t.deepEqual(stack.violations.map((v) => [v.kind, v.op]), [
    ['helper-unknown-socket', 'tls_offload_rx_resync_request'], ['helper-not-offloaded', 'tls_get_record'],
    ['helper-not-offloaded', 'tls_offload_rx_resync_async_request_end'],
  ]);
  for (const v of stack.violations) t.log(formatViolation(v));
  t.true(exact(f));
});

test('repeats of one violation are listed once and counted every time', (t) => {
  const w = world({ b: [{ kind: 'add-errno', errno: ENOSPC }] });
  const f = connectFlow(w, 0, TRAFFIC);
  w.sim.run();
  for (let i = 0; i < 1000; i++) w.b.stack.tlsOffloadTxResyncRequest(f.server!.sk, i, 0);
  t.is(w.b.stack.violations.length, 1);
  t.is(w.b.stack.violations[0]!.repeats, 999);
  t.is(w.b.stack.violationCounts['helper-not-offloaded'], 1000);
});
