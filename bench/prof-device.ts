// Profile helper (not a benchmark): run the device TX or RX path alone for a while, for `node --cpu-prof`.
// usage: node --cpu-prof --import=tsx bench/prof-device.ts tx|rx [MiB] [rounds] [record bytes, default 16384]
import { devicePass } from './device-pass.ts';

const which = process.argv[2] === 'rx' ? 'rx' : 'tx';
const mib = Number(process.argv[3] ?? 16);
const rounds = Number(process.argv[4] ?? 6);
const pass = devicePass(which, mib << 20, Number(process.argv[5] ?? 16384));
for (let round = 0; round < rounds; round++) {
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  pass.run();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  // CPU time as well as wall time: on a shared machine the wall clock also counts time spent descheduled.
  const cpu = (c.user + c.system) / 1e6;
  console.log(`${which} ${(pass.streamBytes / s / 1e6).toFixed(0)} MB/s wall, ${(pass.streamBytes / cpu / 1e6).toFixed(0)} MB/s cpu`);
}
