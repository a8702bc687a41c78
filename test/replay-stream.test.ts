// The replay streams: per-flow state stays bounded however long the capture, with a problem (not growing
// memory) when a capture gives a flow no way to drain it: a hole in the TX stream, missing ACKs.
import test from 'ava';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { generateCapture, type GenOptions, type GenResult } from '../bench/gen-capture.ts';
import { replay, type ReplayOptions, type ReplayResult } from '../cli/replay/engine.ts';
import { toJson } from '../cli/report.ts';
import { loadManifest } from '../fixtures/manifest.ts';
import { ReplaySock } from '../cli/replay/replay-sock.ts';
import { mlx5Driver } from '../driver-api/drivers/index.ts';
import type { NetDevice } from '../driver-api/ops.ts';
import { openCapture, PcapWriter } from '../emulator/capture/index.ts';
import { TcpSegmentView } from '../emulator/wire/packet.ts';

const dir = mkdtempSync(join(tmpdir(), 'tlsnic-stream-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

function gen(name: string, o: Partial<GenOptions>): GenResult {
  return generateCapture({ out: join(dir, `${name}.pcap`), keylog: join(dir, `${name}.keylog`), flows: 2, mib: 2, record: 16384, mss: 1448, seed: 5, cipher: 'aes128', ...o });
}

/** A copy of a capture without the packets `drop` picks (1-based packet number, parsed TCP view). */
function without(g: GenResult, name: string, drop: (n: number, v: TcpSegmentView) => boolean): string {
  const out = join(dir, `${name}.pcap`);
  const w = new PcapWriter(out, { resolution: 'ns' });
  const v = new TcpSegmentView();
  for (const p of openCapture(g.options.out)) {
    if (v.parse(p.data) === 'tcp' && drop(p.number, v)) continue;
    w.write({ data: p.data, tsNs: p.tsNs });
  }
  w.close();
  return out;
}

const SERVER_PORT = 4433;
const base = (capture: string, keylog: string): ReplayOptions => ({ capture, keylog, local: null, driver: mlx5Driver, tls13: false });

test('replaying the client end: received bytes held for an incomplete record survive the reader reusing its buffer', async (t) => {
  // The local host receives the download: the stack queues each segment's bytes until its record is whole,
  // while the capture reader moves its 1 MiB window on (compacting it in place) under the frames.
  const g = gen('client-end', { flows: 2, mib: 6 });
  for (const flow of g.flows) {
    const [ip, port] = [flow.client.slice(0, flow.client.lastIndexOf(':')), Number(flow.client.slice(flow.client.lastIndexOf(':') + 1))];
    const r = await replay({ ...base(g.options.out, g.options.keylog), local: { ip, port } });
    t.is(r.flows.length, 1, r.problems.join('\n'));
    const f = r.flows[0]!;
    t.is(f.rx.plaintextBytes, flow.serverToClient.bytes);
    t.is(f.rx.plaintextSha256, flow.serverToClient.sha256);
    t.is(f.tx.plaintextSha256, flow.clientToServer.sha256);
    t.true(r.ethtool.rx_tls_decrypted_packets! > 0);
  }
});

test('every bundled capture replays the same when the reader reads 1 KiB at a time (its window moves under every packet)', async (t) => {
  const dirOf = 'fixtures/captures';
  const names = readdirSync(dirOf).filter((f) => /\.pcap(ng)?$/.test(f));
  t.true(names.length >= 8);
  for (const file of names) {
    const stem = join(dirOf, file.replace(/\.pcap(ng)?$/, ''));
    const o = { ...base(join(dirOf, file), `${stem}.keylog`), tls13: loadManifest(`${stem}.json`).connections.some((c) => c.version === '1.3') };
    const [whole, small] = [await replay(o), await replay({ ...o, limits: { readChunkBytes: 1024 } })];
    t.true(whole.flows.length > 0, file);
    t.deepEqual(toJson(small), toJson(whole), file);
  }
});

test('ACKs drain the send queue whatever the sequence numbers (snd_una is not compared with 0)', (t) => {
  for (const isn of [0x10, 0x7fff_fff0, 0x8000_0010, 0xc000_0000, 0xffff_fff0]) {
    const sock = new ReplaySock({ family: 4, saddr: '10.0.0.1', sport: 1, daddr: '10.0.0.2', dport: 2 }, {} as NetDevice);
    sock.writeSeq = isn;
    sock.queue(new Uint8Array(3000), true);
    sock.queue(new Uint8Array(3000), true);
    t.is(sock.unackedBytes, 6000);
    sock.ack((isn + 3000) >>> 0);
    t.is(sock.unackedBytes, 3000, `isn ${isn.toString(16)}: the first chunk is acknowledged`);
    sock.ack((isn + 100) >>> 0); // older: ignored
    t.is(sock.unackedBytes, 3000);
    sock.ack((isn + 6000) >>> 0);
    t.is(sock.unackedBytes, 0);
    t.is(sock.queued(isn, 10), null, 'acknowledged bytes are gone');
  }
});

test('a hole in the captured TX stream: held-back segments stop at the cap with a problem, other flows unharmed', async (t) => {
  const g = gen('hole', { flows: 2, mib: 4 });
  let seen = 0;
  // The 30th server-to-client data segment of the first flow never made it into the capture.
  const holed = without(g, 'hole-cut', (_n, v) => v.srcPort === SERVER_PORT && v.dstPort === 1024 && v.payloadLength > 0 && ++seen === 30);
  const r = await replay({ ...base(holed, g.options.keylog), limits: { heldTxBytes: 256 << 10 } });
  const [a, b] = [r.flows.find((f) => f.remote === g.flows[0]!.client)!, r.flows.find((f) => f.remote === g.flows[1]!.client)!];
  t.true(a.problems.some((p) => /held back waiting for an incomplete record exceed 262144 bytes/.test(p)), a.problems.join('\n'));
  t.true(a.problems.length <= 102, 'problems per flow are bounded');
  t.false(a.tx.wireMatch);
  t.true(a.tx.plaintextBytes < g.flows[0]!.serverToClient.bytes);
  t.deepEqual(b.problems, []);
  t.true(b.tx.wireMatch);
  t.is(b.tx.plaintextSha256, g.flows[1]!.serverToClient.sha256);
  t.is(b.rx.plaintextSha256, g.flows[1]!.clientToServer.sha256);
});

test('a capture without the client\'s pure ACKs: unacknowledged bytes are bounded with a problem, the replay stays exact', async (t) => {
  const g = gen('noack', { flows: 1, mib: 3 });
  const noAcks = without(g, 'noack-cut', (n, v) => n > 3 && v.dstPort === SERVER_PORT && v.payloadLength === 0 && !v.fin);
  const r = await replay({ ...base(noAcks, g.options.keylog), limits: { unackedTxBytes: 256 << 10 } });
  const f = r.flows[0]!;
  t.deepEqual(f.problems, [`more than ${256 << 10} TX bytes never acknowledged in the capture (its ACKs missing?): the oldest count as acknowledged`]);
  t.true(f.tx.wireMatch);
  t.is(f.tx.plaintextSha256, g.flows[0]!.serverToClient.sha256);
  t.is(f.rx.plaintextSha256, g.flows[0]!.clientToServer.sha256);
  // With the default bound the same capture replays with no problem at all.
  const d = await replay(base(noAcks, g.options.keylog));
  t.deepEqual(d.flows[0]!.problems, []);
});

/**
 * A replay of `g` with what this process holds (live heap and array buffers after a full GC) sampled at
 * every `every`th progress call, as bytes over what it held before the replay started.
 */
async function replaySampled(g: GenResult, every: number): Promise<{ r: ReplayResult; held: number[] }> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const live = () => {
    gc();
    gc();
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const before = live();
  const held: number[] = [];
  let n = 0;
  const r = await replay({ ...base(g.options.out, g.options.keylog), onProgress: () => void (++n % every === 0 && held.push(live() - before)) });
  return { r, held };
}

test('replay memory does not grow with the capture (live heap and array buffers after GC, sampled as it runs)', async (t) => {
  const g = gen('long', { flows: 8, mib: 48, seed: 11 });
  const { r, held: samples } = await replaySampled(g, 4);
  t.true(r.flows.every((f) => f.tx.wireMatch && f.problems.length === 0));
  t.true(samples.length >= 6, `${samples.length} samples`);
  // Past the first quarter (JIT, tables warm), what the replay holds stays flat while the rest goes by. Minima
  // of groups of samples: array buffers freed by a GC are returned by a concurrent sweeper, so one sample
  // can still count some; what is held shows in every sample.
  const q = samples.slice(Math.floor(samples.length / 4));
  const third = Math.max(1, Math.floor(q.length / 3));
  const early = Math.min(...q.slice(0, third));
  const late = Math.min(...q.slice(-third));
  t.true(late - early < 8e6, `held memory grew by ${((late - early) / 1e6).toFixed(1)} MB: ${q.map((x) => (x / 1e6).toFixed(0)).join(' ')}`);
});

test('memory per flow: acknowledged records are let go at once (64 flows at a time hold a few MB, not a batch of records each)', async (t) => {
  // 64 interleaved flows of 32 records each: the socket queue and the stack's records list used to keep up to
  // 64 acknowledged records per flow referenced until they compacted (~1 MB a flow with 16 KiB records).
  const g = gen('wide', { flows: 64, mib: 32, seed: 12 });
  const { r, held } = await replaySampled(g, 2);
  t.is(r.flows.length, 64);
  t.true(r.flows.every((f) => f.tx.wireMatch && f.problems.length === 0));
  t.true(held.length >= 4, `${held.length} samples`);
  // Live per flow: the record being walked, held-back segments of one record, a few unacknowledged ones; once
  // every flow is under way that stays flat (it grew by a record per flow and ACK before).
  const from = held[Math.floor(held.length / 3)]!;
  const late = Math.min(...held.slice(-3));
  const all = held.map((x) => (x / 1e6).toFixed(0)).join(' ');
  t.true(late - from < 4e6, `held memory grew by ${((late - from) / 1e6).toFixed(1)} MB while 64 flows ran: ${all}`);
  t.true(late < 24e6, `held ${(late / 1e6).toFixed(1)} MB for 64 flows: ${all}`);
});

test('a received record with a flipped ciphertext byte: the device hands it up encrypted, the stack fails it (EBADMSG), the flow says where', async (t) => {
  const g = gen('badrx', { flows: 1, mib: 1 });
  const out = join(dir, 'badrx-flipped.pcap');
  const w = new PcapWriter(out, { resolution: 'ns' });
  const v = new TcpSegmentView();
  let seen = 0;
  let flippedSeq = -1;
  for (const p of openCapture(g.options.out)) {
    const data = Uint8Array.from(p.data);
    // The 5th client-to-server data segment: the local host (the server) receives it. Byte 40 of its payload
    // is inside a record body (the generator's c2s records are longer than a segment). The TCP checksum is
    // left stale: the replay recomputes received checksums (captures taken with checksum offload have
    // partial ones), so the device judges the TLS bytes.
    if (v.parse(data) === 'tcp' && v.dstPort === SERVER_PORT && v.payloadLength > 100 && ++seen === 5) {
      data[v.payloadOffset + 40]! ^= 0x01;
      flippedSeq = v.seq;
    }
    w.write({ data, tsNs: p.tsNs });
  }
  w.close();
  t.true(flippedSeq >= 0);
  const r = await replay(base(out, g.options.keylog));
  const f = r.flows[0]!;
  t.is(r.tlsStat.TlsDecryptError, 1);
  t.true(f.problems.some((p) => /^RX: record \d+ failed authentication .*\(socket error EBADMSG\)$/.test(p)), f.problems.join('\n'));
  t.true(f.rx.plaintextBytes < g.flows[0]!.clientToServer.bytes, 'nothing after the bad record is delivered');
  t.true(f.tx.wireMatch, 'the other direction is unharmed');
  t.is(f.tx.plaintextSha256, g.flows[0]!.serverToClient.sha256);
});
