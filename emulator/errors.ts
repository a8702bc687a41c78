// Typed errors with a place (STYLE principle 7). Every error a user can provoke with bad input is one of
// these; `where` says where in the input (file offset, packet number, flow, field path).

export type ErrorPlace = {
  file?: string;
  offset?: number;
  packet?: number;
  flow?: string;
  field?: string;
};

function describePlace(where: ErrorPlace): string {
  const parts: string[] = [];
  if (where.file !== undefined) parts.push(where.file);
  if (where.packet !== undefined) parts.push(`packet ${where.packet}`);
  if (where.offset !== undefined) parts.push(`offset ${where.offset}`);
  if (where.flow !== undefined) parts.push(`flow ${where.flow}`);
  if (where.field !== undefined) parts.push(`field ${where.field}`);
  return parts.join(', ');
}

/**
 * Marks a tlsnic error from any copy of this module. A driver module written in TypeScript that imports our
 * sources, loaded by the bundled CLI (`node --import=tsx dist/tlsnic.mjs run --driver my-driver.ts`), has
 * classes of its own: without this its ConfigError was not `instanceof ConfigError` in the CLI, and a typed
 * error read as an internal one (exit 70 and a stack).
 */
const BRAND = Symbol.for('tlsnic.TlsnicError');

export abstract class TlsnicError extends Error {
  abstract readonly code: string;
  readonly where: ErrorPlace;
  constructor(message: string, where: ErrorPlace = {}) {
    const place = describePlace(where);
    super(place ? `${message} (at ${place})` : message);
    this.where = where;
    this.name = new.target.name;
  }

  /** `e instanceof ConfigError` holds for a ConfigError (or a subclass) of another copy too: by class name. */
  static override [Symbol.hasInstance](x: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, x)) return true;
    if (typeof x !== 'object' || x === null || !(BRAND in x)) return false;
    for (let p = Object.getPrototypeOf(x); p !== null; p = Object.getPrototypeOf(p)) {
      if (Object.hasOwn(p, 'constructor') && (p.constructor as { name?: unknown }).name === this.name) return true;
    }
    return false;
  }
}
Object.defineProperty(TlsnicError.prototype, BRAND, { value: true });

/** Malformed packet bytes: an Ethernet/IP/TCP header that does not fit or does not parse. */
export class WireError extends TlsnicError {
  readonly code = 'EWIRE';
}

/** A capture file that is not one, is truncated, or uses something we do not read. */
export class CaptureError extends TlsnicError {
  readonly code = 'ECAPTURE';
}

/** TLS record or key material that does not follow the protocol (bad length, bad version, bad key log). */
export class TlsError extends TlsnicError {
  readonly code = 'ETLS';
}

/** AEAD misuse or authentication failure inside the crypto engine. */
export class CryptoError extends TlsnicError {
  readonly code = 'ECRYPTO';
}

/** A caller broke the driver/device/stack contract (illegal state transition, bad argument). */
export class ContractError extends TlsnicError {
  readonly code = 'ECONTRACT';
}

/** A scenario or config file that does not validate. */
export class ConfigError extends TlsnicError {
  readonly code = 'ECONFIG';
}

/**
 * An output file that cannot be opened or written (a missing directory, no permission, a full disk), as the
 * ConfigError a bad path is: what failed, the file, and for a command-line option the flag that named it.
 */
export function outputFileError(e: unknown, path: string, field?: string): ConfigError {
  const code = (e as NodeJS.ErrnoException)?.code;
  const why = code ? `${code} (${(e as Error).message.replace(/^[A-Z]+: /, '').replace(/, \w+ '.*'$/, '')})` : String((e as Error)?.message ?? e);
  return new ConfigError(`cannot write ${path}: ${why}`, { file: path, ...(field ? { field } : {}) });
}

/** `op` on output file `path` (named by option `field`, if any): a failing fs call becomes the ConfigError naming it. */
export function onOutput<T>(path: string, field: string | undefined, op: () => T): T {
  try {
    return op();
  } catch (e) {
    throw outputFileError(e, path, field);
  }
}
