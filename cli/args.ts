// Command-line parsing for `tlsnic`. Flag names are a stable interface (scripts depend on them).
import { ConfigError } from '../emulator/errors.ts';
import type { TimeWindow } from '../testbed/timeline.ts';

export type ReplayArgs = {
  command: 'replay';
  capture: string;
  keylog: string | null;
  local: string | null;
  driver: string;
  scenario: string | null;
  tls13: boolean;
  plaintextDir: string | null;
  out: string | null;
  timeline: string | null;
  /** --timeline-window FROM:TO: draw only what happened between these capture times (seconds). */
  timelineWindow: TimeWindow | null;
  json: boolean;
  /** One JSON line per connection as its report becomes final, then a summary line (memory independent of the connection count). */
  jsonLines: boolean;
  /** Receive queues, one worker thread each (RSS spreads connections over them); 1 = one thread. */
  workers: number;
};

export type RunArgs = {
  command: 'run';
  scenario: string;
  json: boolean;
  /** Soak scenarios: number of flows (overrides the file's soak.flows). */
  flows: number | null;
  /** Soak time mode: run random worlds until this many seconds have passed (null: by flow count). */
  seconds: number | null;
  /** Soak seed (null: the scenario's). */
  seed: number | null;
  /** --driver: run the scenario with this driver instead of its profiles (mlx5, nfp, or a module path from the working directory). */
  driver: string | null;
  /** --out: write what the link carried as a pcapng (a scenario of one profile, not a soak). */
  out: string | null;
  /** --timeline: draw the world as an HTML page (a scenario of one profile, not a soak). */
  timeline: string | null;
  /** --timeline-window FROM:TO: draw only what happened between these virtual times (seconds). */
  timelineWindow: TimeWindow | null;
};

export type HelpArgs = { command: 'help'; topic?: string };
export type VersionArgs = { command: 'version' };
export type ParsedArgs = ReplayArgs | RunArgs | HelpArgs | VersionArgs;

export const USAGE = `usage:
  tlsnic replay <capture> --keylog <file> [--local <ip>[:port]] [--driver mlx5|nfp|<module path>]
                [--scenario <file>] [--tls13] [--plaintext-dir <dir>] [--out <pcap>] [--timeline <html>] [--json]
                [--json-lines] [--timeline-window <from>:<to>] [--workers <n>]
  tlsnic run <scenario.json> [--json] [--flows <n>] [--seconds <s>] [--seed <n>] [--driver mlx5|nfp|<module path>]
             [--out <world.pcapng>] [--timeline <html>] [--timeline-window <from>:<to>]
  tlsnic help
  tlsnic --version

run: runs a scenario (fixtures/scenarios/*.json) and checks its expectations; exit 0 when they hold, 1 when
not, 2 on a bad scenario. --flows and --seconds size a soak scenario (refused on a single run); --seed
reseeds either. A driver profile
{ "name": "module", "path": "./my-driver.mjs" } runs your own driver (path relative to the scenario file);
--driver runs any scenario with one driver instead of its profiles (a module path from the working directory).
--out writes every frame the link carried, with what the link did to it, as a pcapng (one profile, no soak).
--timeline draws each direction of each connection as --timeline does for a replay: what the sender's device
sent, what the link did, what the receiver's device decrypted, its losses of sync and resyncs, and the driver
calls (one profile; of a soak, one world: the first that failed, else the first with a loss of sync never
recovered, else the one with the longest recovery). --timeline-window FROM:TO draws only that stretch of
the world's virtual time (seconds; FROM: to the end).

Replays the TLS connections of a capture through the emulated NIC of one host (by default, for each
connection, the side that accepted it) and prints what the offload did.`;

const VALUE_FLAGS = new Set(['--keylog', '--local', '--driver', '--scenario', '--plaintext-dir', '--out', '--timeline', '--timeline-window', '--workers']);
const BOOL_FLAGS = new Set(['--tls13', '--json', '--json-lines']);

export function parseArgs(argv: readonly string[]): ParsedArgs {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') return { command: 'help' };
  if (cmd === '--version' || cmd === 'version') return { command: 'version' };
  if (cmd === 'run') return parseRun(rest);
  if (cmd !== 'replay') throw new ConfigError(`unknown command '${cmd}' (try: tlsnic help)`);
  const values = new Map<string, string>();
  const bools = new Set<string>();
  const positional: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    let a = rest[i]!;
    let inline: string | undefined;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      inline = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    if (VALUE_FLAGS.has(a)) {
      const v = inline ?? rest[++i];
      if (v === undefined || (inline === undefined && v.startsWith('--'))) throw new ConfigError(`${a} needs a value`, { field: a });
      values.set(a, v);
    } else if (BOOL_FLAGS.has(a)) {
      if (inline !== undefined) throw new ConfigError(`${a} takes no value`, { field: a });
      bools.add(a);
    } else if (a.startsWith('-')) {
      throw new ConfigError(`unknown option ${a} for replay`, { field: a });
    } else {
      positional.push(a);
    }
  }
  if (positional.length !== 1) throw new ConfigError(`replay takes exactly one capture file, got ${positional.length}`);
  return {
    command: 'replay',
    capture: positional[0]!,
    keylog: values.get('--keylog') ?? null,
    local: values.get('--local') ?? null,
    driver: values.get('--driver') ?? 'mlx5',
    scenario: values.get('--scenario') ?? null,
    tls13: bools.has('--tls13'),
    plaintextDir: values.get('--plaintext-dir') ?? null,
    out: values.get('--out') ?? null,
    timeline: values.get('--timeline') ?? null,
    timelineWindow: parseTimeWindow(values.get('--timeline-window')),
    json: bools.has('--json'),
    jsonLines: bools.has('--json-lines'),
    workers: parseWorkers(values.get('--workers')),
  };
}

/** `FROM:TO` in seconds, either side may be left out ("90:", ":2.5"); FROM below TO. */
function parseTimeWindow(v: string | undefined, clock = 'capture time'): TimeWindow | null {
  if (v === undefined) return null;
  const m = /^(\d+(?:\.\d+)?)?:(\d+(?:\.\d+)?)?$/.exec(v);
  const from = m?.[1] !== undefined ? Number(m[1]) : 0;
  const to = m?.[2] !== undefined ? Number(m[2]) : Infinity;
  if (!m || !(from < to)) {
    throw new ConfigError(`--timeline-window needs FROM:TO in seconds of ${clock}, FROM below TO (e.g. 12.5:13, or 90: to the end), got '${v}'`, { field: '--timeline-window' });
  }
  return { from, to };
}

/** Worker threads are not free (each reads the whole capture): more than this is a typo, not a plan. */
export const MAX_WORKERS = 256;

function parseWorkers(v: string | undefined): number {
  if (v === undefined) return 1;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isInteger(n) || n < 1 || n > MAX_WORKERS) {
    throw new ConfigError(`--workers needs an integer from 1 to ${MAX_WORKERS}, got '${v}'`, { field: '--workers' });
  }
  return n;
}

function parseRun(rest: readonly string[]): RunArgs {
  let json = false;
  let driver: string | null = null;
  let out: string | null = null;
  let timeline: string | null = null;
  let window: string | undefined;
  const ints = new Map<string, number>();
  const positional: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    const name = a.includes('=') ? a.slice(0, a.indexOf('=')) : a;
    const spec = RUN_INT_FLAGS[name];
    if (a === '--json') json = true;
    else if (name === '--driver' || name === '--out' || name === '--timeline' || name === '--timeline-window') {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : rest[++i];
      if (!v || (!a.includes('=') && v.startsWith('--'))) {
        throw new ConfigError(name === '--driver' ? '--driver needs a value: mlx5, nfp or a module path' : name === '--timeline-window' ? '--timeline-window needs FROM:TO' : `${name} needs a file name`, { field: name });
      }
      if (name === '--driver') driver = v;
      else if (name === '--out') out = v;
      else if (name === '--timeline') timeline = v;
      else window = v;
    } else if (spec) {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : rest[++i];
      if (v === undefined || !/^\d{1,10}$/.test(v) || Number(v) < spec.min || Number(v) > spec.max) {
        throw new ConfigError(`${name} needs an integer in [${spec.min}, ${spec.max}], got ${v ?? 'nothing'}`, { field: name });
      }
      ints.set(name, Number(v));
    } else if (a.startsWith('-')) throw new ConfigError(`unknown option ${a} for run`, { field: a });
    else positional.push(a);
  }
  if (positional.length !== 1) throw new ConfigError(`run takes exactly one scenario file, got ${positional.length}`);
  return {
    command: 'run', scenario: positional[0]!, json, flows: ints.get('--flows') ?? null, seconds: ints.get('--seconds') ?? null, seed: ints.get('--seed') ?? null,
    driver, out, timeline, timelineWindow: parseTimeWindow(window, 'virtual time'),
  };
}

const RUN_INT_FLAGS: Record<string, { min: number; max: number }> = {
  '--flows': { min: 1, max: 9_999_999 },
  '--seconds': { min: 1, max: 10_000_000 },
  '--seed': { min: 0, max: 0xffff_ffff },
};

/** An integer environment knob, null when unset; out of range is a ConfigError (exit 2). */
export function envInt(name: string, min: number, max: number): number | null {
  const v = process.env[name];
  if (v === undefined || v === '') return null;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new ConfigError(`${name} must be an integer in [${min}, ${max}], got ${v}`, { field: name });
  return Number(v);
}
