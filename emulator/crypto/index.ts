import { ConfigError } from '../errors.ts';
import type { AeadBackend } from './aead.ts';
import { nobleBackend } from './noble.ts';
import { nodeBackend } from './node.ts';

export * from './aead.ts';
export { nodeBackend } from './node.ts';
export { nobleBackend } from './noble.ts';

export type BackendName = AeadBackend['name'];
export const BACKEND_NAMES: readonly BackendName[] = ['node', 'noble'];

/** The backend a CLI flag or scenario names ('node' or 'noble'); ConfigError for anything else. */
export function backendByName(name: string): AeadBackend {
  if (name === 'node') return nodeBackend;
  if (name === 'noble') return nobleBackend;
  throw new ConfigError(`unknown crypto backend '${name}', expected one of ${BACKEND_NAMES.join(', ')}`, { field: 'backend' });
}
