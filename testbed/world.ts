// The testbed world: two Hosts on a Link, each with its own emulated Nic, a reference driver probed with its
// own TlsStack's kernel helpers, and N TCP connections A->B on which user space "did a handshake" (plain
// bytes each way) and then installed TLS_TX/TLS_RX, as an application does after a TLS 1.2 handshake.
// Adapted from test/helpers/e2e.ts (makeWorld, connectTls) for many flows and scenario-driven profiles.
// Everything is seeded (STYLE principle 8).
import { ConfigError } from '../emulator/errors.ts';
import { nodeBackend } from '../emulator/crypto/index.ts';
import { Nic } from '../emulator/nic/nic.ts';
import { DEFAULT_SCAN_POLICY, type NicProfile } from '../emulator/nic/types.ts';
import { CIPHER_DESC, TLS_1_2_VERSION, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_256, bigIntToRecSeq, type CryptoInfo, type TlsVersion } from '../emulator/tls/crypto-info.ts';
import { TLS_MAX_PAYLOAD_SIZE } from '../emulator/tls/record.ts';
import { faultyDriver, mlx5Driver, nfpDriver, type DriverModule, type FaultPlan, type FaultyDriver, type ProbeOptions } from '../driver-api/drivers/index.ts';
import { Host } from '../driver-api/host/host.ts';
import { Link, type ImpairFn, type LinkDirection } from '../driver-api/host/link.ts';
import { MAC_A, MAC_B } from '../driver-api/host/pair.ts';
import { Rng } from '../driver-api/host/rng.ts';
import { Sim } from '../driver-api/host/sim.ts';
import type { TcpConfig, TcpSocket } from '../driver-api/host/tcp.ts';
import type { NetDevice } from '../driver-api/ops.ts';
import { TlsStack, type TlsSocket, type TlsStackEvent } from '../driver-api/stack/stack.ts';
import type { DriverProfile } from './schema.ts';

export type Side = 'a' | 'b';

/** TLS 1.2 AES-GCM record overhead: header 5, explicit nonce 8, tag 16. */
export const TLS12_GCM_OVERHEAD = 29;
export const BASE_PORT = 4433;
/** Host A's and host B's addresses on the link. */
export const HOST_IP = { a: '10.4.0.1', b: '10.4.0.2' } as const;

/**
 * The port naming the connection of a socket's tuple (local first, as a device context carries it): B's local
 * port, A's remote one (B accepts every connection, each on a port of its own).
 */
export function serverPortOf(side: Side, tuple: { sport: number; dport: number }): number {
  return side === 'b' ? tuple.sport : tuple.dport;
}

export type WorldOptions = {
  seed: number;
  driver: DriverProfile;
  /** The module of a `{ name: 'module' }` profile (loaded by the caller: see RunOptions.drivers). */
  driverModule?: DriverModule;
  /** The stacks offload TLS 1.3 too (tls13Offload; the NICs need profile.tls13 as well). */
  tls13?: boolean;
  /** Keep a copy of every frame in the link's log (for a capture of the world: tlsnic run --out). */
  captureWire?: boolean;
  nicProfile?: Partial<Record<Side, Partial<NicProfile>>>;
  tcp?: Partial<TcpConfig>;
  impair?: ImpairFn;
  /** Driver faults per side (driver-api/drivers/faulty.ts); a side without a plan runs the plain driver. */
  faults?: Partial<Record<Side, FaultPlan>>;
  /** Each side's TLS stack events (its tlsdev_ops calls among them): tlsnic run --timeline. */
  stackLog?: (side: Side, ev: TlsStackEvent) => void;
};

/** `faulty` is the fault-injecting wrapper when the side has a fault plan (its tallies), else null. */
export type TbHost = { side: Side; host: Host; nic: Nic; netdev: NetDevice; stack: TlsStack; faulty: FaultyDriver | null };

export type TbWorld = { sim: Sim; rng: Rng; link: Link; a: TbHost; b: TbHost };

export function buildWorld(o: WorldOptions): TbWorld {
  const sim = new Sim();
  const rng = new Rng(o.seed);
  const link = new Link(sim, { latencyUs: 40, rateBytesPerSec: 1_250_000_000, ...(o.impair ? { impair: o.impair } : {}), ...(o.captureWire ? { capture: true } : {}) });
  const d = o.driver;
  let driver: DriverModule;
  let knobs: ProbeOptions;
  if (d.name === 'module') {
    if (!o.driverModule) throw new ConfigError(`driver module ${d.path} was not loaded (tlsnic run loads it; from code, pass RunOptions.drivers)`, { field: 'driver.path' });
    driver = o.driverModule;
    knobs = { ...d.options };
  } else if (d.name === 'mlx5') {
    driver = mlx5Driver;
    knobs = {
      ...(d.psvDelayUs !== undefined ? { psvDelayUs: d.psvDelayUs } : {}),
      ...(d.psvNeverAnswers !== undefined ? { psvNeverAnswers: d.psvNeverAnswers } : {}),
      ...(d.psvTimeoutUs !== undefined ? { psvTimeoutUs: d.psvTimeoutUs } : {}),
    };
  } else {
    driver = nfpDriver;
    knobs = { rxResyncType: d.rxResyncType };
  }
  const schedule = (d: number, fn: () => void) => void sim.schedule(d, fn);
  const mk = (side: Side, ip: string, mac: Uint8Array, peerMac: Uint8Array): TbHost => {
    const host = new Host(sim, rng.fork(`host-${side}`), { name: side, ip, mac, peerMac, ...(o.tcp ? { tcp: o.tcp } : {}) });
    const p = o.nicProfile?.[side];
    const nic = new Nic({ backend: nodeBackend, ...(p ? { profile: p } : {}) });
    const log = o.stackLog;
    const stack = new TlsStack({ backend: nodeBackend, tls13Offload: o.tls13 ?? false, ...(log ? { log: (ev: TlsStackEvent) => log(side, ev) } : {}) });
    const plan = o.faults?.[side];
    const faulty = plan && plan.length ? faultyDriver(driver, plan) : null;
    const netdev = (faulty ?? driver).probe(nic, stack.kernelHelpers((skb) => host.netifReceiveSkb(skb)), {
      name: `${d.name === 'module' ? driver.name : d.name}_${side}`, schedule, ...knobs,
    });
    host.attachNetdev(netdev);
    return { side, host, nic, netdev, stack, faulty };
  };
  const a = mk('a', HOST_IP.a, MAC_A, MAC_B);
  const b = mk('b', HOST_IP.b, MAC_B, MAC_A);
  link.attach(a.nic, b.nic);
  a.nic.attachWire(link.sender('a'));
  b.nic.attachWire(link.sender('b'));
  return { sim, rng, link, a, b };
}

/** Device profile from a scenario's `device` section (scan policy merged over the default). */
export function nicProfileFrom(d: { maxContexts?: number | undefined; tso?: boolean | undefined; scan?: Partial<NicProfile['scan']> | undefined } | undefined): Partial<NicProfile> {
  if (!d) return {};
  const scan = d.scan ? { ...DEFAULT_SCAN_POLICY, ...Object.fromEntries(Object.entries(d.scan).filter(([, v]) => v !== undefined)) } : undefined;
  return {
    ...(d.maxContexts !== undefined ? { maxContexts: d.maxContexts } : {}),
    ...(d.tso !== undefined ? { tso: d.tso } : {}),
    ...(scan ? { scan } : {}),
  };
}

export function randomCryptoInfo(keyBits: 128 | 256, rng: Rng, version: TlsVersion = TLS_1_2_VERSION): CryptoInfo {
  const cipherType = keyBits === 128 ? TLS_CIPHER_AES_GCM_128 : TLS_CIPHER_AES_GCM_256;
  const d = CIPHER_DESC[cipherType];
  // rec_seq after a handshake is small but not zero-only: start anywhere below 2^20 to exercise it.
  return {
    version, cipherType, key: rng.bytes(d.keySize), iv: rng.bytes(d.ivSize), salt: rng.bytes(d.saltSize),
    recSeq: bigIntToRecSeq(BigInt(rng.int(1 << 20))),
  };
}

/** TLS 1.3 AES-GCM record overhead: header 5, inner content type 1, tag 16. */
export const TLS13_GCM_OVERHEAD = 22;

/** Stream offsets of the record headers a sequence of writes produces after `hsLen` handshake bytes. */
export function recordStarts(hsLen: number, writeLens: readonly number[], overhead = TLS12_GCM_OVERHEAD): { starts: number[]; plainEnds: number[]; end: number } {
  const starts: number[] = [];
  const plainEnds: number[] = [];
  let off = hsLen;
  let plain = 0;
  for (const len of writeLens) {
    let o = 0;
    do {
      // tls_push_data() cuts each write into records of at most TLS_MAX_PAYLOAD_SIZE; records never span writes.
      const n = Math.min(TLS_MAX_PAYLOAD_SIZE, len - o);
      starts.push(off);
      off += n + overhead;
      plain += n;
      plainEnds.push(plain);
      o += n;
    } while (o < len);
  }
  return { starts, plainEnds, end: off };
}

/** What one direction of a connection carries and what its receiver read (shared with the e2e test helpers). */
export type DirStream = {
  dir: LinkDirection;
  info: CryptoInfo;
  /** Plain bytes sent before TLS_TX (the handshake). */
  handshake: Uint8Array;
  /** Application writes, in order. */
  writes: Uint8Array[];
  /** Bytes the receiving application read after TLS_RX, in order. */
  received: Uint8Array[];
  /** Handshake bytes the receiver read before installing TLS_RX. */
  handshakeReceived: number;
};

/** One direction of one flow. */
export type FlowDir = DirStream & {
  /** Stream offset of each record's header (offset 0 = ISN + 1), application plaintext after each record. */
  starts: number[];
  plainEnds: number[];
  /** Stream length: handshake plus every record. */
  end: number;
  /** The sending TCP socket (its ISS gives stream offset 0) and the receiving TLS socket. */
  txTcp: TcpSocket | null;
  rxTls: TlsSocket | null;
};

export type Flow = {
  index: number;
  port: number;
  ab: FlowDir;
  ba: FlowDir;
  client: TlsSocket;
  server: TlsSocket | null;
  /** Virtual time both sides had installed TLS, or -1. */
  installedAt: number;
};

export type FlowTraffic = {
  keyBits: 128 | 256;
  /** TLS 1.3 records (the world must be built with tls13 and NICs with profile.tls13). */
  tls13?: boolean | undefined;
  writesA: readonly number[];
  writesB: readonly number[];
  handshakeA: number;
  handshakeB: number;
  isnA?: number | undefined;
  isnB?: number | undefined;
  /** Client (A) source port; default the host's next ephemeral port. The same port again reuses the 4-tuple. */
  sport?: number | undefined;
};

function dirOf(dir: LinkDirection, info: CryptoInfo, handshake: Uint8Array, writeLens: readonly number[], rng: Rng): FlowDir {
  const r = recordStarts(handshake.length, writeLens, info.version === TLS_1_3_VERSION ? TLS13_GCM_OVERHEAD : TLS12_GCM_OVERHEAD);
  return {
    dir, info, handshake, writes: writeLens.map((n) => rng.bytes(n)), received: [], handshakeReceived: 0,
    starts: r.starts, plainEnds: r.plainEnds, end: r.end, txTcp: null, rxTls: null,
  };
}

/**
 * Connect A->B on `port`, exchange handshake bytes in lockstep (A's flight; B reads it, installs TLS_RX, sends
 * its flight, installs TLS_TX; A reads B's flight, installs both), then each side writes its application
 * data. B holds its first TLS record until A installed TLS_RX, as a TLS peer does until it has the client's
 * Finished (same reasoning as test/helpers/e2e.ts connectTls).
 */
export function connectFlow(w: TbWorld, index: number, t: FlowTraffic, onInstalled?: (f: Flow) => void): Flow {
  const port = BASE_PORT + index;
  const rng = w.rng.fork(`conn-${port}`);
  const version = t.tls13 ? TLS_1_3_VERSION : TLS_1_2_VERSION;
  const ab = dirOf('a>b', randomCryptoInfo(t.keyBits, rng, version), rng.bytes(t.handshakeA), t.writesA, rng);
  const ba = dirOf('b>a', randomCryptoInfo(t.keyBits, rng, version), rng.bytes(t.handshakeB), t.writesB, rng);
  let installedA = false;
  let installedB = false;
  const flush = () => {
    if (!installedA || !installedB) return;
    flow.installedAt = w.sim.now;
    onInstalled?.(flow);
    for (const d of ab.writes) flow.client.send(d);
    for (const d of ba.writes) flow.server!.send(d);
  };
  w.b.host.listen(port, (sock: TcpSocket) => {
    const s = w.b.stack.attach(sock);
    sock.sock = s.sk; // skb->sk must be the TLS socket's struct sock (see e2e.ts attachTls)
    flow.server = s;
    ba.txTcp = sock;
    ab.rxTls = s;
    s.onData((data, type) => {
      if (type === undefined) {
        ab.handshakeReceived += data.length;
        if (ab.handshakeReceived === ab.handshake.length) {
          s.setCryptoInfo('rx', ab.info);
          s.send(ba.handshake);
          s.setCryptoInfo('tx', ba.info);
          installedB = true;
        }
        return;
      }
      ab.received.push(data.slice());
    });
  }, t.isnB !== undefined ? { isn: t.isnB } : {});
  const c = w.a.host.connect(w.b.host.ip, port, { ...(t.isnA !== undefined ? { isn: t.isnA } : {}), ...(t.sport !== undefined ? { sport: t.sport } : {}) });
  const cl = w.a.stack.attach(c);
  c.sock = cl.sk;
  ab.txTcp = c;
  ba.rxTls = cl;
  const flow: Flow = { index, port, ab, ba, client: cl, server: null, installedAt: -1 };
  c.onEstablished(() => cl.send(ab.handshake));
  cl.onData((data, type) => {
    if (type === undefined) {
      ba.handshakeReceived += data.length;
      if (ba.handshakeReceived === ba.handshake.length) {
        cl.setCryptoInfo('tx', ab.info);
        cl.setCryptoInfo('rx', ba.info);
        installedA = true;
        flush();
      }
      return;
    }
    ba.received.push(data.slice());
  });
  return flow;
}
