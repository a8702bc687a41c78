// Human and JSON renderings of a replay result. The JSON shape is a stable interface (issue 6).
import { endedBeforeScanReach } from '../testbed/recovery.ts';
import type { FlowReport, ReplayResult } from './replay/engine.ts';

export function toJson(r: ReplayResult): object {
  return {
    flows: r.flows.map(flowJson),
    ...summaryJson(r),
  };
}

function flowJson(f: FlowReport): object {
  return {
    local: f.local,
    remote: f.remote,
    ...(f.tupleReuse ? { tupleReuse: f.tupleReuse } : {}),
    version: f.version,
    cipher: f.cipher,
    tx: {
      mode: f.tx.mode, reason: f.tx.reason, plaintextBytes: f.tx.plaintextBytes, plaintextSha256: f.tx.plaintextSha256,
      wireMatch: f.tx.wireMatch, segments: f.tx.segments, matched: f.tx.matched, mismatched: f.tx.mismatched, dropped: f.tx.dropped, notSent: f.tx.notSent,
    },
    rx: {
      mode: f.rx.mode, reason: f.rx.reason, plaintextBytes: f.rx.plaintextBytes, plaintextSha256: f.rx.plaintextSha256,
      segments: f.rx.segments, decrypted: f.rx.decrypted,
    },
    problems: f.problems,
  };
}

function summaryJson(r: ReplayResult): object {
  return {
    ethtool: r.ethtool,
    tlsStat: r.tlsStat,
    packets: r.packets,
    problems: r.problems,
    ...(r.scenario ? { scenario: r.scenario } : {}),
  };
}

/** The connection reports, in the order the connections came: `r.flows`, or where the CLI kept them (ReportSpill). */
export type Reports = Iterable<FlowReport> & { readonly length: number };

/**
 * `JSON.stringify(toJson(r), null, 2)` and a newline, in pieces of a connection each: a capture of hundreds of
 * thousands of connections has a report of hundreds of MB, which neither the object nor the string of it
 * should need to be at once.
 */
export function* jsonPieces(r: ReplayResult, flows: Reports = r.flows): Generator<string> {
  yield flows.length ? '{\n  "flows": [' : '{\n  "flows": []';
  let i = 0;
  for (const f of flows) yield `${i++ ? ',' : ''}\n    ${JSON.stringify(flowJson(f), null, 2).replaceAll('\n', '\n    ')}`;
  if (flows.length) yield '\n  ]';
  for (const [k, v] of Object.entries(summaryJson(r))) {
    // As JSON.stringify leaves out a member whose value is undefined.
    if (v !== undefined) yield `,\n  ${JSON.stringify(k)}: ${JSON.stringify(v, null, 2).replaceAll('\n', '\n  ')}`;
  }
  yield '\n}\n';
}

/** `--json-lines`: a connection's line, as its `flows` entry in `--json` with the capture packet number of its first packet. */
export function jsonLine(f: FlowReport, firstPacket: number): string {
  return JSON.stringify({ firstPacket, ...flowJson(f) });
}

/** `--json-lines`: the last line, what `--json` has besides `flows`, and how many connection lines came before. */
export function jsonLinesSummary(r: ReplayResult, connections: number): string {
  return JSON.stringify({ summary: { connections, ...summaryJson(r) } });
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function num(n: number): string {
  return n.toLocaleString('en-US');
}

export function toText(r: ReplayResult, driver: string): string {
  return [...textPieces(r, driver)].join('');
}

/** The table's row of connection #`n`. */
function row(f: FlowReport, n: number): string[] {
  return [
    String(n), f.local, f.remote, f.version ?? '-', f.cipher ?? '-', f.tx.mode, f.rx.mode,
    num(f.tx.plaintextBytes), num(f.rx.plaintextBytes), `${num(f.rx.decrypted)}/${num(f.rx.segments)} pkts`,
    f.tx.wireMatch ? `match (${num(f.tx.matched)})` : f.tx.notSent && !f.tx.mismatched ? `match (${num(f.tx.matched)}), ${num(f.tx.notSent)} not sent` : `MISMATCH ${f.tx.mismatched}`,
  ];
}

/** The notes of connection #`n`. */
function notesOf(f: FlowReport, n: number): string[] {
  return [
    ...(f.tx.reason && f.tx.mode === 'sw' ? [`  #${n} tx in software: ${f.tx.reason}`] : []),
    ...(f.rx.reason && f.rx.mode === 'sw' ? [`  #${n} rx in software: ${f.rx.reason}`] : []),
    ...f.problems.map((p) => `  #${n} ${p}`),
  ];
}

/** toText() in pieces of a line each (see jsonPieces()): the table's widths come from a first pass over the rows. */
export function* textPieces(r: ReplayResult, driver: string, flows: Reports = r.flows): Generator<string> {
  yield `tlsnic replay ${r.capture}: ${num(r.packets)} packets, ${flows.length} TLS connection(s), driver ${driver} (${r.netdev})\n\n`;
  const head = ['#', 'local', 'remote', 'tls', 'cipher', 'tx', 'rx', 'tx bytes', 'rx bytes', 'rx decrypted', 'tx wire'];
  const widths = head.map((h) => h.length);
  let noted = r.problems.length > 0;
  let n = 0;
  for (const f of flows) {
    n++;
    row(f, n).forEach((x, c) => {
      if (x.length > widths[c]!) widths[c] = x.length;
    });
    noted ||= notesOf(f, n).length > 0;
  }
  yield head.map((h, c) => pad(h, widths[c]!)).join('  ') + '\n';
  n = 0;
  for (const f of flows) yield row(f, ++n).map((x, c) => pad(x, widths[c]!)).join('  ') + '\n';
  if (noted) {
    yield '\nnotes:\n';
    for (const p of r.problems) yield `  ${p}\n`;
    n = 0;
    for (const f of flows) for (const line of notesOf(f, ++n)) yield line + '\n';
  }
  yield `\n$ ethtool -S ${r.netdev} | grep tls\n${r.ethtoolText.trimEnd()}\n`;
  yield `\n$ cat /proc/net/tls_stat\n${r.tlsStatText.trimEnd()}\n`;
  if (r.scenario) yield ['', ...scenarioText(r)].join('\n') + '\n';
}

/** The scenario section: what each impairment did, sync lost and regained per flow, the verdict. */
function scenarioText(r: ReplayResult): string[] {
  const s = r.scenario!;
  const out = [`scenario ${s.name} (seed ${s.seed}): ${s.failures.length ? 'EXPECTATIONS FAILED' : 'expectations hold'}`];
  for (const t of s.impairments) out.push(`  impairment #${t.index} ${t.kind}: fired ${num(t.fired)} time(s)`);
  // s.flows are in the table's order: #N is the table's row, whatever number the scenario gave the connection.
  s.flows.forEach((f, row) => {
    const rec = f.episodes.filter((e) => e.recoveredSeq !== null).length;
    const hints = f.hints.length ? `, ${f.hints.length} resync(s) given to the device (${f.hints.filter((h) => h.result === 'ok').length} taken)` : '';
    const last = f.episodes.at(-1);
    const short = last && last.recoveredSeq === null && endedBeforeScanReach(f.resyncType, last.receivedAfter, f.scanReach)
      ? `; after the last loss at most ${num(last.receivedAfter)} bytes of the stream came in a row unimpaired (scanning back may take ${num(f.scanReach)})` : '';
    out.push(`  flow ${f.flow} (#${row + 1}, ${f.resyncType ?? 'no RX offload'}): ${num(f.rxRecords)} records received, lost sync ${f.episodes.length} time(s), decrypting again after ${rec}${hints}${short}`);
  });
  for (const x of s.failures) out.push(`  FAIL ${x}`);
  return out;
}
