// The RX sync watcher the scenario runner and `replay --scenario` share, on hand-made NIC events.
import test from 'ava';
import type { NicEvent } from '../emulator/nic/types.ts';
import { RxSyncWatch } from '../testbed/recovery.ts';

test('a loss opens one episode until the next decrypted packet; hints record how far the device had received past them', (t) => {
  let now = 0;
  const starts = new Map([[1000, 0], [2000, 1], [3000, 2]]);
  const w = new RxSyncWatch(() => now, (seq) => starts.get(seq) ?? -1, { decryptedTimes: true });
  const rx = (seq: number, len: number, decrypted: boolean): NicEvent => ({ kind: 'rx', ctx: 0, seq, len, decrypted });
  const events: Array<[number, NicEvent]> = [
    [1, rx(1000, 500, true)],
    [2, { kind: 'rx-lost', ctx: 0, seq: 2100, reason: 'hole with a header' }],
    [3, rx(2100, 500, false)],
    [4, { kind: 'rx-lost', ctx: 0, seq: 2600, reason: 'again' }], // still the same episode
    [5, rx(2600, 900, false)], // the device has now received up to 3500
    [6, { kind: 'rx-resync', ctx: 0, seq: 3000, recSeq: 2n, result: 'ok' }],
    [7, { kind: 'rx-resync', ctx: 0, seq: 4242, recSeq: 9n, result: 'skip' }],
    [8, rx(3500, 500, true)],
    [9, { kind: 'rx-lost', ctx: 0, seq: 4000, reason: 'later' }],
  ];
  for (const [at, ev] of events) {
    now = at;
    w.onEvent(ev);
  }
  t.deepEqual(w.episodes, [
    { lostSeq: 2100, lostAtUs: 2, recoveredSeq: 3500, recoveredAtUs: 8, receivedAfter: 1900 },
    { lostSeq: 4000, lostAtUs: 9, recoveredSeq: null, recoveredAtUs: null, receivedAfter: 0 },
  ]);
  t.deepEqual(w.hints, [
    { atUs: 6, record: 2, result: 'ok', passedBytes: 500 },
    { atUs: 7, record: -1, result: 'skip', passedBytes: 0 },
  ]);
  t.deepEqual(w.decryptedAtUs, [1, 8]);
  t.is(new RxSyncWatch(() => 0, () => -1).decryptedAtUs, null, 'decrypted times only when asked for');
});
