// The issue 5 scenario library, one test per scenario file (each file carries its own expectations), run
// against every driver profile it names, plus what each case is about read off the result directly.
import test from 'ava';
import { readdirSync } from 'node:fs';
import { assertRecovered, runScenario } from '../testbed/ava.ts';
import { loadScenarioFile } from '../testbed/load.ts';
import { runScenarioObject } from '../testbed/runner.ts';

const DIR = 'fixtures/scenarios';
const files = readdirSync(DIR).filter((f) => f.endsWith('.json') && !f.startsWith('soak'));

for (const f of files) {
  test(`scenario ${f}: expectations hold for every driver profile`, (t) => {
    assertRecovered(t, runScenario(`${DIR}/${f}`));
  });
}

test('reorder of a non-header segment: no loss of sync, no resync, every packet but the late one decrypted', (t) => {
  const r = runScenario(`${DIR}/reorder-non-header.json`);
  t.is(r.runs.length, 3);
  for (const run of r.runs) {
    t.is(run.impairments[0]!.fired, 1, 'the body segment was held back once');
    t.deepEqual(run.flows[0]!.episodes, []);
    t.false(run.hosts.b.calls.some((c) => c.startsWith('resync')));
    t.is(run.flows[0]!.deviceRxState, 'sync');
    t.true(run.flows[0]!.exact);
  }
});

test('loss of a header segment: one loss of sync per profile, resynced on a real record, device back in sync', (t) => {
  const r = runScenario(`${DIR}/loss-header.json`);
  t.deepEqual(r.runs.map((x) => x.resyncType), ['driver_req_async', 'driver_req', 'core_next_hint']);
  for (const run of r.runs) {
    const f = run.flows[0]!;
    t.is(f.episodes.length, 1);
    const e = f.episodes[0]!;
    // The dropped segment ends record 9 and starts record 10: sync is lost in record 9.
    t.is(e.lostRecord, 9);
    t.true(e.recoveredRecord! > 10 && e.distance! >= 1);
    t.is(f.deviceRxState, 'sync', 'the context is in sync when the flow ends');
    t.true(f.resyncs.length >= 1);
    for (const x of f.resyncs) {
      t.true(x.record > 9, `tls_dev_resync names record ${x.record}, a real record start after the loss`);
      t.true(x.rcdSnOk, 'with that record\'s number');
    }
    t.true(f.decryptedAfterLastImpairment > 100);
  }
  // The request comes from the device on DRIVER_REQ(_ASYNC), from the stack's own backoff on NEXT_HINT.
  t.true(r.runs[0]!.hosts.b.ethtool.rx_tls_resync_req_start >= 1);
  t.true(r.runs[1]!.hosts.b.ethtool.rx_tls_resync_req_pkt >= 1);
  t.is(r.runs[2]!.hosts.b.ethtool.rx_tls_resync_req_pkt, 0);
});

test('mlx5 GET_PSV never answers: the loss of sync stays open, cancelled requests, data still exact', (t) => {
  const r = runScenario(`${DIR}/mlx5-psv-never-answers.json`);
  t.true(r.ok, r.failures.join('\n'));
  const run = r.runs[0]!;
  t.is(run.unrecovered, 1);
  t.is(run.flows[0]!.episodes[0]!.recoveredRecord, null);
  t.not(run.flows[0]!.deviceRxState, 'sync');
  t.true(run.flows[0]!.exact);
});

test('a corrupted ciphertext byte is never accepted: reader stops before that record with EBADMSG', (t) => {
  const r = runScenario(`${DIR}/corrupt-ciphertext.json`);
  for (const run of r.runs) {
    const f = run.flows[0]!;
    t.is(f.socketError, 'EBADMSG');
    t.is(f.recordsRead, 8);
    t.true(f.inOrder);
    t.false(f.exact);
  }
});

test('seq wrap: the client ISN puts 2^32 inside the stream and the lost records sit around it', (t) => {
  const s = loadScenarioFile(`${DIR}/seq-wrap.json`);
  const isn = s.traffic!.isnA!;
  // Stream offset where seq wraps; record 12 (517 + 12 * 16413 = 197473) starts before it, 13 after.
  const wrapAt = 2 ** 32 - (isn + 1);
  t.true(517 + 12 * 16413 < wrapAt && wrapAt < 517 + 13 * 16413);
  const r = runScenarioObject(s);
  t.deepEqual(r.failures, []);
});

test('expectations can fail: a wrong counter range, call pattern and recovery bound are each reported', (t) => {
  const s = loadScenarioFile(`${DIR}/loss-header.json`);
  const r = runScenarioObject({
    ...s, driver: { name: 'nfp', rxResyncType: 'driver_req' }, expectByProfile: undefined,
    expect: {
      ...s.expect, recoveryRecords: { max: 0 }, resyncEpisodes: 0,
      counters: { b: { rx_tls_resync_res_ok: 0 } }, calls: { b: { pattern: '^add rx 0, add tx 0, del rx, del tx$' } },
    },
  });
  t.false(r.ok);
  t.is(r.failures.length, 4, r.failures.join('\n'));
  t.regex(r.failures.join('\n'), /recovery distance \d+ records .* outside \[0, 0\]/);
  t.regex(r.failures.join('\n'), /loss-of-sync episodes: 1, expected 0/);
  t.regex(r.failures.join('\n'), /b: ethtool rx_tls_resync_res_ok = 1, expected 0/);
  t.regex(r.failures.join('\n'), /b: driver calls "add rx 0, add tx 0, resync rx 0, del rx, del tx" do not match/);
});

test('a scenario object from code, two flows, a drop on the second flow only', (t) => {
  const r = runScenario({
    name: 'two-flows', seed: 9, driver: { name: 'nfp', rxResyncType: 'driver_req' },
    traffic: { records: 30, recordSize: 8000, flows: 2 },
    impairments: [{ kind: 'drop', record: 12, flow: 1 }],
    expect: { resyncEpisodes: 1 },
  });
  assertRecovered(t, r);
  const [f0, f1] = r.runs[0]!.flows;
  t.is(f0!.episodes.length, 0);
  t.is(f1!.episodes.length, 1);
  t.is(f1!.port, 4434);
});

// Regression: with reordering only, a resync answer naming a header from before the device's current scan
// chain (here tls_dev_resync(RX, record 10) while the chain started at record 13) renumbered the chain by
// a delta from another era, and the device then failed tags it had not been given corrupted (rx_tls_err 4
// at seed 22). Answers now only match headers of the current chain.
test('reorder only: the device never fails a record tag after resync (rx_tls_err stays 0)', (t) => {
  const r = runScenario({
    name: 'reorder-rx-tls-err', seed: 22, driver: { name: 'nfp', rxResyncType: 'driver_req' },
    traffic: { records: 40, recordSize: 10000 },
    impairments: [{ kind: 'random', reorder: 0.05, untilFraction: 0.5 }],
    expect: { counters: { b: { rx_tls_err: 0 } } },
  });
  t.deepEqual(r.failures, []);
});

test('ack loss: timeouts and go-back-N; every segment nfp sees out of order is a retransmission, none a jump ahead', (t) => {
  const r = runScenario(`${DIR}/ack-loss.json`);
  t.deepEqual(r.failures, []);
  for (const run of r.runs) {
    const a = run.hosts.a;
    t.true(run.impairments[0]!.fired > 100, `${run.profile}: ACKs and segments were lost`);
    t.true(a.tcp.TCPTimeouts > 5, `${run.profile}: ${a.tcp.TCPTimeouts} retransmission timeouts`);
    if (run.profile.startsWith('nfp')) t.is(a.ethtool.tx_tls_ooo, a.tcp.RetransSegs, `${run.profile}: OOO segments are the retransmitted ones`);
    t.true(run.flows.every((f) => f.exact));
  }
});
