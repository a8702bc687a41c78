// End-to-end world for issue 4: two Hosts on a Link, each with its own emulated Nic, a reference driver
// (mlx5 or nfp) probed with its own TlsStack's kernel helpers, and one TCP connection A->B on which user
// space "did a handshake" (plain bytes each way) and then installed TLS_TX/TLS_RX with the same random
// crypto_info per direction, as an application would after a TLS 1.2 handshake. Everything is seeded.
import type { ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import { nodeBackend } from '../../emulator/crypto/index.ts';
import { Nic } from '../../emulator/nic/nic.ts';
import type { NicProfile } from '../../emulator/nic/types.ts';
import type { CryptoInfo } from '../../emulator/tls/crypto-info.ts';
import { sealRecord } from '../../emulator/tls/record-crypto.ts';
import { CONTENT_APPLICATION_DATA, TLS_MAX_PAYLOAD_SIZE } from '../../emulator/tls/record.ts';
import { TcpSegmentView } from '../../emulator/wire/packet.ts';
import { seqDiff } from '../../emulator/wire/seq.ts';
import type { DirStream } from '../../testbed/world.ts';
import { concatBytes } from '../../emulator/bytes.ts';
import { mlx5Driver, nfpDriver, type DriverModule, type ProbeOptions } from '../../driver-api/drivers/index.ts';
import { Host } from '../../driver-api/host/host.ts';
import { randomCryptoInfo } from '../../testbed/world.ts';
import { Link, randomImpairment, type ImpairFn, type Impairment, type LinkDirection } from '../../driver-api/host/link.ts';
import { MAC_A, MAC_B } from '../../driver-api/host/pair.ts';
import { Rng } from '../../driver-api/host/rng.ts';
import { Sim } from '../../driver-api/host/sim.ts';
import type { TcpConfig, TcpSocket } from '../../driver-api/host/tcp.ts';
import type { NetDevFeatures, NetDevice, SkBuff, TlsDevOps, TlsKernelHelpers } from '../../driver-api/ops.ts';
import { TAG_PLACEHOLDER, TlsStack, type TlsSocket, type TlsStackEvent } from '../../driver-api/stack/index.ts';

export type Side = 'a' | 'b';
export type DriverName = 'mlx5' | 'nfp';

export type E2eOptions = {
  driver: DriverName;
  keyBits: 128 | 256;
  seed: number;
  /** Random netem-like impairment on both directions (seeded from `seed`). */
  loss?: number;
  reorder?: number;
  /** A scripted impairment instead of (or, returning 'pass', alongside) the random one. */
  impair?: ImpairFn;
  /** Per-side driver knobs (mlx5 psvDelayUs, nfp rxResyncType...). */
  driverOpts?: Partial<Record<Side, ProbeOptions>>;
  nicProfile?: Partial<NicProfile>;
  features?: Partial<Record<Side, Partial<NetDevFeatures>>>;
  /** Wrap a side's tlsdev_ops (fault injection around a real driver). */
  wrapOps?: Partial<Record<Side, (ops: TlsDevOps) => TlsDevOps>>;
  tcp?: Partial<TcpConfig>;
  /**
   * Stand in for the qdisc between TCP and the driver's ndo_start_xmit: `send` transmits now; the hook may
   * call it later (on the sim clock) or not at all.
   */
  xmitHook?: Partial<Record<Side, (skb: SkBuff, send: (skb: SkBuff) => void) => void>>;
};

/** One host with everything under it. */
export type E2eHost = {
  side: Side;
  host: Host;
  nic: Nic;
  netdev: NetDevice;
  stack: TlsStack;
  /** [seq, payload length] of every skb the SW fallback (tls_encrypt_skb, called by the driver) produced. */
  fallback: Array<[number, number]>;
  /** Everything the stack logged (driver calls, offload decisions, tls_device_decrypted, violations). */
  events: TlsStackEvent[];
};

export type E2eWorld = {
  sim: Sim;
  rng: Rng;
  link: Link;
  a: E2eHost;
  b: E2eHost;
  opts: E2eOptions;
};

const PORT = 4433;

export function makeWorld(opts: E2eOptions): E2eWorld {
  const sim = new Sim();
  const rng = new Rng(opts.seed);
  const random = opts.loss || opts.reorder
    ? randomImpairment(rng.fork('link'), { loss: opts.loss ?? 0, reorder: opts.reorder ?? 0, reorderDelayUs: 300 })
    : null;
  const scripted = opts.impair;
  const impair: ImpairFn | undefined = scripted || random
    ? (f, d, i) => {
      const s = scripted ? scripted(f, d, i) : 'pass';
      return s !== 'pass' || !random ? s : random(f, d, i);
    }
    : undefined;
  const link = new Link(sim, { latencyUs: 40, rateBytesPerSec: 1_250_000_000, capture: true, ...(impair ? { impair } : {}) });
  const driver: DriverModule = opts.driver === 'mlx5' ? mlx5Driver : nfpDriver;
  const sched = (d: number, fn: () => void) => void sim.schedule(d, fn);
  const mk = (side: Side, ip: string, mac: Uint8Array, peerMac: Uint8Array): E2eHost => {
    const host = new Host(sim, rng.fork(`host-${side}`), { name: side, ip, mac, peerMac, ...(opts.tcp ? { tcp: opts.tcp } : {}) });
    const nic = new Nic({ backend: nodeBackend, ...(opts.nicProfile ? { profile: opts.nicProfile } : {}) });
    const events: TlsStackEvent[] = [];
    const stack = new TlsStack({ backend: nodeBackend, log: (e) => events.push(e) });
    const fallback: Array<[number, number]> = [];
    const kernel: TlsKernelHelpers = stack.kernelHelpers((skb) => host.netifReceiveSkb(skb));
    // Count what the software fallback encrypted for the driver (tx_tls_encrypted_bytes does not see it).
    const view = new TcpSegmentView();
    const encryptSkb = kernel.tlsEncryptSkb;
    kernel.tlsEncryptSkb = (skb: SkBuff) => {
      const out = encryptSkb(skb);
      if (out && view.parse(out.data) === 'tcp' && view.payloadLength > 0) fallback.push([view.seq, view.payloadLength]);
      return out;
    };
    const features = opts.features?.[side];
    const probed = driver.probe(nic, kernel, {
      name: `${opts.driver}_${side}`, schedule: sched, ...(features ? { features } : {}), ...opts.driverOpts?.[side],
    });
    const wrap = opts.wrapOps?.[side];
    let netdev: NetDevice = wrap && probed.tlsdevOps ? { ...probed, tlsdevOps: wrap(probed.tlsdevOps) } : probed;
    const hook = opts.xmitHook?.[side];
    if (hook) {
      const send = (skb: SkBuff) => probed.startXmit(skb);
      netdev = { ...netdev, startXmit: (skb: SkBuff) => hook(skb, send) };
    }
    host.attachNetdev(netdev);
    return { side, host, nic, netdev, stack, fallback, events };
  };
  const a = mk('a', '10.4.0.1', MAC_A, MAC_B);
  const b = mk('b', '10.4.0.2', MAC_B, MAC_A);
  link.attach(a.nic, b.nic);
  a.nic.attachWire(link.sender('a'));
  b.nic.attachWire(link.sender('b'));
  return { sim, rng, link, a, b, opts };
}

export { randomCryptoInfo };

/** One direction of the connection as the tests check it. */
export type E2eDir = DirStream & {
  /** Sender's side. */
  from: Side;
  /** Sender's initial sequence number + 1: stream offset 0 (filled in by wireStream from the SYN). */
  isn1: number;
  /** The sender's TLS socket. */
  tx: TlsSocket;
  /** The server's port: tells this connection's frames from another's on the same link. */
  port: number;
};

export type E2eConn = {
  client: TlsSocket;
  server: TlsSocket;
  ab: E2eDir;
  ba: E2eDir;
  /** Writes of the app phase (call before running; each side writes once both installed keys). */
  write(from: Side, data: Uint8Array): void;
};

export type ConnOptions = {
  /** Handshake byte counts (client hello flight, server flight). */
  hsA?: number;
  hsB?: number;
  /** Application writes queued per side; each runs once both sides have installed TLS. */
  writesA?: Uint8Array[];
  writesB?: Uint8Array[];
  /** Called once both sides have TLS_TX and TLS_RX (e.g. to schedule mid-stream events). */
  onInstalled?: () => void;
  port?: number;
};

/**
 * Connect A->B, exchange handshake bytes in lockstep (A's flight; B reads it all, installs TLS_RX, sends its
 * flight, installs TLS_TX; A reads B's flight, installs both), then each side writes its application data.
 * B holds its first TLS record until A has installed TLS_RX, as a TLS peer does until it has the client's
 * Finished: otherwise TLS bytes could reach A's socket before its keys (user space races the kernel).
 */
export function connectTls(w: E2eWorld, o: ConnOptions = {}): E2eConn {
  const rng = w.rng.fork(`conn-${o.port ?? PORT}`);
  const infoAB = randomCryptoInfo(w.opts.keyBits, rng);
  const infoBA = randomCryptoInfo(w.opts.keyBits, rng);
  const hsA = rng.bytes(o.hsA ?? 517);
  const hsB = rng.bytes(o.hsB ?? 4000);
  const pendingA: Uint8Array[] = [...(o.writesA ?? [])];
  const pendingB: Uint8Array[] = [...(o.writesB ?? [])];
  let installedA = false;
  let installedB = false;
  let client: TlsSocket | null = null;
  let server: TlsSocket | null = null;
  const port = o.port ?? PORT;
  const ab = { from: 'a', dir: 'a>b', info: infoAB, handshake: hsA, writes: [], received: [], handshakeReceived: 0, isn1: 0, port } as unknown as E2eDir;
  const ba = { from: 'b', dir: 'b>a', info: infoBA, handshake: hsB, writes: [], received: [], handshakeReceived: 0, isn1: 0, port } as unknown as E2eDir;
  const flush = () => {
    if (!installedA || !installedB) return;
    while (pendingA.length) doWrite('a', pendingA.shift()!);
    while (pendingB.length) doWrite('b', pendingB.shift()!);
  };
  const doWrite = (from: Side, data: Uint8Array) => {
    const d = from === 'a' ? ab : ba;
    d.writes.push(data);
    d.tx.send(data);
  };
  w.b.host.listen(port, (sock: TcpSocket) => {
    const s = attachTls(w.b.stack, sock);
    server = s;
    ba.tx = s;
    s.onData((data, type) => {
      if (type === undefined) {
        ab.handshakeReceived += data.length;
        if (ab.handshakeReceived === hsA.length) {
          s.setCryptoInfo('rx', infoAB);
          s.send(hsB);
          s.setCryptoInfo('tx', infoBA);
          installedB = true;
        }
        return;
      }
      ab.received.push(data.slice());
    });
  });
  const c = w.a.host.connect(w.b.host.ip, port);
  const cl = attachTls(w.a.stack, c);
  client = cl;
  ab.tx = cl;
  c.onEstablished(() => cl.send(hsA));
  cl.onData((data, type) => {
    if (type === undefined) {
      ba.handshakeReceived += data.length;
      if (ba.handshakeReceived === hsB.length) {
        cl.setCryptoInfo('tx', infoAB);
        cl.setCryptoInfo('rx', infoBA);
        installedA = true;
        o.onInstalled?.();
        flush();
      }
      return;
    }
    ba.received.push(data.slice());
  });
  return {
    get client() {
      return client!;
    },
    get server() {
      return server!;
    },
    ab,
    ba,
    write(from, data) {
      if (installedA && installedB) doWrite(from, data);
      else (from === 'a' ? pendingA : pendingB).push(data);
    },
  };
}

/**
 * setsockopt(TCP_ULP, "tls"). In the kernel the TLS context hangs off the very struct sock every skb points
 * to; here the host's TcpSocket and the stack's Sock are separate objects, so point skb->sk at the stack's
 * (as test/host-segments.test.ts does), or drivers see no tls_context on transmitted skbs.
 */
export function attachTls(stack: TlsStack, sock: TcpSocket): TlsSocket {
  const s = stack.attach(sock);
  sock.sock = s.sk;
  return s;
}

/** Stream offsets of record headers a sequence of writes produces after `hsLen` handshake bytes. */
export function recordOffsets(hsLen: number, writes: readonly Uint8Array[]): number[] {
  const out: number[] = [];
  let off = hsLen;
  for (const wr of writes) {
    let o = 0;
    do {
      const n = Math.min(TLS_MAX_PAYLOAD_SIZE, wr.length - o);
      out.push(off);
      off += n + 29; // TLS 1.2 GCM overhead: header 5, explicit nonce 8, tag 16
      o += n;
    } while (o < wr.length);
  }
  return out;
}

/**
 * A scripted impairment keyed by stream offset: `pick(offset, length, copy)` sees each payload frame of
 * `dir` (offset from ISN + 1, learned from the SYN; `copy` counts earlier frames with the same seq).
 */
export function byOffset(dir: LinkDirection, pick: (offset: number, len: number, copy: number) => Impairment): ImpairFn {
  const v = new TcpSegmentView();
  let isn1: number | null = null;
  const seen = new Map<number, number>();
  return (frame, d) => {
    if (d !== dir || v.parse(frame) !== 'tcp') return 'pass';
    if (v.syn) {
      isn1 = (v.seq + 1) >>> 0;
      return 'pass';
    }
    if (isn1 === null || v.payloadLength === 0) return 'pass';
    const copy = seen.get(v.seq) ?? 0;
    seen.set(v.seq, copy + 1);
    return pick(seqDiff(v.seq, isn1), v.payloadLength, copy);
  };
}

/** Application writes of random sizes in [1, maxLen] totalling about `total` bytes. */
export function randomWrites(rng: Rng, total: number, maxLen = 65536): Uint8Array[] {
  const out: Uint8Array[] = [];
  let n = 0;
  while (n < total) {
    const len = 1 + rng.int(maxLen);
    out.push(rng.bytes(len));
    n += len;
  }
  return out;
}

export function sha256(parts: readonly Uint8Array[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

export function totalLength(parts: readonly Uint8Array[]): number {
  return parts.reduce((n, p) => n + p.length, 0);
}

/**
 * The TCP payload a direction should carry: the handshake as is, then each write cut into records of at
 * most 16384 plaintext bytes (tls_push_data) sealed in software (tls_sw) with consecutive record numbers.
 * Also returns the stream offset where each record starts and where its tag lies.
 */
export function expectedStream(d: E2eDir): { bytes: Uint8Array; tlsStart: number; tags: number[]; starts: Array<[number, bigint]> } {
  const parts: Uint8Array[] = [d.handshake];
  const tags: number[] = [];
  const starts: Array<[number, bigint]> = [];
  let off = d.handshake.length;
  let sn = 0n;
  for (let i = 0; i < 8; i++) sn = (sn << 8n) | BigInt(d.info.recSeq[i]!);
  for (const wr of d.writes) {
    let o = 0;
    do {
      const n = Math.min(TLS_MAX_PAYLOAD_SIZE, wr.length - o);
      starts.push([off, sn]);
      const rec = sealRecord(nodeBackend, d.info, sn++, CONTENT_APPLICATION_DATA, wr.subarray(o, o + n));
      parts.push(rec);
      off += rec.length;
      tags.push(off - 16);
      o += n;
    } while (o < wr.length);
  }
  return { bytes: concatBytes(parts), tlsStart: d.handshake.length, tags, starts };
}

export type WireDir = {
  /** Reassembled stream: first copy of each byte seen on the wire (as sent, before impairment). */
  stream: Uint8Array;
  covered: Uint8Array;
  /** Every copy that disagreed with the first copy of the same byte: [offset, count]. */
  disagreements: number;
  /** Payload bytes at or after `from` summed over every frame copy (retransmits included). */
  bytesFrom(from: number): number;
  /** Frames carrying payload at or after `from` (retransmits included). */
  framesFrom(from: number): number;
  frames: number;
};

/** Reassemble one direction's TCP payload from the link capture. */
export function wireStream(w: E2eWorld, d: E2eDir, length: number): WireDir {
  const stream = new Uint8Array(length);
  const covered = new Uint8Array(length);
  const v = new TcpSegmentView();
  const pieces: Array<[number, number]> = [];
  // Stream offset 0 is ISN + 1: take the ISN from the direction's SYN on the wire.
  const mine = () => (d.dir === 'a>b' ? v.dstPort : v.srcPort) === d.port;
  for (const e of w.link.log) {
    if (e.dir === d.dir && e.frame && v.parse(e.frame) === 'tcp' && mine() && v.syn) {
      d.isn1 = (v.seq + 1) >>> 0;
      break;
    }
  }
  let disagreements = 0;
  let frames = 0;
  for (const e of w.link.log) {
    if (e.dir !== d.dir || !e.frame) continue;
    if (v.parse(e.frame) !== 'tcp' || !mine() || v.payloadLength === 0) continue;
    frames++;
    const off = seqDiff(v.seq, d.isn1);
    const pl = v.payload();
    pieces.push([off, pl.length]);
    for (let j = 0; j < pl.length; j++) {
      const k = off + j;
      if (k < 0 || k >= length) continue;
      if (covered[k]) {
        if (stream[k] !== pl[j]) disagreements++;
      } else {
        stream[k] = pl[j]!;
        covered[k] = 1;
      }
    }
  }
  return {
    stream, covered, disagreements, frames,
    bytesFrom(from: number) {
      let n = 0;
      for (const [o, l] of pieces) n += Math.max(0, o + l - Math.max(o, from));
      return n;
    },
    framesFrom(from: number) {
      return pieces.filter(([o, l]) => o + l > from).length;
    },
  };
}

/** Fallback-encrypted payload bytes at stream offset >= `from` (the TLS part) for direction `d`. */
export function fallbackBytesFrom(h: E2eHost, d: E2eDir, from: number): number {
  let n = 0;
  for (const [seq, len] of h.fallback) {
    const o = seqDiff(seq, d.isn1);
    n += Math.max(0, o + len - Math.max(o, from));
  }
  return n;
}

/** Run the simulation until nothing is left to do (bounded, so a livelock fails instead of hanging). */
export function runIdle(w: E2eWorld, maxEvents = 5_000_000): void {
  const r = w.sim.run({ maxEvents });
  if (r.reason !== 'idle') throw new Error(`simulation stopped: ${r.reason}`);
}

/** Close both TLS sockets (tls_dev_del per offloaded direction) and let the FINs go. */
export function closeBoth(w: E2eWorld, c: E2eConn): void {
  c.client.close();
  c.server.close();
  runIdle(w);
}

export function hostOf(w: E2eWorld, side: Side): E2eHost {
  return side === 'a' ? w.a : w.b;
}

// ---- shared assertions ----

/** Every byte each application wrote is read by the other, in order, exactly once (SHA-256 and length). */
export function assertDelivery(t: ExecutionContext, c: E2eConn): void {
  for (const d of [c.ab, c.ba]) {
    t.is(d.handshakeReceived, d.handshake.length, `${d.dir}: handshake bytes read`);
    t.is(totalLength(d.received), totalLength(d.writes), `${d.dir}: application bytes read`);
    t.is(sha256(d.received), sha256(d.writes), `${d.dir}: application bytes differ`);
  }
}

/**
 * The TCP payload on the wire (every copy, retransmits included) equals software TLS of the same records,
 * every byte reached the wire, and no 16-byte window of any frame holds the stack's tag placeholder.
 * Returns the expected stream for counter checks.
 */
export function assertWire(t: ExecutionContext, w: E2eWorld, d: E2eDir): { expect: ReturnType<typeof expectedStream>; wire: WireDir } {
  const expect = expectedStream(d);
  const wire = wireStream(w, d, expect.bytes.length);
  const gap = wire.covered.indexOf(0);
  t.is(gap, -1, `${d.dir}: stream byte ${gap} of ${expect.bytes.length} never reached the wire`);
  t.is(wire.disagreements, 0, `${d.dir}: a retransmitted copy differs from the first`);
  let bad = -1;
  for (let i = 0; i < expect.bytes.length; i++) {
    if (wire.stream[i] !== expect.bytes[i]) {
      bad = i;
      break;
    }
  }
  t.is(bad, -1, `${d.dir}: wire byte at stream offset ${bad} differs from software TLS`);
  let tagsOk = 0;
  for (const off of expect.tags) {
    let ok = true;
    for (let k = 0; k < 16; k++) if (wire.stream[off + k] !== expect.bytes[off + k]) ok = false;
    if (ok) tagsOk++;
  }
  t.is(tagsOk, expect.tags.length, `${d.dir}: record tags equal the software tags`);
  t.is(placeholderHits(w, d.dir), 0, `${d.dir}: tag placeholder on the wire`);
  return { expect, wire };
}

/** Frames of direction `dir` whose TCP payload contains the stack's tag placeholder anywhere. */
export function placeholderHits(w: E2eWorld, dir: LinkDirection): number {
  const v = new TcpSegmentView();
  const p0 = TAG_PLACEHOLDER[0]!;
  let hits = 0;
  for (const e of w.link.log) {
    if (e.dir !== dir || !e.frame || v.parse(e.frame) !== 'tcp') continue;
    const pl = v.payload();
    outer: for (let j = 0; j + 16 <= pl.length; j++) {
      if (pl[j] !== p0) continue;
      for (let k = 1; k < 16; k++) if (pl[j + k] !== TAG_PLACEHOLDER[k]) continue outer;
      hits++;
      break;
    }
  }
  return hits;
}

/** The add/del/resync sequence one stack made, compactly: "add tx 0", "resync rx 0", "del rx". */
export function callSummary(h: E2eHost): string[] {
  return h.stack.callLog.map((c) => {
    const op = c.op.replace('tls_dev_', '');
    return c.op === 'tls_dev_del' ? `${op} ${c.dir}` : `${op} ${c.dir} ${c.threw ? 'threw' : c.result}`;
  });
}

/** No tls_dev_resync after the first tls_dev_del of the same direction (SPEC section 2). */
export function resyncAfterDel(h: E2eHost): number {
  const deleted = new Set<string>();
  let n = 0;
  for (const c of h.stack.callLog) {
    if (c.op === 'tls_dev_del') deleted.add(c.dir);
    else if (c.op === 'tls_dev_resync' && deleted.has(c.dir)) n++;
  }
  return n;
}
