// `tlsnic run <scenario.json> [--json] [--flows N] [--seconds S] [--seed N] [--driver D] [--out F] [--timeline F]`:
// run a scenario (issue 5) and say whether its expectations hold. A `{ "name": "module", "path" }` driver is loaded from the path,
// relative to the scenario file. Exit 0 when they hold, 1 when not; bad input (unreadable or invalid
// scenario, bad option) is a ConfigError that main() turns into exit 2. --seconds and --seed drive a soak
// scenario's time mode and seed; TLSNIC_SOAK_SECONDS / TLSNIC_SOAK_SEED do the same when the flags are absent.
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError, onOutput } from '../emulator/errors.ts';
import { writeOut } from './output.ts';
import { FAULT_KINDS } from '../driver-api/drivers/faulty.ts';
import { VIOLATION_KINDS } from '../driver-api/stack/violations.ts';
import { formatRecovery } from '../testbed/ava.ts';
import { PcapngWriter } from '../emulator/capture/index.ts';
import type { LinkLogEntry } from '../driver-api/host/link.ts';
import { loadScenarioFile } from '../testbed/load.ts';
import { endedBeforeScanReach } from '../testbed/recovery.ts';
import type { DriverProfile, Scenario } from '../testbed/schema.ts';
import { loadScenarioDrivers, runScenarioObject, type ProfileRun, type RunOptions, type ScenarioResult, type WorldTimeline } from '../testbed/runner.ts';
import { leftOutNote, type TimelineMark } from '../testbed/timeline.ts';
import { BASE_PORT, HOST_IP } from '../testbed/world.ts';
import { esc, renderPage, windowText, type TimelinePage, type TimelineSection } from './timeline.ts';
import { envInt, type RunArgs } from './args.ts';

export async function runRun(args: RunArgs, out: (s: string) => void = (s) => writeOut([s])): Promise<number> {
  const file = loadScenarioFile(args.scenario);
  if (!file.soak) {
    // Flags of a soak on a single run would be silently ignored: say so instead. --seed reseeds a single run.
    if (args.flows !== null) throw new ConfigError('--flows sets a soak\'s flow count; this scenario is a single run (traffic.flows sets its connections)', { field: '--flows' });
    if (args.seconds !== null) throw new ConfigError('--seconds runs a soak for a time; this scenario is a single run', { field: '--seconds' });
  }
  // --driver: one driver instead of the file's profiles (expectByProfile then keys on its profile alone).
  const scenario: Scenario = {
    ...file,
    ...(args.driver === null ? {} : { driver: driverFlag(args.driver) }),
    ...(!file.soak && args.seed !== null ? { seed: args.seed } : {}),
  };
  const o: RunOptions = args.flows !== null ? { soakFlows: args.flows } : {};
  // Driver modules named by the scenario, loaded from paths relative to its file (--driver's: absolute).
  const drivers = await loadScenarioDrivers(scenario, dirname(args.scenario));
  if (Object.keys(drivers).length) o.drivers = drivers;
  const seconds = args.seconds ?? envInt('TLSNIC_SOAK_SECONDS', 1, 1e7);
  const seed = args.seed ?? envInt('TLSNIC_SOAK_SEED', 0, 0xffff_ffff);
  if (seconds !== null) o.soakSeconds = seconds;
  if (seed !== null) o.soakSeed = seed;
  const profiles = Array.isArray(scenario.driver) ? scenario.driver.length : 1;
  const oneProfile = (flag: '--out' | '--timeline', what: string) => {
    if (profiles !== 1) throw new ConfigError(`${flag} ${what} of one world, and this scenario runs ${profiles} driver profiles: pick one with --driver`, { field: flag });
  };
  let wire: readonly LinkLogEntry[] | null = null;
  let writer: PcapngWriter | null = null;
  let drawn: { profile: string; timeline: WorldTimeline; why: string | null } | null = null;
  let timelineFd: number | null = null;
  let result: ScenarioResult;
  if (args.timelineWindow && args.timeline === null) throw new ConfigError('--timeline-window chooses what --timeline draws: give --timeline <file> too', { field: '--timeline-window' });
  try {
    // Outputs are opened before the run: a path that cannot be written fails now (a ConfigError naming it).
    if (args.out !== null) {
      if (scenario.soak) throw new ConfigError('--out writes the wire of one world: a soak runs many', { field: '--out' });
      oneProfile('--out', 'writes the wire');
      writer = new PcapngWriter(args.out, { comment: 'tlsnic run: the two-host testbed link' });
      o.onWire = (_profile, log) => (wire = log);
    }
    if (args.timeline !== null) {
      const path = args.timeline;
      oneProfile('--timeline', 'draws the timeline');
      timelineFd = onOutput(path, '--timeline', () => openSync(path, 'w'));
      o.onTimeline = (profile, timeline, why) => (drawn = { profile, timeline, why: why ?? null });
      if (args.timelineWindow) o.timelineWindow = args.timelineWindow;
    }
    result = runScenarioObject(scenario, o);
    if (writer && wire) writeWire(writer, wire);
    const fd = timelineFd;
    if (fd !== null && drawn) {
      const page = renderPage(worldPage(args.scenario, scenario, drawn));
      onOutput(args.timeline!, '--timeline', () => writeFileSync(fd, page));
    }
  } finally {
    writer?.close();
    if (timelineFd !== null) closeSync(timelineFd);
  }
  out(args.json ? JSON.stringify(result, jsonReplacer, 2) + '\n' : formatText(result));
  return result.ok ? 0 : 1;
}

/** The world's timeline as a page: one section per direction of each connection that carried data. */
function worldPage(file: string, s: Scenario, w: { profile: string; timeline: WorldTimeline; why: string | null }): TimelinePage {
  const t = w.timeline;
  const end = (side: 'a' | 'b', port: number | null) => `${side.toUpperCase()} ${HOST_IP[side]}${port === null ? '' : `:${port}`}`;
  // A direction that carried no data (only its contexts' add and del) has nothing to draw.
  const sections = t.dirs.filter((d) => d.marks.some((m) => m.mark !== 'call')).map((d): TimelineSection => {
    const [from, to] = d.dir === 'a>b' ? (['a', 'b'] as const) : (['b', 'a'] as const);
    const port = BASE_PORT + d.flow;
    const sender = end(from, from === 'b' ? port : null);
    const receiver = end(to, to === 'b' ? port : null);
    const n = (dir: 'rx' | 'tx', mark: TimelineMark['mark']) => d.marks.filter((m) => m.dir === dir && m.mark === mark).length;
    const rxPackets = n('rx', 'decrypted') + n('rx', 'not-decrypted');
    return {
      local: receiver, remote: sender,
      heading: `connection ${d.flow}, ${sender} → ${receiver}`,
      summary: ({ lost, sync, drops }) => `RX at ${esc(to.toUpperCase())}: <b>${n('rx', 'decrypted')}</b> of ${rxPackets} packets decrypted by the device; <b class="${lost ? 'bad' : 'ok'}">${sync}</b>.
TX at ${esc(from.toUpperCase())}: ${n('tx', 'encrypted')} packets encrypted by the device, ${n('tx', 'plain')} sent as they were, ${drops} dropped.`,
      problems: d.leftOut ? [leftOutNote('direction', d.marks.length, d.leftOut)] : [],
      rxTitle: `received by ${to.toUpperCase()}'s device (${d.dir})`,
      txTitle: `sent by ${from.toUpperCase()}'s device (${d.dir})`,
      marks: d.marks,
    };
  });
  const impaired = t.dirs.some((d) => d.marks.some((m) => m.mark === 'impair'));
  return {
    title: `tlsnic run timeline — ${s.name}`,
    heading: 'tlsnic run timeline',
    about: `${file} — scenario ${s.name}, driver ${w.profile}, ${w.why ? `${w.why}; ` : ''}${sections.length} direction(s) with data, two hosts on a link (virtual time)${t.window ? ` — drawn: ${windowText(t.window, 'virtual time')} (--timeline-window; the sections count what is drawn, the counters below are the whole run's)` : ''}`,
    packetKeys: [
      ['decrypted', 'RX decrypted by the receiving device (skb->decrypted)'],
      ['not-decrypted', 'RX passed up encrypted: the stack decrypts in software'],
      ['encrypted', 'TX encrypted by the sending device'],
      ['plain', 'TX sent as it was (bytes before the offload start)'],
      ['drop', 'TX dropped by the sending device'],
    ],
    impairKey: impaired ? 'link impairment (drop, delay, duplicate, corrupt) of a segment of this direction' : null,
    sections,
    counters: [
      ['ethtool', `host A (${t.hosts.a.netdev}): ethtool -S\n${t.hosts.a.ethtool}`], ['tls-stat', `host A: /proc/net/tls_stat\n${t.hosts.a.tlsStat}`],
      ['ethtool', `host B (${t.hosts.b.netdev}): ethtool -S\n${t.hosts.b.ethtool}`], ['tls-stat', `host B: /proc/net/tls_stat\n${t.hosts.b.tlsStat}`],
    ],
  };
}

/**
 * The link's log as a pcapng: every frame at the time it entered the link (virtual µs from the epoch), with a
 * comment saying which way it went and what the link did to it. Ethernet frames between host A (10.4.0.1)
 * and B (10.4.0.2); Wireshark shows TCP and the TLS records (not their plaintext: the testbed has no handshake).
 */
function writeWire(w: PcapngWriter, log: readonly LinkLogEntry[]): void {
  for (const e of log) {
    const what = e.action === 'pass' ? 'passed' : e.action === 'drop' ? 'dropped by the link'
      : e.action === 'delay' ? `delayed, arrives at ${e.arriveAt} µs` : e.action === 'duplicate' ? 'duplicated (arrives twice)' : 'corrupted on the way';
    w.write({ data: e.frame!, tsNs: BigInt(e.t) * 1000n, comment: `${e.dir} frame ${e.index}: ${what}` });
  }
}

/** --driver's value as a profile: a built-in driver by name (its default knobs), else a module path from the working directory. */
function driverFlag(v: string): DriverProfile {
  if (v === 'mlx5') return { name: 'mlx5' };
  if (v === 'nfp') return { name: 'nfp', rxResyncType: 'driver_req' };
  return { name: 'module', path: resolve(v) };
}

/** Non-zero entries of a counter record as "name n, name n", or "none". */
function nonZero(names: readonly string[], r: Record<string, number> | null | undefined): string {
  const parts = names.filter((k) => (r?.[k] ?? 0) > 0).map((k) => `${k} ${r![k]}`);
  return parts.length ? parts.join(', ') : 'none';
}

/** What a soak did, and how to replay it. */
function soakLines(run: ProfileRun): string[] {
  const inj = (side: 'a' | 'b') => nonZero(FAULT_KINDS, run.hosts[side].faultsInjected);
  const vio = (side: 'a' | 'b') => nonZero(VIOLATION_KINDS, run.hosts[side].violationCounts);
  return [
    `    ${run.worlds > 1 ? 'soak' : 'run'}: ${run.flowCount} flows in ${run.worlds} worlds, ${run.bytes.toLocaleString('en-US')} application bytes, `
      + `${run.linkFlaps} link flaps, ${run.faultedWorlds} worlds with driver faults, ${(run.elapsedMs / 1000).toFixed(1)} s; seed ${run.seed}`
      + `${run.worlds > 1 ? ` (replay: SOAK_SEED=${run.seed}, or --seed ${run.seed} for tlsnic run)` : ''}`,
    `    faults injected: a: ${inj('a')}; b: ${inj('b')}`,
    `    contract violations reported: a: ${vio('a')}; b: ${vio('b')}`,
  ];
}

function jsonReplacer(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}

function formatText(r: ScenarioResult): string {
  const lines = [`scenario ${r.name}: ${r.ok ? 'expectations hold' : 'EXPECTATIONS FAILED'}`];
  const rec = formatRecovery(r);
  r.runs.forEach((run, i) => {
    lines.push(`  ${rec[i]}`);
    const b = run.hosts.b;
    lines.push(`    b ethtool: rx_tls_decrypted_packets ${b.ethtool.rx_tls_decrypted_packets}, rx_tls_resync_req_pkt ${b.ethtool.rx_tls_resync_req_pkt}, `
      + `rx_tls_resync_res_ok ${b.ethtool.rx_tls_resync_res_ok}, rx_tls_err ${b.ethtool.rx_tls_err}; tls_stat TlsRxDeviceResync ${b.tlsStat.TlsRxDeviceResync}, `
      + `TlsDecryptError ${b.tlsStat.TlsDecryptError}`);
    if (run.worlds > 1 || run.faultedWorlds > 0 || run.linkFlaps > 0) lines.push(...soakLines(run));
    if (run.worlds === 1) {
      for (const side of ['a', 'b'] as const) {
        for (const v of run.hosts[side].violations) lines.push(`    ${side} contract violation: ${v}`);
      }
      lines.push(`    b calls: ${b.calls.join(', ')}`);
      for (const f of run.flows) {
        lines.push(`    flow ${f.flow} ${f.dir}: ${f.bytesRead}/${f.bytesWritten} bytes ${f.exact ? 'exact' : f.inOrder ? 'in order (prefix)' : 'WRONG'}`
          + `${f.socketError ? `, socket ${f.socketError}` : ''}, rx ${f.rxMode}, device ${f.deviceRxState ?? '-'}, `
          + `${f.episodes.length} loss(es) of sync${f.episodes.length ? `: ${f.episodes.map((e) => `record ${e.lostRecord} -> ${e.recoveredRecord ?? `never${endedBeforeScanReach(run.resyncType, e.receivedAfter, f.scanReach) ? ` (at most ${e.receivedAfter} bytes came in a row unimpaired after it; scanning back may take ${f.scanReach})` : ''}`}`).join(', ')}` : ''}`);
      }
    }
    for (const f of run.failures) lines.push(`    FAIL ${f}`);
  });
  return lines.join('\n') + '\n';
}
