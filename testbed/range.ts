// A counter expectation (schema.ts: rangeSchema), checked where zod is not loaded: a replay without a
// scenario file must not load it (cli/replay/scenario-schema.ts says why).

/** An exact value or an inclusive range, either end open. */
export type Range = number | { min?: number | undefined; max?: number | undefined };

export function inRange(v: number, r: Range): boolean {
  return typeof r === 'number' ? v === r : (r.min === undefined || v >= r.min) && (r.max === undefined || v <= r.max);
}

export function showRange(r: Range): string {
  return typeof r === 'number' ? `${r}` : `[${r.min ?? 0}, ${r.max ?? '∞'}]`;
}

/**
 * Each expected value against what was measured: one failure line `<label> <name> = <value>, expected <range>`
 * for each outside its range (the counters, tls_stat and contract-violation expectations of `run` and `replay
 * --scenario`).
 */
export function checkRanges(label: string, expected: Readonly<Record<string, Range | undefined>> | undefined, value: (name: string) => number, fails: string[]): void {
  for (const [name, r] of Object.entries(expected ?? {})) {
    if (r === undefined) continue;
    const v = value(name);
    if (!inRange(v, r)) fails.push(`${label} ${name} = ${v}, expected ${showRange(r)}`);
  }
}
