// Issue 8: the fuzz classes as seeded property tests (a few hundred inputs each; `make fuzz` runs 1e6).
// Each input is either accepted or rejected with a typed error that says what and where; nothing crashes,
// and the device and stack never deliver or flag a byte that was not what the sender sealed.
import test from 'ava';
import fc from 'fast-check';
import { Rng } from '../driver-api/host/rng.ts';
import { allTargets, mutate } from '../fuzz/targets.ts';

const RUNS: Record<string, number> = { capture: 2000, packet: 300, record: 300, keylog: 2000, crypto_info: 2000, scenario: 1000, replay_scenario: 60, replay_capture: 60, replay_queues: 30, scenario_run: 100 };

for (const target of allTargets()) {
  test(`fuzz ${target.name}: ${target.input}: accepted or a typed rejection, invariants hold`, async (t) => {
    const seen = { accepted: 0, rejected: 0 };
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 0xffffffff }), async (seed) => {
        seen[await target.one(new Rng(seed))]++;
      }),
      { numRuns: RUNS[target.name] ?? 300, seed: 20261123 },
    );
    t.log(`${seen.accepted} accepted, ${seen.rejected} rejected`);
    // Both outcomes occur: the generator reaches past the first validity check and also breaks inputs. (A
    // damaged frame is no error, and a damaged capture almost never is one for the replay: it goes on.)
    if (!['packet', 'replay_capture', 'replay_queues'].includes(target.name)) t.true(seen.accepted > 0 && seen.rejected > 0);
    else t.true(seen.accepted > 0);
  });
}

test('the byte mutator changes its input (a fuzz class that mutated nothing would prove nothing)', (t) => {
  const src = new Rng(5).bytes(100);
  let changed = 0;
  for (let i = 0; i < 200; i++) if (Buffer.compare(Buffer.from(mutate(new Rng(i), src)), Buffer.from(src)) !== 0) changed++;
  t.true(changed >= 190, `${changed}/200 mutations changed the input`);
});
