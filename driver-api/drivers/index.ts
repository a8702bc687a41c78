// Driver loading: a built-in name or a module path whose default export is a DriverModule.
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { ConfigError } from '../../emulator/errors.ts';
import type { DriverModule } from './common.ts';
import { mlx5Driver } from './mlx5.ts';
import { nfpDriver } from './nfp.ts';

export type { DriverModule, ProbeOptions } from './common.ts';
export { mlx5Driver, nfpDriver };
export { faultyDriver, FAULT_KINDS, type FaultKind, type FaultPlan, type FaultSpec, type FaultTally, type FaultyDriver, type InjectedFault } from './faulty.ts';

export const BUILTIN_DRIVERS: Readonly<Record<string, DriverModule>> = { mlx5: mlx5Driver, nfp: nfpDriver };

export async function loadDriver(nameOrPath: string): Promise<DriverModule> {
  const builtin = BUILTIN_DRIVERS[nameOrPath];
  if (builtin) return builtin;
  let mod: { default?: unknown };
  try {
    mod = await import(pathToFileURL(resolve(nameOrPath)).href);
  } catch (e) {
    throw new ConfigError(`cannot load driver module: ${(e as Error).message}`, { file: nameOrPath });
  }
  const d = mod.default as Partial<DriverModule> | undefined;
  if (!d || typeof d.probe !== 'function' || typeof d.name !== 'string') {
    throw new ConfigError('driver module must default-export { name: string, probe(nic, kernel, opts) }', { file: nameOrPath });
  }
  return d as DriverModule;
}
