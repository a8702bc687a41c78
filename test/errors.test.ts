// Typed errors across copies of emulator/errors.ts: a TypeScript driver loaded by the bundled CLI imports
// our sources and so has classes of its own. `instanceof` goes by class name for errors of another copy.
import test from 'ava';
import * as ours from '../emulator/errors.ts';
import { ScenarioError } from '../testbed/load.ts';

// Another module URL is another module instance: the query string makes a second copy, as the bundle and
// a driver's own import of the sources are.
const COPY = '../emulator/errors.ts?another-copy';
const other = (await import(COPY)) as typeof ours;

test('an error of another copy is instanceof its class and TlsnicError here, and of no other class', (t) => {
  t.not(other.ConfigError, ours.ConfigError);
  const e = new other.ConfigError('bad option', { field: 'options.x' });
  t.true(e instanceof ours.ConfigError);
  t.true(e instanceof ours.TlsnicError);
  t.false(e instanceof ours.ContractError);
  t.false(e instanceof ours.WireError);
  t.true(new ours.WireError('short') instanceof other.WireError);
  t.true(new ours.WireError('short') instanceof other.TlsnicError);
  // A subclass of ours (testbed's ScenarioError extends ConfigError) is a ConfigError of the other copy too.
  const scenario = new ScenarioError('s.json', [{ path: 'traffic', message: 'required', pos: null }]);
  t.true(scenario instanceof other.ConfigError);
  t.false(scenario instanceof other.ContractError);
});

test('plain errors and look-alikes are not tlsnic errors', (t) => {
  t.false(new Error('x') instanceof ours.TlsnicError);
  t.false(Object.assign(new Error('x'), { name: 'ConfigError', code: 'ECONFIG', where: {} }) instanceof ours.ConfigError);
  t.false((null as unknown as object) instanceof ours.TlsnicError);
  t.false(('ConfigError' as unknown as object) instanceof ours.ConfigError);
});
