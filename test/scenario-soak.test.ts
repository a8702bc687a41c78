// Issue 5's done-when, at a modest count: a seeded randomized soak (random loss, reorder and duplication up
// to 5% per world, random writes) through every resync type. Every byte arrives exactly once and in order,
// no bad tag is accepted, every loss of sync is followed by the device decrypting again. Prints the recovery
// distance per resync type. More flows: `tlsnic run fixtures/scenarios/soak.json --flows 2000`.
import test from 'ava';
import { assertRecovered, recoveryStats, runScenario } from '../testbed/ava.ts';

const FLOWS = Number(process.env['TLSNIC_SOAK_FLOWS'] ?? 24);

test(`soak: ${FLOWS} flows per resync type recover from random loss/reorder/duplication`, (t) => {
  const r = runScenario('fixtures/scenarios/soak.json', { soakFlows: FLOWS });
  assertRecovered(t, r);
  t.deepEqual(r.runs.map((x) => x.resyncType), ['driver_req_async', 'driver_req', 'core_next_hint']);
  for (const run of r.runs) {
    t.is(run.flowCount, FLOWS);
    t.is(run.unrecovered, 0);
    const st = recoveryStats(run.recovery);
    t.truthy(st, `${run.profile}: the random impairments made the device lose sync at least once`);
    t.true(run.hosts.b.ethtool.rx_tls_resync_res_ok >= st!.episodes, `${run.profile}: every recovery is a resync the device applied`);
    t.is(run.hosts.b.tlsStat.TlsDecryptError, 0);
    t.true(run.hosts.b.ethtool.rx_tls_decrypted_packets > 0);
  }
});

test('soak replays bit for bit from its seed', (t) => {
  const one = runScenario('fixtures/scenarios/soak.json', { soakFlows: 4 });
  const two = runScenario('fixtures/scenarios/soak.json', { soakFlows: 4 });
  t.deepEqual(one.runs.map((r) => [r.recovery, r.hosts]), two.runs.map((r) => [r.recovery, r.hosts]));
});
