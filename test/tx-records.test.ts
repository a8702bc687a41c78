// The stack's TX records list (tls_offload_context_tx records_list) and the pool its acknowledged records'
// buffers go back to: only pooled records are given back, each once, when an ACK covers all of it.
import test from 'ava';
import { RecordPool } from '../driver-api/stack/record-pool.ts';
import { TxRecordsList } from '../driver-api/stack/tx-records.ts';

test('an ACK gives back exactly the pooled records it covers whole, once each', (t) => {
  const freed: Uint8Array[] = [];
  const list = new TxRecordsList(1000, 5n, (b) => freed.push(b));
  const a = new Uint8Array(100).fill(1);
  const b = new Uint8Array(100).fill(2); // sendfile pages: not pooled
  const c = new Uint8Array(100).fill(3);
  list.push(1000, a, 5n, true);
  list.push(1100, b, 6n, false);
  list.push(1200, c, 7n, true);
  list.cleanAcked(1150); // a whole, b half
  t.deepEqual(freed, [a]);
  t.is(list.get(1150)?.data, b, 'a half-acknowledged record stays');
  t.is(list.unackedRecordSn, 6n);
  list.cleanAcked(1150); // the same ACK again
  t.deepEqual(freed, [a]);
  list.cleanAcked(1300);
  t.deepEqual(freed, [a, c]);
  t.is(list.length, 0);
  t.is(list.get(1250), null);
});

test('record pool: a given-back buffer of the size asked for comes back; other sizes and the cap get new memory', (t) => {
  const pool = new RecordPool();
  const x = pool.take(16413);
  pool.give(x);
  t.is(pool.pooledBytes, 16413);
  t.not(pool.take(100), x);
  t.is(pool.take(16413), x);
  t.is(pool.pooledBytes, 0);
  t.not(pool.take(16413), x, 'taken once, not twice');
  // Bounded: beyond 8 MiB given back, buffers are left to the GC.
  for (let i = 0; i < 600; i++) pool.give(new Uint8Array(16413));
  t.true(pool.pooledBytes <= 8 << 20);
  t.true(pool.pooledBytes > (8 << 20) - 16413);
});
