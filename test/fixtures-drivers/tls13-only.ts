// A third-party driver module in TypeScript whose probe refuses hardware it does not support, with tlsnic's
// own typed error imported from our sources, as a driver's probe fails on an unknown device: it wants a
// NIC with TLS 1.3 offload (`tlsnic replay --tls13`) and otherwise is mlx5. Under the bundled CLI with a
// TypeScript loader it has its own copy of the error classes; the CLI must still see a ConfigError.
import { mlx5Driver, type DriverModule } from '../../driver-api/drivers/index.ts';
import { ConfigError } from '../../emulator/errors.ts';

const tls13Only: DriverModule = {
  name: 'tls13-only',
  probe(nic, kernel, opts) {
    if (!nic.profile.tls13) throw new ConfigError('tls13-only: this device has no TLS 1.3 offload (run with --tls13)', { field: 'nic.profile.tls13' });
    return mlx5Driver.probe(nic, kernel, opts);
  },
};
export default tls13Only;
