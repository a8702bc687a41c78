// Scenario files in, validated Scenario out, or a ConfigError saying `file:line:col: field.path: what`.
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { ConfigError } from '../emulator/errors.ts';
import { formatPath, parseJsonWithPositions, pathId, type ParsedJson, type Pos } from './json.ts';
import { scenarioSchema, type Scenario } from './schema.ts';

/** One validation problem: where (line:col when the input was text) and which field. */
export type ScenarioIssue = { path: string; message: string; pos: Pos | null };

/** Thrown for a scenario that does not parse or validate; `issues` lists every problem found. */
export class ScenarioError extends ConfigError {
  constructor(readonly file: string, readonly issues: ScenarioIssue[]) {
    const first = issues[0]!;
    const more = issues.length > 1 ? ` (+${issues.length - 1} more: ${issues.slice(1).map((i) => at(file, i)).join('; ')})` : '';
    super(`${at(file, first)}${more}`, { file, ...(first.pos ? { offset: first.pos.offset } : {}), field: first.path });
  }
}

function at(file: string, i: ScenarioIssue): string {
  return `${file}${i.pos ? `:${i.pos.line}:${i.pos.col}` : ''}: ${i.path}: ${i.message}`;
}

/** The deepest position we know for a path: the value itself, else its nearest parent. */
function positionFor(json: ParsedJson, path: readonly PropertyKey[], preferKey: boolean): Pos | null {
  for (let n = path.length; n >= 0; n--) {
    const id = pathId(path.slice(0, n));
    const p = (preferKey && n === path.length ? json.keyAt.get(id) : undefined) ?? json.valueAt.get(id);
    if (p) return p;
  }
  return null;
}

type AnyIssue = z.core.$ZodIssue;

/**
 * A union reports one issue list per branch; the useful one is the branch whose type matched (an object
 * given where "object or array" is allowed fails the array branch with a top-level type error).
 */
function flatten(issues: readonly AnyIssue[], prefix: readonly PropertyKey[]): AnyIssue[] {
  const out: AnyIssue[] = [];
  for (const iss of issues) {
    const path = [...prefix, ...iss.path];
    if (iss.code === 'invalid_union' && iss.errors.length > 0) {
      const typeMiss = (b: readonly AnyIssue[]) => b.length === 1 && b[0]!.code === 'invalid_type' && b[0]!.path.length === 0;
      const branch = iss.errors.find((b) => !typeMiss(b)) ?? iss.errors[0]!;
      out.push(...flatten(branch, path));
      continue;
    }
    out.push({ ...iss, path } as AnyIssue);
  }
  return out;
}

function toIssues(error: z.ZodError, json: ParsedJson | null): ScenarioIssue[] {
  const out: ScenarioIssue[] = [];
  for (const iss of flatten(error.issues as AnyIssue[], [])) {
    if (iss.code === 'unrecognized_keys') {
      // Point at each unknown key itself.
      for (const k of iss.keys) {
        const path = [...iss.path, k];
        out.push({ path: formatPath(path), message: `unknown field "${k}"`, pos: json ? positionFor(json, path, true) : null });
      }
      continue;
    }
    out.push({ path: formatPath(iss.path), message: iss.message, pos: json ? positionFor(json, iss.path, false) : null });
  }
  return out;
}

/** Validate a scenario given as an object (from code); issues carry field paths, no positions. */
export function validateScenario(input: unknown, label = '<object>'): Scenario {
  return validateWithSchema(scenarioSchema, input, label);
}

/** An object validated by `schema`, or a ScenarioError naming the field path of every problem. */
export function validateWithSchema<S extends z.ZodType>(schema: S, input: unknown, label = '<object>'): z.output<S> {
  const r = schema.safeParse(input);
  if (!r.success) throw new ScenarioError(label, toIssues(r.error, null));
  return r.data;
}

/** Parse and validate scenario JSON text; `file` names it in errors. */
export function parseScenario(text: string, file = '<input>'): Scenario {
  return parseWithSchema(scenarioSchema, text, file);
}

export function loadScenarioFile(path: string): Scenario {
  return loadWithSchema(scenarioSchema, path);
}

/** JSON text validated by `schema`, or a ScenarioError with line:col and field path of every problem. */
export function parseWithSchema<S extends z.ZodType>(schema: S, text: string, file = '<input>'): z.output<S> {
  const json = parseJsonWithPositions(text, file);
  const r = schema.safeParse(json.value);
  if (!r.success) throw new ScenarioError(file, toIssues(r.error, json));
  return r.data;
}

export function loadWithSchema<S extends z.ZodType>(schema: S, path: string): z.output<S> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read scenario: ${(e as Error).message}`, { file: path });
  }
  return parseWithSchema(schema, text, path);
}
