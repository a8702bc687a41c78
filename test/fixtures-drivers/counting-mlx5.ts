// A third-party driver module in TypeScript that wraps the reference mlx5 driver and counts the tlsdev_ops
// calls the stack makes, printing them to stderr when the process (or a replay worker thread) exits. Loadable
// where node imports TypeScript: the CLI from source with tsx, or the bundle run with `--import=tsx`.
import { mlx5Driver, type DriverModule } from '../../driver-api/drivers/index.ts';
import type { TlsDevOps } from '../../driver-api/ops.ts';

const calls = { tls_dev_add: 0, tls_dev_del: 0, tls_dev_resync: 0 };
process.on('exit', () => {
  process.stderr.write(`counting-mlx5: ${Object.entries(calls).map(([k, v]) => `${k}=${v}`).join(' ')}\n`);
});

const countingMlx5: DriverModule = {
  name: 'counting-mlx5',
  probe(nic, kernel, opts) {
    const dev = mlx5Driver.probe(nic, kernel, opts);
    const inner = dev.tlsdevOps!;
    const tlsdevOps: TlsDevOps = {
      tlsDevAdd: (...a) => (calls.tls_dev_add++, inner.tlsDevAdd(...a)),
      tlsDevDel: (...a) => (calls.tls_dev_del++, inner.tlsDevDel(...a)),
      tlsDevResync: (...a) => (calls.tls_dev_resync++, inner.tlsDevResync(...a)),
    };
    // The stack calls the ops of the device it holds: hand it a device whose ops are the counting ones.
    return { ...dev, tlsdevOps, isUp: () => dev.isUp(), startXmit: (skb) => dev.startXmit(skb) };
  },
};
export default countingMlx5;
