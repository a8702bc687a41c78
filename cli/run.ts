// `tlsnic run <scenario.json> [--json] [--flows N]`: run a scenario (issue 5) and say whether its
// expectations hold. Exit 0 when they hold, 1 when not; bad input (unreadable or invalid scenario) is a
// ConfigError that main() turns into exit 2.
import { formatRecovery } from '../testbed/ava.ts';
import { loadScenarioFile } from '../testbed/load.ts';
import { runScenarioObject, type ScenarioResult } from '../testbed/runner.ts';
import type { RunArgs } from './args.ts';

export function runRun(args: RunArgs, out: (s: string) => void = (s) => void process.stdout.write(s)): number {
  const scenario = loadScenarioFile(args.scenario);
  const result = runScenarioObject(scenario, args.flows !== null ? { soakFlows: args.flows } : {});
  out(args.json ? JSON.stringify(result, jsonReplacer, 2) + '\n' : formatText(result));
  return result.ok ? 0 : 1;
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
    if (run.worlds === 1) {
      lines.push(`    b calls: ${b.calls.join(', ')}`);
      for (const f of run.flows) {
        lines.push(`    flow ${f.flow} ${f.dir}: ${f.bytesRead}/${f.bytesWritten} bytes ${f.exact ? 'exact' : f.inOrder ? 'in order (prefix)' : 'WRONG'}`
          + `${f.socketError ? `, socket ${f.socketError}` : ''}, rx ${f.rxMode}, device ${f.deviceRxState ?? '-'}, `
          + `${f.episodes.length} loss(es) of sync${f.episodes.length ? `: ${f.episodes.map((e) => `record ${e.lostRecord} -> ${e.recoveredRecord ?? 'never'}`).join(', ')}` : ''}`);
      }
    }
    for (const f of run.failures) lines.push(`    FAIL ${f}`);
  });
  return lines.join('\n') + '\n';
}
