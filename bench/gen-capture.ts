// A large, real TLS 1.2 capture for the replay benchmark (issue 7): N interleaved AES-GCM connections,
// each a TCP handshake, a TLS 1.2 RSA-style handshake (ClientHello, ServerHello + ServerHelloDone,
// ClientKeyExchange, ChangeCipherSpec and an encrypted Finished with its RFC 5246 7.4.9 verify_data both
// ways), application data both ways (mostly server to client, a download; --direction upload turns it
// round), close_notify and FIN.
// Records are sealed with the key block of a random master secret (RFC 5246 6.3, 5288); the key log holds
// the CLIENT_RANDOM lines, so tshark and `tlsnic replay` both decrypt it. Written streaming: memory does
// not grow with --mib.
//
// usage: node --import=tsx bench/gen-capture.ts --out C.pcap --keylog K.keylog [--flows 16] [--mib 1024]
//          [--record 16384] [--mss 1448] [--seed 1] [--cipher aes128|aes256] [--tuples random|sequential]
//          [--direction download|upload] [--manifest M.json]
import { createCipheriv, createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { concatBytes } from '../emulator/bytes.ts';
import { nodeBackend } from '../emulator/crypto/index.ts';
import { ConfigError } from '../emulator/errors.ts';
import { PcapWriter } from '../emulator/capture/writer.ts';
import type { CryptoInfo } from '../emulator/tls/crypto-info.ts';
import { tls12KeyBlock, tls12Prf } from '../emulator/tls/keys.ts';
import { sealRecord } from '../emulator/tls/record-crypto.ts';
import {
  CONTENT_ALERT, CONTENT_APPLICATION_DATA, CONTENT_CHANGE_CIPHER_SPEC, CONTENT_HANDSHAKE, TLS_MAX_PAYLOAD_SIZE, TLS_HEADER_SIZE,
} from '../emulator/tls/record.ts';
import { fold, sum16 } from '../emulator/wire/checksum.ts';

export type GenOptions = {
  out: string;
  keylog: string;
  flows: number;
  /** Application plaintext over all flows and both directions, MiB. */
  mib: number;
  /** Plaintext bytes per application record. */
  record: number;
  mss: number;
  seed: number;
  cipher: 'aes128' | 'aes256';
  /**
   * Client endpoints. 'random': each client a random address in 10.0.0.0/8 and a random port in Linux's
   * default ephemeral range (ip_local_port_range 32768..60999), as clients reaching a server are; drawn
   * from a stream of their own (a function of --seed), so the two layouts differ only in the tuples.
   * 'sequential': 10.128.0.1 + i, port 1024 + i, the layout before GEN_VERSION 2. Toeplitz is linear over
   * GF(2), so such structured tuples spread over RSS queues worse than real traffic does (16 flows: 7/9
   * over two queues). Absent: 'sequential', what earlier callers of generateCapture() were written
   * against; the command line defaults to 'random'.
   */
  tuples?: 'random' | 'sequential';
  /**
   * Which way the bulk goes. 'download' (default): the server sends it, so a replay (local host: the server)
   * mostly transmits (TX offload); 'upload': the clients send it and the replay mostly receives (RX offload).
   * Of every CLIENT_EVERY writes of a flow one goes the other way (a request or a response).
   */
  direction?: 'download' | 'upload';
};

export type GenDir = { bytes: number; records: number; sha256: string };
export type GenFlow = { client: string; server: string; clientToServer: GenDir; serverToClient: GenDir };
export type GenResult = {
  options: GenOptions;
  packets: number;
  /** Application plaintext bytes, all flows, both directions. */
  plaintextBytes: number;
  /** TCP payload bytes (TLS records on the wire), all flows. */
  tcpPayloadBytes: number;
  /** Application data records, all flows. */
  records: number;
  flows: GenFlow[];
};

export const GEN_DEFAULTS: Required<Omit<GenOptions, 'out' | 'keylog'>> = {
  flows: 16, mib: 1024, record: 16384, mss: 1448, seed: 1, cipher: 'aes128', tuples: 'random', direction: 'download',
};

/**
 * Bumped whenever the same options make a different capture, so a cache of generated captures (bench/run.ts)
 * keyed by it is not reused stale. 2: --tuples, random client endpoints on the command line.
 */
export const GEN_VERSION = 2;

/** TLS_RSA_WITH_AES_128_GCM_SHA256 / _256_GCM_SHA384 (RFC 5288): no key exchange tshark would need beyond the master secret. */
const SUITE = { aes128: 0x009c, aes256: 0x009d } as const;
/** Of every CLIENT_EVERY writes of a flow, the first goes against the bulk (a request, or an upload's response). */
const CLIENT_EVERY = 16;
/** Records per send() call: TCP cuts the call's bytes into MSS segments across record boundaries. */
const RECORDS_PER_WRITE = 4;
const SERVER_IP = [10, 0, 0, 1];
/** Linux's default net.ipv4.ip_local_port_range: where a client's ephemeral port comes from. */
const EPHEMERAL_LO = 32768;
const EPHEMERAL_HI = 60999;
const SERVER_PORT = 4433;
const HDR = 14 + 20 + 20;
const TCP_FIN = 0x01;
const TCP_SYN = 0x02;
const TCP_PSH = 0x08;
const TCP_ACK = 0x10;

/** mulberry32, as test/helpers/prng.ts: the whole capture is a function of --seed. */
class Rng {
  constructor(private s: number) {}
  u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.u32();
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (v >>> (8 * j)) & 0xff;
    }
    return out;
  }
}

/** One direction of one connection: its header template, TCP seq, TLS keys and plaintext digest. */
type Side = {
  tmpl: Uint8Array;
  seq: number;
  ipId: number;
  info: CryptoInfo | null;
  recSeq: bigint;
  hash: Hash;
  bytes: number;
  records: number;
  /** Bytes sent but not yet acknowledged by a pure ACK of the peer. */
  unacked: number;
};

type Conn = { index: number; client: Side; server: Side; left: number; writes: number; clientIp: number[]; clientPort: number };

function hsMessage(type: number, body: Uint8Array): Uint8Array {
  const m = new Uint8Array(4 + body.length);
  m[0] = type;
  m[1] = body.length >>> 16;
  m[2] = (body.length >>> 8) & 0xff;
  m[3] = body.length & 0xff;
  m.set(body, 4);
  return m;
}

function plainRecord(type: number, body: Uint8Array): Uint8Array {
  const r = new Uint8Array(TLS_HEADER_SIZE + body.length);
  r[0] = type;
  r[1] = 3;
  r[2] = 3;
  r[3] = body.length >>> 8;
  r[4] = body.length & 0xff;
  r.set(body, TLS_HEADER_SIZE);
  return r;
}

const cat = (...xs: Uint8Array[]) => concatBytes(xs);

/** Client address and port of each flow; random ones are distinct and never the server's address. */
function clientEndpoints(o: GenOptions): Array<{ ip: number[]; port: number }> {
  const out: Array<{ ip: number[]; port: number }> = [];
  if ((o.tuples ?? 'sequential') === 'sequential') {
    for (let i = 0; i < o.flows; i++) {
      const n = 0x0a800001 + i; // 10.128.0.1 + i
      out.push({ ip: [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff], port: 1024 + (i % 64000) });
    }
    return out;
  }
  // Its own stream: the main one draws the same ISNs, keys and plaintext whatever the layout.
  const rng = new Rng((o.seed ^ 0x7475706c) >>> 0);
  const taken = new Set<number>();
  while (out.length < o.flows) {
    const host = rng.u32() & 0xffffff;
    const port = EPHEMERAL_LO + (rng.u32() % (EPHEMERAL_HI - EPHEMERAL_LO + 1));
    const low = host & 0xff;
    if (low === 0 || low === 0xff || host === 0x000001) continue; // not .0, .255 or the server 10.0.0.1
    const key = host * 65536 + port;
    if (taken.has(key)) continue;
    taken.add(key);
    out.push({ ip: [10, host >>> 16, (host >>> 8) & 0xff, low], port });
  }
  return out;
}

export function generateCapture(opts: GenOptions): GenResult {
  const o: GenOptions = { ...opts, tuples: opts.tuples ?? 'sequential' };
  checkOptions(o);
  const rng = new Rng(o.seed);
  const suite = SUITE[o.cipher];
  const prfHash = o.cipher === 'aes256' ? 'sha384' : 'sha256';
  // Application plaintext: views into one pseudo-random pool (AES-CTR keystream of the seed) at random
  // offsets, so records differ and generating them costs nothing next to sealing.
  const POOL = 1 << 20;
  const pool = new Uint8Array(createCipheriv('aes-128-ctr', rng.bytes(16), rng.bytes(16)).update(new Uint8Array(POOL + TLS_MAX_PAYLOAD_SIZE)));
  const pcap = new PcapWriter(o.out, { resolution: 'ns' });
  const keyFd = openSync(o.keylog, 'w');
  const frame = new Uint8Array(HDR + Math.max(o.mss, 1 << 16));
  let tsNs = 1_700_000_000_000_000_000n + BigInt(o.seed) * 1_000_000_000n;
  let packets = 0;
  let tcpPayloadBytes = 0;

  const template = (srcIp: number[], dstIp: number[], sport: number, dport: number, toServer: boolean): Uint8Array => {
    const t = new Uint8Array(HDR);
    t.set(toServer ? [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1] : [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2], 0);
    t[12] = 0x08;
    t[14] = 0x45;
    t[20] = 0x40; // DF
    t[22] = 64;
    t[23] = 6;
    t.set(srcIp, 26);
    t.set(dstIp, 30);
    t[34] = sport >>> 8;
    t[35] = sport & 0xff;
    t[36] = dport >>> 8;
    t[37] = dport & 0xff;
    t[46] = 0x50;
    t[48] = 0xff; // window 65535 (scaled by nothing: no options)
    t[49] = 0xff;
    return t;
  };

  /** One segment from `from` to `to`: headers from the template, checksums filled, written to the pcap. */
  const send = (from: Side, to: Side, flags: number, payload: Uint8Array | null): void => {
    const len = payload ? payload.length : 0;
    frame.set(from.tmpl, 0);
    if (payload) frame.set(payload, HDR);
    const ipLen = 40 + len;
    frame[16] = ipLen >>> 8;
    frame[17] = ipLen & 0xff;
    frame[18] = (from.ipId >>> 8) & 0xff;
    frame[19] = from.ipId & 0xff;
    from.ipId = (from.ipId + 1) & 0xffff;
    const ipSum = ~fold(sum16(frame, 14, 20)) & 0xffff;
    frame[24] = ipSum >>> 8;
    frame[25] = ipSum & 0xff;
    writeU32(frame, 38, from.seq);
    writeU32(frame, 42, flags & TCP_ACK ? to.seq : 0);
    frame[47] = flags;
    // RFC 793 pseudo-header: addresses, protocol, TCP length.
    const acc = sum16(frame, 26, 8) + 6 + 20 + len;
    const tcpSum = ~fold(sum16(frame, 34, 20 + len, acc)) & 0xffff;
    frame[50] = tcpSum >>> 8;
    frame[51] = tcpSum & 0xff;
    pcap.write({ data: frame.subarray(0, HDR + len), tsNs });
    tsNs += 2_000n;
    packets++;
    tcpPayloadBytes += len;
    from.seq = (from.seq + len + (flags & (TCP_SYN | TCP_FIN) ? 1 : 0)) >>> 0;
    if (len) from.unacked += len;
    if (flags & TCP_ACK) to.unacked = 0;
  };

  /** What one send() call puts on the wire: `bytes` cut into MSS segments; the peer ACKs every second one. */
  const write = (from: Side, to: Side, bytes: Uint8Array): void => {
    for (let off = 0; off < bytes.length; off += o.mss) {
      const end = Math.min(bytes.length, off + o.mss);
      send(from, to, TCP_ACK | (end === bytes.length ? TCP_PSH : 0), bytes.subarray(off, end));
      if (from.unacked >= 2 * o.mss) send(to, from, TCP_ACK, null);
    }
  };

  const side = (tmpl: Uint8Array): Side => ({
    tmpl, seq: rng.u32(), ipId: rng.u32() & 0xffff, info: null, recSeq: 0n, hash: createHash('sha256'), bytes: 0, records: 0, unacked: 0,
  });

  const seal = (s: Side, type: number, plaintext: Uint8Array): Uint8Array => sealRecord(nodeBackend, s.info!, s.recSeq++, type, plaintext);

  const conns: Conn[] = [];
  const total = Math.floor(o.mib * 2 ** 20);
  const perFlow = Math.floor(total / o.flows);
  const endpoints = clientEndpoints(o);
  for (let i = 0; i < o.flows; i++) {
    const { ip: clientIp, port: clientPort } = endpoints[i]!;
    const c = side(template(clientIp, SERVER_IP, clientPort, SERVER_PORT, true));
    const s = side(template(SERVER_IP, clientIp, SERVER_PORT, clientPort, false));
    conns.push({ index: i, client: c, server: s, left: perFlow + (i < total % o.flows ? 1 : 0), writes: 0, clientIp, clientPort });
  }

  // Handshakes, interleaved: every connection's first flight, then every second flight, and so on.
  const hs = conns.map((k) => {
    const clientRandom = rng.bytes(32);
    const serverRandom = rng.bytes(32);
    const master = rng.bytes(48);
    writeSync(keyFd, `CLIENT_RANDOM ${hex(clientRandom)} ${hex(master)}\n`);
    const kb = tls12KeyBlock(master, clientRandom, serverRandom, suite, { clientExplicitNonce: rng.bytes(8), serverExplicitNonce: rng.bytes(8) });
    const suiteBytes = Uint8Array.of(suite >>> 8, suite & 0xff);
    // RFC 5246 7.4.1.2: version, random, session_id<0>, cipher_suites<2>, compression_methods<1> = null.
    const ch = hsMessage(1, cat(Uint8Array.of(3, 3), clientRandom, Uint8Array.of(0, 0, 2), suiteBytes, Uint8Array.of(1, 0)));
    const sh = hsMessage(2, cat(Uint8Array.of(3, 3), serverRandom, Uint8Array.of(0), suiteBytes, Uint8Array.of(0)));
    const shd = hsMessage(14, new Uint8Array(0));
    // RSA ClientKeyExchange: the encrypted pre-master secret (opaque here: the key log carries the master secret).
    const cke = hsMessage(16, cat(Uint8Array.of(1, 0), rng.bytes(256)));
    const verify = (label: string, transcript: Uint8Array) =>
      hsMessage(20, tls12Prf(prfHash, master, label, createHash(prfHash).update(transcript).digest(), 12));
    const cFin = verify('client finished', cat(ch, sh, shd, cke));
    const sFin = verify('server finished', cat(ch, sh, shd, cke, cFin));
    return { k, kb, ch, sh, shd, cke, cFin, sFin };
  });
  for (const { k } of hs) send(k.client, k.server, TCP_SYN, null);
  for (const { k } of hs) send(k.server, k.client, TCP_SYN | TCP_ACK, null);
  for (const { k } of hs) send(k.client, k.server, TCP_ACK, null);
  for (const { k, ch } of hs) write(k.client, k.server, plainRecord(CONTENT_HANDSHAKE, ch));
  for (const { k, sh, shd } of hs) write(k.server, k.client, plainRecord(CONTENT_HANDSHAKE, cat(sh, shd)));
  const ccs = plainRecord(CONTENT_CHANGE_CIPHER_SPEC, Uint8Array.of(1));
  for (const { k, kb, cke, cFin } of hs) {
    k.client.info = kb.client;
    write(k.client, k.server, cat(plainRecord(CONTENT_HANDSHAKE, cke), ccs, seal(k.client, CONTENT_HANDSHAKE, cFin)));
  }
  for (const { k, kb, sFin } of hs) {
    k.server.info = kb.server;
    write(k.server, k.client, cat(ccs, seal(k.server, CONTENT_HANDSHAKE, sFin)));
  }

  // Application data, round robin: each turn a connection writes up to RECORDS_PER_WRITE records.
  let records = 0;
  let plaintextBytes = 0;
  const parts: Uint8Array[] = [];
  for (let active = conns.filter((k) => k.left > 0); active.length; active = active.filter((k) => k.left > 0)) {
    for (const k of active) {
      const toServer = (k.writes++ % CLIENT_EVERY === 0) !== (o.direction === 'upload');
      const [from, to] = toServer ? [k.client, k.server] : [k.server, k.client];
      parts.length = 0;
      for (let r = 0; r < RECORDS_PER_WRITE && k.left > 0; r++) {
        const n = Math.min(o.record, k.left);
        const at = rng.u32() % POOL;
        const plain = pool.subarray(at, at + n);
        from.hash.update(plain);
        from.bytes += n;
        from.records++;
        k.left -= n;
        parts.push(seal(from, CONTENT_APPLICATION_DATA, plain));
      }
      records += parts.length;
      write(from, to, parts.length === 1 ? parts[0]! : cat(...parts));
    }
  }
  plaintextBytes = conns.reduce((s, k) => s + k.client.bytes + k.server.bytes, 0);

  // close_notify (RFC 5246 7.2.1) both ways, then FIN both ways.
  const closeNotify = Uint8Array.of(1, 0);
  for (const k of conns) {
    write(k.server, k.client, seal(k.server, CONTENT_ALERT, closeNotify));
    write(k.client, k.server, seal(k.client, CONTENT_ALERT, closeNotify));
    send(k.server, k.client, TCP_FIN | TCP_ACK, null);
    send(k.client, k.server, TCP_FIN | TCP_ACK, null);
    send(k.server, k.client, TCP_ACK, null);
  }
  pcap.close();
  closeSync(keyFd);

  const ep = (ip: number[], port: number) => `${ip.join('.')}:${port}`;
  const dir = (s: Side): GenDir => ({ bytes: s.bytes, records: s.records, sha256: s.hash.digest('hex') });
  return {
    options: o,
    packets,
    plaintextBytes,
    tcpPayloadBytes,
    records,
    flows: conns.map((k) => ({
      client: ep(k.clientIp, k.clientPort),
      server: ep(SERVER_IP, SERVER_PORT),
      clientToServer: dir(k.client),
      serverToClient: dir(k.server),
    })),
  };
}

function writeU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = (v >>> 16) & 0xff;
  b[off + 2] = (v >>> 8) & 0xff;
  b[off + 3] = v & 0xff;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

function checkOptions(o: GenOptions): void {
  const int = (name: string, v: number, lo: number, hi: number) => {
    if (!Number.isInteger(v) || v < lo || v > hi) throw new ConfigError(`--${name} must be an integer in ${lo}..${hi}, got ${v}`, { field: `--${name}` });
  };
  int('flows', o.flows, 1, 1 << 20);
  if (!(o.mib > 0) || !Number.isFinite(o.mib)) throw new ConfigError(`--mib must be a positive number, got ${o.mib}`, { field: '--mib' });
  int('record', o.record, 1, TLS_MAX_PAYLOAD_SIZE);
  int('mss', o.mss, 64, 65495);
  int('seed', o.seed, 0, 2 ** 32 - 1);
  if (o.cipher !== 'aes128' && o.cipher !== 'aes256') throw new ConfigError(`--cipher must be aes128 or aes256, got ${o.cipher}`, { field: '--cipher' });
  if (o.tuples !== undefined && o.tuples !== 'random' && o.tuples !== 'sequential') {
    throw new ConfigError(`--tuples must be random or sequential, got ${o.tuples}`, { field: '--tuples' });
  }
  if (o.direction !== undefined && o.direction !== 'download' && o.direction !== 'upload') {
    throw new ConfigError(`--direction must be download or upload, got ${o.direction}`, { field: '--direction' });
  }
}

/** Parses the command line above (also used by bench/run.ts to name cached captures). */
export function parseGenArgs(argv: readonly string[]): GenOptions & { manifest: string | null } {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--') || i + 1 >= argv.length) throw new ConfigError(`unexpected argument '${a}' (options take a value: --name value)`, { field: a });
    values.set(a.slice(2), argv[++i]!);
  }
  const known = new Set(['out', 'keylog', 'flows', 'mib', 'record', 'mss', 'seed', 'cipher', 'tuples', 'direction', 'manifest']);
  for (const k of values.keys()) if (!known.has(k)) throw new ConfigError(`unknown option --${k}`, { field: `--${k}` });
  const out = values.get('out');
  const keylog = values.get('keylog');
  if (!out || !keylog) throw new ConfigError('--out <capture.pcap> and --keylog <file> are required', { field: out ? '--keylog' : '--out' });
  const num = (k: 'flows' | 'mib' | 'record' | 'mss' | 'seed') => (values.has(k) ? Number(values.get(k)) : GEN_DEFAULTS[k]);
  return {
    out, keylog,
    flows: num('flows'), mib: num('mib'), record: num('record'), mss: num('mss'), seed: num('seed'),
    cipher: (values.get('cipher') ?? GEN_DEFAULTS.cipher) as GenOptions['cipher'],
    tuples: (values.get('tuples') ?? GEN_DEFAULTS.tuples) as GenOptions['tuples'],
    ...(values.has('direction') ? { direction: values.get('direction') as GenOptions['direction'] } : {}),
    manifest: values.get('manifest') ?? null,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const { manifest, ...opts } = parseGenArgs(process.argv.slice(2));
    const t0 = performance.now();
    const r = generateCapture(opts);
    const s = (performance.now() - t0) / 1000;
    if (manifest) writeFileSync(manifest, JSON.stringify(r, null, 2) + '\n');
    console.log(`${opts.out}: ${r.flows.length} TLS 1.2 flows, ${r.packets} packets, ${(r.plaintextBytes / 2 ** 20).toFixed(1)} MiB of application data in ${r.records} records, ${s.toFixed(1)} s`);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`gen-capture: ${e.message}`);
      process.exit(2);
    }
    throw e;
  }
}
