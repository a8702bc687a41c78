// tlsnic as a library: the device, the kernel side a driver is written against, the reference drivers,
// and the scenario testbed. `tlsnic/testbed/ava` has the ava helpers (runScenario, assertRecovered).
export { Nic } from './emulator/nic/nic.ts';
export type { NicProfile, RxCompletion, FlowTuple } from './emulator/nic/types.ts';
export { formatEthtool } from './emulator/nic/counters.ts';
/** Memory for frames you hand the NIC: their TCP checksums are summed by WebAssembly SIMD where they lie. */
export { packetMemory } from './emulator/wire/simd-sum.ts';
export * from './emulator/errors.ts';
export * from './driver-api/ops.ts';
export { TlsStack, TlsSocket, TAG_PLACEHOLDER, formatTlsStat, type ContractViolation, type DriverCall, type TlsStackEvent } from './driver-api/stack/index.ts';
export { mlx5Driver, nfpDriver, type DriverModule, type ProbeOptions } from './driver-api/drivers/index.ts';
export * from './testbed/index.ts';
