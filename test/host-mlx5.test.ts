// Plain TCP (no TLS) through two mlx5 reference-driver NetDevices over the emulated NIC and the host link:
// the device passes non-TLS traffic untouched, TSO included.
import test from 'ava';
import { createHash } from 'node:crypto';
import { nodeBackend } from '../emulator/crypto/index.ts';
import { Nic } from '../emulator/nic/nic.ts';
import { mlx5Driver } from '../driver-api/drivers/mlx5.ts';
import { ContractError } from '../emulator/errors.ts';
import { Host } from '../driver-api/host/host.ts';
import { Link, randomImpairment } from '../driver-api/host/link.ts';
import { MAC_A, MAC_B } from '../driver-api/host/pair.ts';
import { Rng } from '../driver-api/host/rng.ts';
import { Sim } from '../driver-api/host/sim.ts';
import type { TcpSocket } from '../driver-api/host/tcp.ts';
import type { TlsKernelHelpers } from '../driver-api/ops.ts';

/** Kernel helpers for a host without the TLS stack: RX goes to the host, any TLS call is a contract bug. */
function plainKernel(host: () => Host): TlsKernelHelpers {
  const noTls = (): never => {
    throw new ContractError('a TLS helper was called on a connection without TLS', { field: 'kernel' });
  };
  return {
    tlsOffloadRxResyncRequest: noTls, tlsOffloadRxResyncAsyncRequestStart: noTls, tlsOffloadRxResyncAsyncRequestEnd: noTls,
    tlsOffloadRxResyncAsyncRequestCancel: noTls, tlsOffloadRxResyncSetType: noTls, tlsOffloadTxResyncRequest: noTls,
    tlsOffloadTxResyncPending: noTls, tlsGetRecord: noTls, tlsEncryptSkb: noTls,
    netifReceiveSkb: (skb) => host().netifReceiveSkb(skb),
  };
}

test('plain TCP through two mlx5 NetDevices: 500 kB each way byte-exact with loss and TSO, no TLS counters move', (t) => {
  const sim = new Sim();
  const rng = new Rng(12);
  const link = new Link(sim, { latencyUs: 80, rateBytesPerSec: 1_250_000_000, impair: randomImpairment(rng.fork('link'), { loss: 0.03, reorder: 0.03 }) });
  const nicA = new Nic({ backend: nodeBackend });
  const nicB = new Nic({ backend: nodeBackend });
  const a = new Host(sim, rng.fork('a'), { ip: '10.1.0.1', mac: MAC_A, peerMac: MAC_B, tcp: { tso: true } });
  const b = new Host(sim, rng.fork('b'), { ip: '10.1.0.2', mac: MAC_B, peerMac: MAC_A });
  const sched = (d: number, fn: () => void) => void sim.schedule(d, fn);
  a.attachNetdev(mlx5Driver.probe(nicA, plainKernel(() => a), { name: 'mlx5_a', schedule: sched }));
  b.attachNetdev(mlx5Driver.probe(nicB, plainKernel(() => b), { name: 'mlx5_b', schedule: sched }));
  link.attach(nicA, nicB);
  nicA.attachWire(link.sender('a'));
  nicB.attachWire(link.sender('b'));

  const up = new Rng(1).bytes(500_000);
  const down = new Rng(2).bytes(500_000);
  const gotUp: Uint8Array[] = [];
  const gotDown: Uint8Array[] = [];
  b.listen(8080, (s) => {
    s.onData((d) => gotUp.push(d.slice()));
    s.write(down);
    s.close();
  });
  const c: TcpSocket = a.connect(b.ip, 8080);
  c.onData((d) => gotDown.push(d.slice()));
  c.onEstablished(() => {
    c.write(up);
    c.close();
  });
  const run = sim.run({ maxEvents: 1_000_000 });
  t.is(run.reason, 'idle');
  const h = (parts: Uint8Array[]) => createHash('sha256').update(Buffer.concat(parts)).digest('hex');
  t.is(h(gotUp), createHash('sha256').update(up).digest('hex'));
  t.is(h(gotDown), createHash('sha256').update(down).digest('hex'));
  t.true(a.counters.RetransSegs > 0, 'loss exercised retransmission through the device');
  // TSO super-segments were cut by the NIC: no frame on the wire beyond MTU
  t.true(link.log.every((e) => e.len <= 1514));
  t.true(nicA.stats.txFrames > 340);
  for (const nic of [nicA, nicB]) {
    t.is(nic.counters.tx_tls_encrypted_packets, 0);
    t.is(nic.counters.rx_tls_decrypted_packets, 0);
    t.is(nic.counters.tx_tls_ooo, 0);
    t.is(nic.stats.rxBadChecksum, 0);
  }
});
