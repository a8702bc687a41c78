import test from 'ava';
import { WireError } from '../emulator/errors.ts';

test('typed errors carry their place in the message', (t) => {
  const e = new WireError('TCP data offset 3 is below 5', { packet: 7, offset: 46 });
  t.is(e.code, 'EWIRE');
  t.is(e.name, 'WireError');
  t.is(e.message, 'TCP data offset 3 is below 5 (at packet 7, offset 46)');
  t.deepEqual(e.where, { packet: 7, offset: 46 });
});
