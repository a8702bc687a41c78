// Issue 6: a real capture with real losses and retransmissions (fixtures/captures/tls12-loss-v4, made by
// make-fixtures.sh through fixtures/gen/lossy-bridge.py), replayed byte-exact. The capture is first shown
// to hold what the test is about (server retransmissions, client losses and retransmissions), then the
// replay through mlx5 and nfp must send every captured server segment, retransmissions included, equal
// to the capture, and deliver each client byte once.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { openCapture } from '../emulator/capture/index.ts';
import { TcpSegmentView } from '../emulator/wire/packet.ts';
import { seqAdd, seqDiff, seqGt } from '../emulator/wire/seq.ts';
import { mlx5Driver, nfpDriver } from '../driver-api/drivers/index.ts';
import { CAPTURES_DIR, loadManifest } from '../fixtures/manifest.ts';
import { replay } from '../cli/replay/engine.ts';

const m = loadManifest(join(CAPTURES_DIR, 'tls12-loss-v4.json'));
const capture = join(m.dir, m.capture);
const keylog = join(m.dir, m.keylog);

type DirStats = { segments: number; repeats: number; repeatedBytes: number; gaps: number };
type ConnStats = { client: string; s2c: DirStats; c2s: DirStats };

/**
 * Per connection (keyed by client port) and direction: data segments, segments that start below the
 * highest byte already seen (retransmissions and late reorders) and their bytes, and segments that jump
 * past it (data the capture point never saw in order: lost before the server's veth).
 */
function scan(): Map<number, ConnStats> {
  const conns = new Map<number, ConnStats & { high: { s2c: number | null; c2s: number | null } }>();
  const v = new TcpSegmentView();
  const serverPort = Number(m.connections[0]!.server.split(':').pop());
  const reader = openCapture(capture);
  try {
    for (const p of reader) {
      if (v.parse(p.data, p.linkType) !== 'tcp' || v.payloadLength === 0) continue;
      const dir = v.srcPort === serverPort ? 's2c' : 'c2s';
      const port = dir === 's2c' ? v.dstPort : v.srcPort;
      let c = conns.get(port);
      if (!c) {
        const d = (): DirStats => ({ segments: 0, repeats: 0, repeatedBytes: 0, gaps: 0 });
        c = { client: `10.77.0.2:${port}`, s2c: d(), c2s: d(), high: { s2c: null, c2s: null } };
        conns.set(port, c);
      }
      const s = c[dir];
      const end = seqAdd(v.seq, v.payloadLength);
      const high = c.high[dir];
      s.segments++;
      if (high !== null && seqDiff(v.seq, high) < 0) {
        s.repeats++;
        s.repeatedBytes += Math.min(v.payloadLength, seqDiff(high, v.seq));
      } else if (high !== null && seqGt(v.seq, high)) {
        s.gaps++;
      }
      if (high === null || seqGt(end, high)) c.high[dir] = end;
    }
  } finally {
    reader.close();
  }
  return conns;
}

const stats = scan();

test('the loss fixture holds real server retransmissions and client losses in every connection', (t) => {
  t.is(stats.size, m.connections.length);
  t.true(m.connections.length >= 3);
  for (const c of m.connections) {
    const s = stats.get(Number(c.client.split(':').pop()));
    if (!s) return t.fail(`${c.client}: not in the capture`);
    t.true(c.clientToServer.bytes >= 200_000 && c.serverToClient.bytes >= 200_000, `${c.client}: ~200-500 KB each way`);
    t.true(s.s2c.repeats >= 3, `${c.client}: ${s.s2c.repeats} server retransmissions`);
    t.true(s.c2s.gaps >= 1, `${c.client}: the client lost no data before the server's veth`);
    t.true(s.c2s.repeats >= 1, `${c.client}: no client retransmission reached the server`);
  }
});

test('tshark (reassembling out-of-order segments) decrypts each connection to the manifest bytes and counts its retransmissions', (t) => {
  let tshark = true;
  try {
    execFileSync('tshark', ['--version'], { stdio: 'ignore' });
  } catch {
    tshark = false;
  }
  if (!tshark) {
    t.log('tshark is not installed here; nothing checked');
    t.pass();
    return;
  }
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  const seen = new Set<string>();
  for (let i = 0; i < m.connections.length; i++) {
    // Without tcp.reassemble_out_of_order tshark gives up on the client's stream at its first gap.
    const out = execFileSync('tshark', ['-r', capture, '-o', `tls.keylog_file:${keylog}`, '-o', 'tcp.reassemble_out_of_order:TRUE',
      '-q', '-z', `follow,tls,raw,${i}`], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
    const parts: Record<'a' | 'b', Buffer[]> = { a: [], b: [] };
    let body = false;
    for (const line of out.split('\n')) {
      if (line.startsWith('Node 1:')) body = true;
      else if (body && !line.startsWith('====') && line.trim() !== '') parts[line.startsWith('\t') ? 'b' : 'a'].push(Buffer.from(line.trim(), 'hex'));
    }
    seen.add(`${sha(Buffer.concat(parts.a))}|${sha(Buffer.concat(parts.b))}`);
  }
  for (const c of m.connections) t.true(seen.has(`${c.clientToServer.sha256}|${c.serverToClient.sha256}`), `${c.client}: tshark's plaintext differs`);
  const retrans = execFileSync('tshark', ['-r', capture, '-Y', 'tcp.analysis.retransmission'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  t.is(retrans.split('\n').filter((l) => l.trim()).length, m.tshark.retransmissions);
  t.true(m.tshark.retransmissions >= 3 * m.connections.length);
});

for (const driver of [mlx5Driver, nfpDriver]) {
  test(`replay through ${driver.name}: every captured server segment, retransmissions too, leaves the device equal to the capture; each client byte is delivered once`, async (t) => {
    const r = await replay({ capture, keylog, local: null, driver, tls13: false });
    t.deepEqual(r.problems, []);
    t.is(r.flows.length, m.connections.length);
    for (const f of r.flows) {
      const c = m.connections.find((x) => x.client === f.remote && x.server === f.local);
      if (!c) return t.fail(`flow ${f.local} <- ${f.remote} is not in the manifest`);
      const s = stats.get(Number(c.client.split(':').pop()))!;
      t.deepEqual(f.problems, [], `${f.remote}: problems`);
      t.is(f.tx.mode, 'hw');
      t.is(f.rx.mode, 'hw');
      // TX: one device output per captured server data segment, each byte-equal, none dropped.
      t.is(f.tx.segments, s.s2c.segments, `${f.remote}: captured server segments vs replayed`);
      t.is(f.tx.matched, s.s2c.segments);
      t.is(f.tx.mismatched, 0);
      t.is(f.tx.dropped, 0);
      t.true(f.tx.wireMatch);
      t.is(f.tx.plaintextBytes, c.serverToClient.bytes);
      t.is(f.tx.plaintextSha256, c.serverToClient.sha256);
      // RX: the capture repeats client bytes (retransmissions); the application gets each byte once.
      t.true(s.c2s.repeatedBytes > 0);
      t.is(f.rx.plaintextBytes, c.clientToServer.bytes);
      t.is(f.rx.plaintextSha256, c.clientToServer.sha256);
      t.true(f.rx.decrypted > 0);
    }
    // Retransmissions went through the device's out-of-order path, never dropped, never mis-keyed.
    t.true(r.ethtool.tx_tls_ooo! > 0);
    t.is(r.ethtool.tx_tls_drop_no_sync_data, 0);
    if (driver === mlx5Driver) t.true(r.ethtool.tx_tls_dump_packets! > 0, 'mlx5 rebuilds crypto state with DUMPs');
    // Client losses took record headers with them: the device lost sync and got it back through resync.
    t.true(r.tlsStat.TlsRxDeviceResync! > 0);
    t.is(r.ethtool.rx_tls_err, 0);
    t.is(r.tlsStat.TlsDecryptError, 0);
    t.is(r.tlsStat.TlsTxDevice, m.connections.length);
    t.is(r.tlsStat.TlsRxDevice, m.connections.length);
  });
}
