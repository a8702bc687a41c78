// Issue 8, resource bounds: a context table smaller than the number of flows (tls_dev_add -ENOSPC, software
// fallback counted in tls_stat, data exact, slots freed at close reused by later flows), and memory that
// stays flat over many flows on long-lived hosts and over flows that never finish.
import test from 'ava';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ENOSPC } from '../emulator/errno.ts';
import { buildWorld, connectFlow, type Flow, type FlowTraffic, type TbWorld } from '../testbed/world.ts';

const TRAFFIC: FlowTraffic = { keyBits: 128, writesA: [20_000, 3000], writesB: [9000], handshakeA: 517, handshakeB: 4000 };

function exact(f: Flow): boolean {
  const same = (w: Uint8Array[], r: Uint8Array[]) => Buffer.concat(w).equals(Buffer.concat(r));
  return same(f.ab.writes, f.ab.received) && same(f.ba.writes, f.ba.received);
}

function world(maxContexts: number): TbWorld {
  return buildWorld({ seed: 9, driver: { name: 'mlx5' }, nicProfile: { a: { maxContexts }, b: { maxContexts } } });
}

test('table full: 5 flows, 4 slots per NIC: two flows offload both directions, three get -ENOSPC and run in software; data exact', (t) => {
  const w = world(4);
  const flows = [0, 1, 2, 3, 4].map((i) => connectFlow(w, i, TRAFFIC));
  w.sim.run();
  t.true(flows.every(exact));
  const modes = flows.map((f) => [f.client.txMode, f.client.rxMode, f.server!.rxMode, f.server!.txMode].join('/'));
  t.is(modes.filter((m) => m === 'hw/hw/hw/hw').length, 2);
  t.is(modes.filter((m) => m === 'sw/sw/sw/sw').length, 3);
  for (const h of [w.a, w.b]) {
    const st = h.stack.tlsStat;
    t.deepEqual([st.TlsTxDevice, st.TlsRxDevice, st.TlsTxSw, st.TlsRxSw], [2, 2, 3, 3], h.side);
    t.deepEqual([st.TlsCurrTxDevice, st.TlsCurrRxDevice, st.TlsCurrTxSw, st.TlsCurrRxSw], [2, 2, 3, 3], h.side);
    t.is(h.stack.callLog.filter((c) => c.op === 'tls_dev_add' && c.result === -ENOSPC).length, 6, h.side);
    t.is(h.stack.tlsStat.TlsDecryptError, 0);
    t.is(h.nic.contextCount, 4);
    t.deepEqual(h.stack.violations, []);
  }
  t.regex(flows.find((f) => f.server!.rxMode === 'sw')!.server!.rxReason!, /tls_dev_add returned -ENOSPC/);
  // Close everything: the slots come back, the gauges go to zero, and a new wave offloads again.
  for (const f of flows) {
    f.client.close();
    f.server!.close();
  }
  w.sim.run();
  for (const h of [w.a, w.b]) {
    t.is(h.nic.contextCount, 0, `${h.side}: every context freed at close`);
    const st = h.stack.tlsStat;
    t.deepEqual([st.TlsCurrTxDevice, st.TlsCurrRxDevice, st.TlsCurrTxSw, st.TlsCurrRxSw], [0, 0, 0, 0]);
    t.is(h.nic.counters.tx_tls_del + h.nic.counters.rx_tls_del, 4);
  }
  const again = [5, 6].map((i) => connectFlow(w, i, TRAFFIC));
  w.sim.run();
  t.true(again.every(exact));
  t.true(again.every((f) => f.client.txMode === 'hw' && f.server!.rxMode === 'hw' && f.server!.txMode === 'hw' && f.client.rxMode === 'hw'));
  t.is(w.b.stack.tlsStat.TlsRxDevice, 4);
});

function gc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

function heapAfterGc(collect: () => void): number {
  collect();
  collect();
  return process.memoryUsage().heapUsed;
}

test('many flows on long-lived hosts: closed flows leave no state behind (sockets, contexts, heap)', (t) => {
  const collect = gc();
  const w = world(64);
  const wave = (from: number) => {
    const flows = Array.from({ length: 20 }, (_, i) => connectFlow(w, from + i, TRAFFIC));
    w.sim.run();
    t.true(flows.every(exact), `wave from ${from}`);
    for (const f of flows) {
      f.client.close();
      f.server!.close();
    }
    w.sim.run();
  };
  // Warm up (JIT, pools), then measure over 200 more flows.
  for (let i = 0; i < 5; i++) wave(i * 20);
  const before = heapAfterGc(collect);
  for (let i = 5; i < 15; i++) wave(i * 20);
  const after = heapAfterGc(collect);
  for (const h of [w.a, w.b]) {
    t.is(h.stack.socketList.length, 0, `${h.side}: the stack released every closed socket`);
    t.is(h.nic.contextCount, 0, `${h.side}: the device table is empty`);
  }
  // Per closed flow what remains is the call log (4 calls) and the testbed's own Flow records (the payloads
  // it compares): bounded well below 10 KiB per flow besides the payload bytes the test keeps on purpose.
  const payload = 200 * (20_000 + 3000 + 9000) * 2;
  t.log(`heap ${(before / 1e6).toFixed(1)} MB -> ${(after / 1e6).toFixed(1)} MB over 200 flows (payload kept by the test ${(payload / 1e6).toFixed(1)} MB)`);
  t.true(after - before < payload + 200 * 10_240, `heap grew ${after - before} bytes`);
});

test('flows that never finish: a stalled peer (link down for good) leaves a bounded sender, no timer storm', (t) => {
  const w = world(64);
  const flows = Array.from({ length: 8 }, (_, i) => connectFlow(w, i, { ...TRAFFIC, writesA: [200_000] }));
  w.sim.run({ until: 1500 });
  // B's NIC goes away for good mid-transfer: A keeps its records until ACKed and retransmits with backoff
  // until TCP gives up (tcp_retries2); nothing grows past what the flows had queued.
  w.b.nic.setLink(false);
  const events = w.sim.run({ maxEvents: 5_000_000 });
  t.log(`events after the stall: ${JSON.stringify(events)}`);
  for (const f of flows) {
    t.true(f.ab.received.reduce((n, r) => n + r.length, 0) <= 200_000, 'never more than written');
    t.true(f.ab.received.length === 0 || Buffer.concat(f.ab.received).equals(Buffer.concat(f.ab.writes).subarray(0, Buffer.concat(f.ab.received).length)), 'an exact prefix');
  }
  t.is(w.b.stack.tlsStat.TlsDecryptError, 0);
  t.is(events.reason, 'idle', 'the run ends: TCP aborts the stalled flows (tcp_retries2), no timer is left');
  t.true(events.events < 20_000, 'a bounded number of events (RTO backoff), not a storm');
  t.is(w.a.host.socketList().length, 0, 'A released every aborted socket');
  t.is(w.a.stack.socketList.length, 8, 'the TLS sockets stay until the application closes them');
  for (const f of flows) f.client.close();
  w.sim.run();
  t.is(w.a.stack.socketList.length, 0);
  t.is(w.a.nic.contextCount, 0, 'their contexts freed at close');
});
