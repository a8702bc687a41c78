// Human and JSON renderings of a replay result. The JSON shape is a stable interface (issue 6).
import { endedBeforeScanReach } from '../testbed/recovery.ts';
import type { ReplayResult } from './replay/engine.ts';

export function toJson(r: ReplayResult): object {
  return {
    flows: r.flows.map((f) => ({
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
    })),
    ethtool: r.ethtool,
    tlsStat: r.tlsStat,
    packets: r.packets,
    problems: r.problems,
    ...(r.scenario ? { scenario: r.scenario } : {}),
  };
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function num(n: number): string {
  return n.toLocaleString('en-US');
}

export function toText(r: ReplayResult, driver: string): string {
  const out: string[] = [];
  out.push(`tlsnic replay ${r.capture}: ${num(r.packets)} packets, ${r.flows.length} TLS connection(s), driver ${driver} (${r.netdev})`);
  out.push('');
  const head = ['#', 'local', 'remote', 'tls', 'cipher', 'tx', 'rx', 'tx bytes', 'rx bytes', 'rx decrypted', 'tx wire'];
  const rows = r.flows.map((f, i) => [
    String(i + 1), f.local, f.remote, f.version ?? '-', f.cipher ?? '-', f.tx.mode, f.rx.mode,
    num(f.tx.plaintextBytes), num(f.rx.plaintextBytes), `${num(f.rx.decrypted)}/${num(f.rx.segments)} pkts`,
    f.tx.wireMatch ? `match (${num(f.tx.matched)})` : f.tx.notSent && !f.tx.mismatched ? `match (${num(f.tx.matched)}), ${num(f.tx.notSent)} not sent` : `MISMATCH ${f.tx.mismatched}`,
  ]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
  out.push(head.map((h, c) => pad(h, widths[c]!)).join('  '));
  for (const row of rows) out.push(row.map((x, c) => pad(x, widths[c]!)).join('  '));
  const notes = r.flows.flatMap((f, i) => [
    ...(f.tx.reason && f.tx.mode === 'sw' ? [`  #${i + 1} tx in software: ${f.tx.reason}`] : []),
    ...(f.rx.reason && f.rx.mode === 'sw' ? [`  #${i + 1} rx in software: ${f.rx.reason}`] : []),
    ...f.problems.map((p) => `  #${i + 1} ${p}`),
  ]);
  if (notes.length || r.problems.length) {
    out.push('');
    out.push('notes:');
    out.push(...r.problems.map((p) => `  ${p}`), ...notes);
  }
  out.push('');
  out.push(`$ ethtool -S ${r.netdev} | grep tls`);
  out.push(r.ethtoolText.trimEnd());
  out.push('');
  out.push('$ cat /proc/net/tls_stat');
  out.push(r.tlsStatText.trimEnd());
  if (r.scenario) out.push('', ...scenarioText(r));
  return out.join('\n') + '\n';
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
