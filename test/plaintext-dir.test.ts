// --plaintext-dir on a capture of many connections: each direction's plaintext in a file of its own, while at
// most PLAINTEXT_OPEN_FILES are open (a file written again after its fd was closed is appended to, not
// truncated) and a connection's files close when it ends. Before, every file stayed open to the end, and a
// capture of ~500 connections failed with EMFILE under the usual limit of 1024 open files.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { replicateCapture, manyFixture } from '../bench/many-capture.ts';
import { plaintextFiles } from '../cli/replay/command.ts';
import type { FlowReport } from '../cli/replay/engine.ts';

const tmp = mkdtempSync(join(tmpdir(), 'tlsnic-plaintext-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

/** Files of `dir` this process has open. */
const openIn = (dir: string) => readdirSync('/proc/self/fd').filter((fd) => {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir);
  } catch {
    return false;
  }
}).length;

test('at most maxOpen files open; a file reopened is appended to; end() closes a connection\'s files', (t) => {
  const dir = mkdtempSync(join(tmp, 'lru-'));
  const files = plaintextFiles(dir, 2);
  const flow = (port: number) => ({ local: '10.0.0.1:443', remote: `10.0.0.2:${port}` }) as FlowReport;
  const want = new Map<string, number[]>();
  // Three connections written in turn, both directions: six files through two fds.
  for (let round = 0; round < 4; round++) {
    for (const port of [1, 2, 3]) {
      for (const d of ['tx', 'rx'] as const) {
        const bytes = [round, port, d === 'tx' ? 1 : 2];
        files.write(flow(port), d, Uint8Array.from(bytes));
        const name = `10.0.0.1_443_10.0.0.2_${port}.${d}.bin`;
        want.set(name, [...(want.get(name) ?? []), ...bytes]);
        t.true(openIn(dir) <= 2);
      }
    }
  }
  files.end(flow(1));
  files.close();
  t.is(openIn(dir), 0);
  t.deepEqual(readdirSync(dir).sort(), [...want.keys()].sort());
  for (const [name, bytes] of want) t.deepEqual([...readFileSync(join(dir, name))], bytes, name);
});

test('CLI: 280 connections with --plaintext-dir under a limit of 200 open files: every file has its connection\'s plaintext', (t) => {
  const capture = join(tmp, 'many-x20.pcap');
  t.is(replicateCapture(capture, 20), 280);
  const dir = join(tmp, 'plain');
  const { keylog, manifest } = manyFixture();
  const r = spawnSync('bash', ['-c', 'ulimit -n 200 && exec "$@"', 'bash', process.execPath, '--import=tsx', 'cli/main.ts', 'replay', capture, '--keylog', keylog, '--plaintext-dir', dir, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  t.is(r.status, 0, r.stderr);
  const files = readdirSync(dir);
  t.is(files.length, 560);
  // Each copy's connection on client port P carries the fixture's plaintext for port P.
  const byPort = new Map(manifest.connections.map((c) => [c.client.split(':')[1]!, c]));
  for (const f of files) {
    const m = /_(\d+)\.(rx|tx)\.bin$/.exec(f)!;
    const c = byPort.get(m[1]!)!;
    const sha = createHash('sha256').update(readFileSync(join(dir, f))).digest('hex');
    t.is(sha, m[2] === 'rx' ? c.clientToServer.sha256 : c.serverToClient.sha256, f);
  }
});
