// The scenario language: a position-tracking JSON parser and zod validation whose errors say
// file:line:col and the field path; every scenario in the library validates.
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { ConfigError } from '../emulator/errors.ts';
import { parseJsonWithPositions } from '../testbed/json.ts';
import { ScenarioError, parseScenario, validateScenario } from '../testbed/load.ts';
import { runScenarioObject } from '../testbed/runner.ts';

const base = `{
  "name": "t",
  "driver": { "name": "mlx5" },
  "traffic": { "records": 4, "recordSize": 1000 }`;

function err(text: string): ConfigError {
  const e = (() => {
    try {
      parseScenario(text, 's.json');
    } catch (x) {
      return x;
    }
    return null;
  })();
  if (!(e instanceof ConfigError)) throw new Error(`expected a ConfigError, got ${String(e)}`);
  return e;
}

/** line:col of the first occurrence of `needle` (1-based), computed independently of the parser. */
function lc(text: string, needle: string): { line: number; col: number; offset: number } {
  const offset = text.indexOf(needle);
  const before = text.slice(0, offset).split('\n');
  return { line: before.length, col: before[before.length - 1]!.length + 1, offset };
}

test('JSON parser: values equal JSON.parse, positions of values and keys are line:col', (t) => {
  const text = '{\n  "a": [1, -2.5e3, "x\\u0041\\n"],\n  "b": {"c": null, "d": true}\n}';
  const p = parseJsonWithPositions(text);
  t.deepEqual(p.value, JSON.parse(text));
  t.deepEqual(p.valueAt.get(['a', 1].join('\u0000')), lc(text, '-2.5e3'));
  t.deepEqual(p.valueAt.get(['a', 2].join('\u0000')), lc(text, '"x'));
  t.deepEqual(p.keyAt.get(['b', 'd'].join('\u0000')), lc(text, '"d"'));
  t.deepEqual(p.valueAt.get(['b', 'd'].join('\u0000')), lc(text, 'true'));
});

test('JSON syntax errors are ConfigErrors at line:col', (t) => {
  for (const [text, where, what] of [
    ['{"a": 1,\n  "b" 2}', 's.json:2:7', /expected ':'/],
    ['{"a": [1, 2,]}', 's.json:1:13', /expected a value/],
    ['{"a": "unterminated', 's.json:1:7', /unterminated string/],
    ['{"a": 1} x', 's.json:1:10', /after the top-level value/],
    ['{"a": 1, "a": 2}', 's.json:1:10', /duplicate key "a"/],
    ['', 's.json:1:1', /end of input/],
  ] as const) {
    const e = err(text);
    t.true(e.message.startsWith(`${where}: JSON syntax`), e.message);
    t.regex(e.message, what);
  }
});

test('validation errors name the field path and point at it', (t) => {
  let text = `${base},\n  "impairments": [{ "kind": "drop", "record": "3" }]\n}`;
  let e = err(text);
  t.true(e instanceof ScenarioError);
  let at = lc(text, '"3"');
  t.true(e.message.startsWith(`s.json:${at.line}:${at.col}: impairments[0].record: `), e.message);
  t.regex(e.message, /expected number/);
  t.is(e.where.offset, at.offset);
  t.is(e.where.field, 'impairments[0].record');
  text = `${base},\n  "impairments": [{ "kind": "dorp", "record": 3 }]\n}`;
  e = err(text);
  at = lc(text, '"dorp"');
  t.true(e.message.startsWith(`s.json:${at.line}:${at.col}: impairments[0].kind: `), e.message);
  t.regex(e.message, /'drop'/);
  text = base.replace('"name": "mlx5"', '"name": "mlx5", "psvDelay": 5') + '\n}';
  e = err(text);
  at = lc(text, '"psvDelay"');
  t.true(e.message.startsWith(`s.json:${at.line}:${at.col}: driver.psvDelay: unknown field "psvDelay"`), e.message);
  e = err(`${base},\n  "expect": { "counters": { "b": { "rx_tls_resync_ok": 1 } } }\n}`);
  t.regex(e.message, /expect\.counters\.b\.rx_tls_resync_ok: unknown field/);
  text = `${base},\n  "expect": { "recoveryRecords": { "min": 5, "max": 2 } }\n}`;
  e = err(text);
  at = lc(text, '{ "min"');
  t.true(e.message.startsWith(`s.json:${at.line}:${at.col}: expect.recoveryRecords: min must not exceed max`), e.message);
  text = base.replace('"records": 4, ', '') + '\n}';
  e = err(text);
  at = lc(text, '{ "recordSize"');
  t.true(e.message.startsWith(`s.json:${at.line}:${at.col}: traffic: give either writes, or records with recordSize`), e.message);
  // Several problems: all are listed.
  e = err(`{ "name": "", "driver": { "name": "nfp", "rxResyncType": "async" }, "traffic": { "writes": [0] } }`);
  t.is((e as ScenarioError).issues.length, 3);
});

test('an impairment naming a record the traffic does not have is a ConfigError with its field', (t) => {
  const s = validateScenario({ name: 'x', driver: { name: 'nfp' }, traffic: { records: 3, recordSize: 100 }, impairments: [{ kind: 'drop', record: 3 }] });
  const e = t.throws(() => runScenarioObject(s), { instanceOf: ConfigError });
  t.is(e?.where.field, 'impairments[0].record');
  t.regex(e?.message ?? '', /record 3 does not exist: direction a>b carries 3 records/);
});

test('every scenario in fixtures/scenarios validates and says what it is about', (t) => {
  const files = readdirSync('fixtures/scenarios').filter((f) => f.endsWith('.json'));
  t.true(files.length >= 8);
  for (const f of files) {
    const s = parseScenario(readFileSync(`fixtures/scenarios/${f}`, 'utf8'), f);
    t.is(`${s.name}.json`, f);
    t.true((s.description ?? '').length > 40, `${f} has a description`);
  }
});
