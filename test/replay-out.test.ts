// `tlsnic replay --out`: the pcapng holds the wire at the local NIC (interface 0) and what the NIC handed up
// (interface 1, LINKTYPE_USER0), with skb->decrypted per received frame. Checked three ways: an independent
// TLS implementation (tshark) decrypts the wire interface with the fixture's key log to the manifest's
// application bytes; each handed-up frame is its wire frame, byte for byte when not decrypted and with the
// record bodies replaced by their plaintext when decrypted (TLS 1.2 GCM: compared with what the stack
// delivered); and the flags add up to the device's counters.
import test, { type ExecutionContext } from 'ava';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCapture, PcapWriter, readCaptureBytes } from '../emulator/capture/index.ts';
import type { CapturedPacket } from '../emulator/capture/types.ts';
import { TcpSegmentView } from '../emulator/wire/packet.ts';
import { seqDiff } from '../emulator/wire/seq.ts';
import { LINKTYPE_HANDED_UP, OutCapture, progressLine } from '../cli/replay/command.ts';
import { allManifests } from '../fixtures/manifest.ts';
import { hasTshark } from './helpers/tools.ts';
import { Prng } from './helpers/prng.ts';

const tmp = mkdtempSync(join(tmpdir(), 'tlsnic-out-test-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

const run = promisify(execFile);

/** The CLI as a user runs it; async, so the fixtures replay side by side. */
async function tlsnic(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await run(process.execPath, ['--import=tsx', 'cli/main.ts', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: x.code ?? -1, out: x.stdout ?? '', err: x.stderr ?? '' };
  }
}

/**
 * tshark's "follow,tls,raw" of TCP streams 0..n-1 in one run: per stream, the decrypted bytes each side
 * sent (the parsing of test/fixtures.test.ts; sections come out in any order, each names its stream).
 */
async function tsharkFollowAll(capture: string, keylog: string, n: number): Promise<Array<[Buffer, Buffer]>> {
  const z = Array.from({ length: n }, (_, i) => ['-z', `follow,tls,raw,${i}`]).flat();
  const { stdout: out } = await run('tshark', ['-r', capture, '-o', `tls.keylog_file:${keylog}`, '-q', ...z], { encoding: 'utf8', maxBuffer: 256 << 20 });
  const res: Array<[Buffer, Buffer]> = [];
  let stream = -1;
  let body = false;
  let first: Buffer[] = [];
  let second: Buffer[] = [];
  const end = () => {
    if (stream >= 0) res[stream] = [Buffer.concat(first), Buffer.concat(second)];
    [stream, body, first, second] = [-1, false, [], []];
  };
  for (const line of out.split('\n')) {
    const f = /^Filter: tcp\.stream eq (\d+)/.exec(line);
    if (f) {
      end();
      stream = Number(f[1]);
    } else if (line.startsWith('Node 1:')) body = true;
    else if (line.startsWith('====')) body = false;
    else if (body && line.trim() !== '') (line.startsWith('\t') ? second : first).push(Buffer.from(line.trim(), 'hex'));
  }
  end();
  return res;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const flagOf = (c: string | undefined) => /skb->decrypted=([01])/.exec(c ?? '')?.[1];

type Json = {
  flows: Array<{ local: string; remote: string; version: string; cipher: string; rx: { decrypted: number; segments: number; mode: string } }>;
  ethtool: Record<string, number>;
};

/** One received frame as it was on the wire and as it was handed up. */
type RxPair = { wire: CapturedPacket; up: CapturedPacket };

function readOut(path: string) {
  const pkts = [...openCapture(path, { copy: true })];
  const pairs: RxPair[] = [];
  const tx: CapturedPacket[] = []; // and received frames nothing was handed up for
  for (let i = 0; i < pkts.length; i++) {
    const p = pkts[i]!;
    if (p.interfaceId === 1) throw new Error(`packet ${p.number}: handed-up frame without its wire frame before it`);
    if (p.comment?.startsWith('tlsnic tx wire')) tx.push(p);
    else if (flagOf(p.comment) !== undefined && p.comment?.startsWith('tlsnic rx wire')) pairs.push({ wire: p, up: pkts[++i]! });
    else if (p.comment === 'tlsnic rx wire: not handed up') tx.push(p);
    else throw new Error(`packet ${p.number}: comment ${p.comment}`);
  }
  return { pkts, pairs, tx };
}

const ep = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

/**
 * TLS 1.2 GCM: rebuild the received stream from the wire frames and from the handed-up frames, walk its
 * records, and for every application-data record whose bytes all came up decrypted, compare the handed-up
 * body with the plaintext the stack delivered at that point. Returns how many records were compared.
 */
function checkHandedUpPlaintext(t: ExecutionContext, pairs: RxPair[], local: string, remote: string, delivered: Uint8Array): number {
  const v = new TcpSegmentView();
  let isn: number | null = null;
  const wire = new Map<number, Uint8Array>();
  const up = new Map<number, { data: Uint8Array; decrypted: boolean }>();
  for (const { wire: w, up: u } of pairs) {
    if (v.parse(w.data) !== 'tcp' || ep(v.srcIp(), v.srcPort) !== remote || ep(v.dstIp(), v.dstPort) !== local) continue;
    if (v.syn) isn = v.seq + 1;
    if (v.payloadLength === 0) continue;
    const seq = v.seq;
    const wp = v.payload().slice();
    v.parse(u.data);
    if (!wire.has(seq)) {
      wire.set(seq, wp);
      up.set(seq, { data: v.payload().slice(), decrypted: flagOf(u.comment) === '1' });
    }
  }
  if (isn === null) return 0;
  // Stream offsets (relative to the ISN) to bytes; first copy wins, as the stack's reassembly keeps it.
  const size = Math.max(...[...wire].map(([s, d]) => seqDiff(s, isn!) + d.length));
  const wireStream = new Uint8Array(size);
  const upStream = new Uint8Array(size);
  const dec = new Uint8Array(size); // 1 = handed up decrypted
  for (const [s, d] of [...wire].reverse()) {
    const o = seqDiff(s, isn);
    wireStream.set(d, o);
    const u = up.get(s)!;
    upStream.set(u.data, o);
    dec.fill(u.decrypted ? 1 : 0, o, o + d.length);
  }
  let off = 0;
  let plain = 0;
  let afterCcs = false;
  let finishedSeen = false;
  let compared = 0;
  const bad: string[] = [];
  while (off + 5 <= size) {
    const type = wireStream[off]!;
    const len = (wireStream[off + 3]! << 8) | wireStream[off + 4]!;
    if (off + 5 + len > size) break;
    if (type === 20) afterCcs = true;
    else if (afterCcs && type === 22 && !finishedSeen) finishedSeen = true; // encrypted Finished: not app data
    else if (type === 23 && finishedSeen) {
      const n = len - 8 - 16;
      if (dec.subarray(off, off + 5 + len).every((b) => b === 1)) {
        // header and explicit nonce stay as on the wire; the body is the plaintext
        if (!Buffer.from(upStream.subarray(off, off + 13)).equals(wireStream.subarray(off, off + 13))) bad.push(`record at ${off}: header or nonce changed`);
        if (!Buffer.from(upStream.subarray(off + 13, off + 13 + n)).equals(delivered.subarray(plain, plain + n))) bad.push(`record at ${off}: body is not the delivered plaintext`);
        compared++;
      }
      plain += n;
    }
    off += 5 + len;
  }
  t.deepEqual(bad.slice(0, 5), [], `${remote} -> ${local}`);
  t.is(plain, delivered.length, 'walked records account for every delivered byte');
  return compared;
}

for (const m of allManifests()) {
  const tls13 = m.connections.some((c) => c.version === '1.3');
  test(`--out of ${m.name}${tls13 ? ' (--tls13)' : ''}: tshark decrypts the wire to the manifest, handed-up frames carry the flag and plaintext`, async (t) => {
    const out = join(tmp, `${m.name}.pcapng`);
    const pdir = join(tmp, `${m.name}-plain`);
    const r = await tlsnic('replay', join(m.dir, m.capture), '--keylog', join(m.dir, m.keylog), '--out', out, '--plaintext-dir', pdir, '--json', ...(tls13 ? ['--tls13'] : []));
    t.is(r.code, 0, r.err);
    const j = JSON.parse(r.out) as Json;
    const { pkts, pairs, tx } = readOut(out);

    // Structure: every received frame is a wire frame followed by its handed-up frame, flags agree.
    // (Collected, then asserted once: thousands of frames.)
    const bad: string[] = [];
    for (const { wire, up } of pairs) {
      const f = flagOf(wire.comment);
      const same = Buffer.from(up.data).equals(wire.data);
      if (wire.linkType !== 1 || up.linkType !== LINKTYPE_HANDED_UP || up.interfaceId !== 1) bad.push(`packet ${up.number}: link type / interface`);
      if (up.data.length !== wire.data.length) bad.push(`packet ${up.number}: length differs from its wire frame`);
      if (flagOf(up.comment) !== f) bad.push(`packet ${up.number}: flag differs from its wire frame's`);
      if (f === '0' && !same) bad.push(`packet ${up.number}: not decrypted, yet not as received`);
      if (f === '1' && same) bad.push(`packet ${up.number}: decrypted, yet as received`);
    }
    t.deepEqual(bad.slice(0, 5), []);
    t.is(pkts.length, 2 * pairs.length + tx.length);
    t.true(pairs.length > 0 && tx.length > 0);
    const decrypted = pairs.filter((p) => flagOf(p.up.comment) === '1').length;
    t.is(decrypted, j.flows.reduce((s, f) => s + f.rx.decrypted, 0));
    t.is(decrypted, j.ethtool.rx_tls_decrypted_packets);
    const offloaded = j.flows.some((f) => f.rx.mode === 'hw');
    t.is(decrypted > 0, offloaded, 'frames come up decrypted exactly when RX is offloaded');
    // The wire interface is in capture order: timestamps never go back.
    const wireTs = pkts.filter((p) => p.interfaceId === 0).map((p) => p.tsNs);
    t.true(wireTs.every((ts, i) => i === 0 || ts >= wireTs[i - 1]!), 'wire frames out of capture order');

    // Handed-up bodies are the plaintext the stack delivered (TLS 1.2 GCM, where the body is the plaintext).
    let compared = 0;
    for (const f of j.flows) {
      if (f.version !== '1.2' || !f.cipher.startsWith('aes-gcm')) continue;
      const name = `${f.local}_${f.remote}.rx.bin`.replace(/[[\]]/g, '').replace(/:/g, '_');
      compared += checkHandedUpPlaintext(t, pairs, f.local, f.remote, readFileSync(join(pdir, name)));
    }
    if (offloaded && j.flows.some((f) => f.version === '1.2')) t.true(compared > 0, 'no decrypted record compared');

    // Independent: Wireshark's TLS decrypts the wire interface to what the applications sent.
    if (!hasTshark) {
      t.log('tshark is not installed here (apt-get install tshark): the independent decryption was not checked.');
      return;
    }
    // Where tshark cannot decrypt the input capture itself to the manifest (e.g. a loss pattern its TCP
    // reassembly gives up on), --out must still decrypt to exactly what tshark makes of the input.
    const follow = async (file: string) => {
      const seen = new Set<string>();
      for (const [a, b] of await tsharkFollowAll(file, join(m.dir, m.keylog), m.connections.length)) {
        seen.add(`${sha(a)}|${sha(b)}`).add(`${sha(b)}|${sha(a)}`);
      }
      return seen;
    };
    const [fromOut, fromInput] = await Promise.all([follow(out), follow(join(m.dir, m.capture))]);
    for (const c of m.connections) {
      const want = `${c.clientToServer.sha256}|${c.serverToClient.sha256}`;
      if (fromInput.has(want)) t.true(fromOut.has(want), `${c.client} -> ${c.server}: tshark's plaintext of --out differs from the manifest`);
      else t.log(`${c.client} -> ${c.server}: tshark does not decrypt the input capture to the manifest either; compared --out with the input only`);
    }
    t.deepEqual([...fromOut].sort(), [...fromInput].sort(), 'tshark decrypts --out and the input capture differently');
    // Handed-up frames sit on a link type tshark leaves alone, so they do not disturb its TCP analysis.
    const { stdout: tcpOnUp } = await run('tshark', ['-r', out, '-Y', 'frame.interface_id == 1 && tcp'], { encoding: 'utf8' });
    t.is(tcpOnUp.trim(), '');
  });
}

test('OutCapture puts a TX frame held back for its record before the later frames that overtook it', (t) => {
  const oc = new OutCapture(null);
  const fr = (b: number) => Uint8Array.of(b, b, b, b);
  // packet 1 (TX) is held; packets 2 (RX) and 3 (TX, no payload) pass; then 1 is released with packet 4
  oc.frame({ dir: 'rx-wire', frame: fr(2), tsNs: 2n, note: '', packet: 2, heldFrom: 1 });
  oc.frame({ dir: 'rx', frame: fr(0x22), tsNs: 2n, note: '', decrypted: true, packet: 2, heldFrom: 1 });
  oc.frame({ dir: 'tx', frame: fr(3), tsNs: 3n, note: 'tx: no payload, as captured', packet: 3, heldFrom: 1 });
  oc.frame({ dir: 'tx', frame: fr(1), tsNs: 1n, note: 'tx: equals capture', packet: 1, heldFrom: 4 });
  oc.frame({ dir: 'tx', frame: fr(4), tsNs: 4n, note: 'tx: equals capture', packet: 4, heldFrom: Infinity });
  oc.frame({ dir: 'rx-wire', frame: fr(5), tsNs: 5n, note: '', packet: 5, heldFrom: Infinity });
  const pkts = [...readCaptureBytes(oc.bytes())];
  t.deepEqual(pkts.map((p) => p.data[0]), [1, 2, 0x22, 3, 4, 5]);
  t.deepEqual(pkts.map((p) => p.comment), [
    'tlsnic tx wire: equals capture',
    'tlsnic rx wire: skb->decrypted=1',
    'tlsnic rx handed up: skb->decrypted=1 (record bodies are plaintext)',
    'tlsnic tx wire: no payload, as captured',
    'tlsnic tx wire: equals capture',
    'tlsnic rx wire: not handed up',
  ]);
  t.deepEqual(pkts.map((p) => p.interfaceId), [0, 0, 1, 0, 0, 0]);
});

test('OutCapture restores capture order for frames far out of turn: stable within a place, reorders counted', (t) => {
  const rng = new Prng(11);
  const oc = new OutCapture(null);
  const sent: { packet: number; order: number; id: number }[] = [];
  let reordered = 0;
  let max: { packet: number; order: number } | null = null;
  for (let id = 0; id < 3000; id++) {
    const packet = rng.int(1, 400);
    const order = rng.int(0, 2);
    sent.push({ packet, order, id });
    if (max && (packet < max.packet || (packet === max.packet && order < max.order))) reordered++;
    else max = { packet, order };
    // heldFrom 0: an earlier frame is still held, so every frame waits (none is below it)
    oc.frame({ dir: 'tx', frame: Uint8Array.of(id >> 8, id & 0xff), tsNs: BigInt(id), note: 'tx: equals capture', packet, order, heldFrom: 0 });
  }
  const want = [...sent].sort((a, b) => a.packet - b.packet || a.order - b.order || a.id - b.id).map((x) => x.id);
  const got = [...readCaptureBytes(oc.bytes())].map((p) => (p.data[0]! << 8) | p.data[1]!);
  t.deepEqual(got, want);
  t.is(oc.stats.reordered, reordered);
  t.true(reordered > 2000); // the case is the far-out-of-turn one
});

test('progress line: bar, percentage and sizes; clamped at both ends', (t) => {
  t.is(progressLine(5e6, 10e6, 10), '[#####.....]  50%  5.0 of 10.0 MB');
  t.is(progressLine(20e6, 10e6, 4), '[####] 100%  20.0 of 10.0 MB');
  t.is(progressLine(1, 0, 4), '[....]   0%  0.0 of 0.0 MB');
});

test('no progress bar when stderr is not a terminal', async (t) => {
  const F = 'fixtures/captures/tls12-many-v4';
  const r = await tlsnic('replay', `${F}.pcap`, '--keylog', `${F}.keylog`);
  t.is(r.code, 0);
  t.is(r.err, '');
});

test('a long capture on a terminal: a progress bar on stderr, cleared at the end; stdout untouched', async (t) => {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
  } catch {
    t.log('util-linux script(1) is not installed: no pseudo-terminal to run the CLI on. Nothing checked.');
    t.pass();
    return;
  }
  // 24 copies of the 14-connection fixture, each on its own server port: about 18k packets, a few seconds
  // (the bar appears only after a second).
  const F = 'fixtures/captures/tls12-many-v4';
  const big = join(tmp, 'long.pcap');
  const pkts = [...openCapture(`${F}.pcap`, { copy: true })];
  const w = new PcapWriter(big, { linkType: pkts[0]!.linkType, resolution: 'ns' });
  const v = new TcpSegmentView();
  const span = pkts.at(-1)!.tsNs - pkts[0]!.tsNs + 1000n;
  for (let k = 0; k < 24; k++) {
    for (const p of pkts) {
      const d = p.data.slice();
      if (v.parse(d) === 'tcp') {
        const dv = new DataView(d.buffer, d.byteOffset);
        const at = v.l4Offset + (v.srcPort < v.dstPort ? 0 : 2); // the server's (lower) port
        dv.setUint16(at, dv.getUint16(at) + k * 100); // the replay recomputes the TCP checksum
      }
      w.write({ data: d, tsNs: p.tsNs + BigInt(k) * span });
    }
  }
  w.close();
  const json = join(tmp, 'long.json');
  // script(1) gives the CLI a terminal for stdin/stdout/stderr; stdout goes to a file, so the pty shows stderr.
  // The bar waits a second by default; whether this replay outlasts one depends on the machine, so wait 0 ms.
  const cmd = `TLSNIC_PROGRESS_AFTER_MS=0 ${process.execPath} --import=tsx cli/main.ts replay ${big} --keylog ${F}.keylog --json > ${json}`;
  const { stdout: tty } = await run('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', maxBuffer: 16 << 20 });
  t.regex(tty, /\r\[#+\.*\] +\d+%  [\d.]+ of [\d.]+ MB/, JSON.stringify(tty.slice(0, 300)));
  t.true(tty.endsWith('\r\x1b[K'), 'the bar is cleared');
  const j = JSON.parse(readFileSync(json, 'utf8'));
  t.is(j.flows.length, 24 * 14);
});
