// The CLI writes its report in pieces (a connection at a time), so that a capture of many connections never
// has its whole report as one object or string: the pieces must make exactly what JSON.stringify makes of
// the report object (`--json` is a stable interface), with connections, with none, and under a scenario.
import test from 'ava';
import { join } from 'node:path';
import { mlx5Driver } from '../driver-api/drivers/index.ts';
import { CAPTURES_DIR, loadManifest } from '../fixtures/manifest.ts';
import { replay } from '../cli/replay/engine.ts';
import { replayScenarioSchema } from '../cli/replay/scenario.ts';
import { jsonPieces, textPieces, toJson } from '../cli/report.ts';

const fixture = (name: string) => {
  const m = loadManifest(join(CAPTURES_DIR, `${name}.json`));
  return { capture: join(m.dir, m.capture), keylog: join(m.dir, m.keylog) };
};

const cases = {
  'many connections': { ...fixture('tls12-many-v4'), local: null, flows: 14 },
  'no connection (--local names no end)': { ...fixture('tls12-aes128-v4'), local: { ip: '192.0.2.1', port: null }, flows: 0 },
  'a scenario': {
    ...fixture('tls12-aes128-v4'), local: null, flows: 1,
    scenario: replayScenarioSchema.parse({ name: 'drops', seed: 3, impairments: [{ kind: 'drop', flow: 0, record: 2 }, { kind: 'random', loss: 0.05 }] }),
  },
};

for (const [name, c] of Object.entries(cases)) {
  test(`--json in pieces is JSON.stringify of the report: ${name}`, async (t) => {
    const { flows: _, ...opts } = c;
    const r = await replay({ ...opts, driver: mlx5Driver, tls13: false });
    t.is(r.flows.length, c.flows);
    t.is(r.scenario !== undefined, name === 'a scenario');
    const pieces = [...jsonPieces(r)];
    t.true(pieces.length >= r.flows.length + 2);
    t.is(pieces.join(''), JSON.stringify(toJson(r), null, 2) + '\n');
    const text = [...textPieces(r, 'mlx5')].join('');
    t.true(text.endsWith('\n') && !text.endsWith('\n\n'));
    // One table row per connection, numbered, whatever the rows' widths.
    r.flows.forEach((f, i) => t.regex(text, new RegExp(`^${i + 1} +${f.local.replaceAll('.', '\\.')} +`, 'm')));
  });
}
