// TLS 1.3 in the two-host testbed (traffic.tls13, an opt-in as in the proposed kernel series): both hosts'
// NICs and stacks offload TLS 1.3 records, and impairments keyed to records find them at TLS 1.3 offsets
// (22 bytes of overhead a record: header, inner content type, tag; no explicit nonce).
import test from 'ava';
import { readFileSync } from 'node:fs';
import { runScenario } from '../testbed/ava.ts';
import type { ScenarioInput } from '../testbed/schema.ts';

const fixture = (name: string) => JSON.parse(readFileSync(`fixtures/scenarios/${name}.json`, 'utf8')) as ScenarioInput & { traffic: object };

test('the lost-header scenario in TLS 1.3: every profile offloads both ways, resyncs once and delivers every byte', (t) => {
  const s = fixture('loss-header');
  const r = runScenario({ ...s, traffic: { ...s.traffic, tls13: true } });
  t.deepEqual(r.failures, []);
  for (const run of r.runs) {
    t.is(run.recovery.length, 1, `${run.profile}: one loss of sync, recovered`);
    const f = run.flows[0]!;
    t.is(f.rxMode, 'hw', `${run.profile}: RX offloaded`);
    t.true(run.hosts.b.ethtool.rx_tls_decrypted_packets > 0 && run.hosts.a.ethtool.tx_tls_encrypted_packets > 0);
    t.is(run.hosts.b.ethtool.rx_tls_err, 0);
  }
});

test('a corrupted TLS 1.3 record among 300 small ones: the reader gets exactly the 200 before it, then EBADMSG', (t) => {
  // With 100-byte records a wrong record size (TLS 1.2's 29 bytes of overhead) would put record 200 1400
  // bytes away, in another record: the reader would stop elsewhere. Byte 100 is the encrypted inner content
  // type, the last ciphertext byte: counted behind an explicit nonce TLS 1.3 does not have, it would be in the tag.
  const r = runScenario({
    name: 'tls13-corrupt', seed: 5, driver: [{ name: 'mlx5' }, { name: 'nfp', rxResyncType: 'core_next_hint' }],
    traffic: { tls13: true, records: 300, recordSize: 100 },
    impairments: [{ kind: 'corruptCiphertext', record: 200, byte: 100 }],
    expect: { delivery: 'badTagRejected', recovered: false },
  });
  t.deepEqual(r.failures, []);
  for (const run of r.runs) {
    const f = run.flows[0]!;
    t.is(f.recordsRead, 200, run.profile);
    t.is(f.socketError, 'EBADMSG');
    t.is(run.impairments[0]!.fired, 1);
  }
});

test('soak worlds in TLS 1.3 (soak.tls13): every byte exact under random loss, reorder and duplication', (t) => {
  const s = fixture('soak') as ScenarioInput & { soak: object };
  const r = runScenario({ ...s, soak: { ...s.soak, tls13: true } }, { soakFlows: 24 });
  t.deepEqual(r.failures, []);
  t.true(r.runs.every((run) => run.flowCount === 24 && run.hosts.b.ethtool.rx_tls_decrypted_packets > 0));
});
