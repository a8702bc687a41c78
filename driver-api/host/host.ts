// A host: one IP, one MAC, one NetDevice for TX, netif_receive_skb for RX, and TCP sockets demultiplexed by
// 4-tuple (inet_lookup). The NetDevice may be a reference driver over the emulated NIC (driver-api/drivers,
// probe()) or the PlainNetDevice below; the host only sees the ops.ts NetDevice contract.
import { ContractError, WireError } from '../../emulator/errors.ts';
import { formatIp, parseIp } from '../../emulator/wire/addr.ts';
import { buildTcpFrame, FLAG_ACK, FLAG_RST, FLAG_SYN } from '../../emulator/wire/builder.ts';
import { TcpSegmentView } from '../../emulator/wire/packet.ts';
import { seqAdd } from '../../emulator/wire/seq.ts';
import { tsoSegment } from '../../emulator/wire/tso.ts';
import type { FourTuple, NetDevFeatures, NetDevice, SkBuff } from '../ops.ts';
import type { FramePort } from './link.ts';
import type { Rng } from './rng.ts';
import type { Sim } from './sim.ts';
import { DEFAULT_TCP_CONFIG, newTcpCounters, parseMssOption, TcpSocket, type TcpConfig, type TcpCounters, type TcpEnv } from './tcp.ts';

export type HostOptions = {
  name?: string;
  /** IPv4 or IPv6 address (the family follows from it). */
  ip: string;
  mac?: Uint8Array;
  /** MAC of the other end of the point-to-point link. */
  peerMac?: Uint8Array;
  /** The TX device; may be set later with attachNetdev() (a driver's probe needs the host's RX hook). */
  netdev?: NetDevice;
  tcp?: Partial<TcpConfig>;
};

export type ConnectOptions = { sport?: number; isn?: number };
export type ListenOptions = { isn?: number };

type Listener = { onAccept: (sock: TcpSocket) => void; isn: number | undefined };

export class Host implements TcpEnv {
  readonly name: string;
  readonly ip: string;
  readonly family: 4 | 6;
  readonly mac: Uint8Array;
  readonly peerMac: Uint8Array;
  readonly counters: TcpCounters = newTcpCounters();
  readonly tcpConfig: TcpConfig;
  private dev: NetDevice | null;
  private readonly sockets = new Map<string, TcpSocket>();
  private readonly listeners = new Map<number, Listener>();
  private readonly view = new TcpSegmentView();
  private nextPort = 49152;
  private nextId = 1;

  constructor(readonly sim: Sim, private readonly rng: Rng, opts: HostOptions) {
    const addr = parseIp(opts.ip);
    this.ip = formatIp(addr, 0, addr.length); // RFC 5952 text, as TcpSegmentView prints addresses
    this.family = addr.length === 4 ? 4 : 6;
    this.name = opts.name ?? this.ip;
    this.mac = opts.mac ?? Uint8Array.of(0x02, 0, 0, 0, 0, 0x01);
    this.peerMac = opts.peerMac ?? Uint8Array.of(0x02, 0, 0, 0, 0, 0x02);
    this.dev = opts.netdev ?? null;
    this.tcpConfig = { ...DEFAULT_TCP_CONFIG, ...opts.tcp };
    if (this.tcpConfig.rcvBuf > 65535 || this.tcpConfig.rcvBuf < 1) {
      throw new ContractError(`rcvBuf ${this.tcpConfig.rcvBuf} needs window scaling, which is not modelled`, { field: 'tcp.rcvBuf' });
    }
    if (this.tcpConfig.mss < 1 || this.tcpConfig.mss > 65495) throw new ContractError(`MSS ${this.tcpConfig.mss} out of range`, { field: 'tcp.mss' });
  }

  get netdev(): NetDevice {
    if (!this.dev) throw new ContractError(`host ${this.name} has no NetDevice attached`, { field: 'netdev' });
    return this.dev;
  }

  attachNetdev(dev: NetDevice): void {
    this.dev = dev;
  }

  listen(port: number, onAccept: (sock: TcpSocket) => void, opts: ListenOptions = {}): void {
    this.listeners.set(port, { onAccept, isn: opts.isn });
  }

  /** Active open: the returned socket is in SYN-SENT; onEstablished() fires when the handshake completes. */
  connect(remoteIp: string, port: number, opts: ConnectOptions = {}): TcpSocket {
    const r = parseIp(remoteIp);
    const tuple: FourTuple = { family: this.family, saddr: this.ip, sport: opts.sport ?? this.nextPort++, daddr: formatIp(r, 0, r.length), dport: port };
    const key = keyOf(tuple.sport, tuple.daddr, tuple.dport);
    if (this.sockets.has(key)) throw new ContractError(`4-tuple already in use`, { flow: key });
    const s = new TcpSocket(this, this.nextId++, tuple, this.tcpConfig, opts.isn ?? this.rng.next(), null);
    this.sockets.set(key, s);
    s.openActive();
    return s;
  }

  /** Sockets by 4-tuple key, for tests and timelines. */
  socketList(): TcpSocket[] {
    return [...this.sockets.values()];
  }

  // TcpEnv
  accepted(sock: TcpSocket): void {
    this.listeners.get(sock.tuple.sport)?.onAccept(sock);
  }
  forget(sock: TcpSocket): void {
    const t = sock.tuple;
    const key = keyOf(t.sport, t.daddr, t.dport);
    if (this.sockets.get(key) === sock) this.sockets.delete(key);
  }

  // models netif_receive_skb() -> ip_rcv() -> tcp_v4_rcv()/tcp_v6_rcv(): checksum, lookup, socket input
  netifReceiveSkb(skb: SkBuff): void {
    const v = this.view;
    const c = this.counters;
    try {
      if (v.parse(skb.data) !== 'tcp') {
        c.InErrs++;
        return;
      }
    } catch (e) {
      if (e instanceof WireError) {
        c.InErrs++;
        return;
      }
      throw e;
    }
    // A decrypted skb's payload is no longer what the checksum covered: the device verified it before
    // decrypting (CHECKSUM_UNNECESSARY), so only non-decrypted segments are checked here.
    if (!skb.decrypted && !v.verifyTcpChecksum()) {
      c.InCsumErrors++;
      c.InErrs++;
      return;
    }
    if (v.dstIp() !== this.ip) {
      c.InErrs++;
      return;
    }
    c.InSegs++;
    const key = keyOf(v.dstPort, v.srcIp(), v.srcPort);
    const sock = this.sockets.get(key);
    if (sock) {
      sock.input(v, skb.decrypted);
      return;
    }
    const flags = v.flags;
    const l = this.listeners.get(v.dstPort);
    if (l && (flags & (FLAG_SYN | FLAG_ACK | FLAG_RST)) === FLAG_SYN) {
      const tuple: FourTuple = { family: this.family, saddr: this.ip, sport: v.dstPort, daddr: v.srcIp(), dport: v.srcPort };
      const s = new TcpSocket(this, this.nextId++, tuple, this.tcpConfig, l.isn ?? this.rng.next(), {
        irs: v.seq,
        peerMss: parseMssOption(v),
        window: v.window,
      });
      this.sockets.set(key, s);
      s.openPassive();
      return;
    }
    if (!(flags & FLAG_RST)) this.sendReset(v);
  }

  // models tcp_v4_send_reset(): answer a segment no socket wants (RFC 9293 3.10.7.1)
  private sendReset(v: TcpSegmentView): void {
    const hasAck = (v.flags & FLAG_ACK) !== 0;
    const segLen = v.payloadLength + (v.syn ? 1 : 0) + (v.fin ? 1 : 0);
    const frame = buildTcpFrame({
      family: this.family, srcIp: this.ip, dstIp: v.srcIp(), srcPort: v.dstPort, dstPort: v.srcPort,
      seq: hasAck ? v.ack : 0, ack: hasAck ? 0 : seqAdd(v.seq, segLen), flags: hasAck ? FLAG_RST : FLAG_RST | FLAG_ACK,
      window: 0, srcMac: this.mac, dstMac: this.peerMac,
    });
    this.counters.OutRsts++;
    this.counters.OutSegs++;
    this.netdev.startXmit({ data: frame, sk: null, decrypted: false, gsoSize: 0 });
  }
}

function keyOf(localPort: number, remoteIp: string, remotePort: number): string {
  return `${localPort}|${remoteIp}|${remotePort}`;
}

/** A plain NIC without TLS offload: frames out through a wire function, frames in to an RX handler. */
export class PlainNetDevice implements NetDevice, FramePort {
  readonly tlsdevOps = null;
  features: NetDevFeatures = { tlsHwTxOffload: false, tlsHwRxOffload: false, txChecksumOffload: true, rxChecksumOffload: true };
  readonly stats = { txFrames: 0, rxFrames: 0, txDroppedDown: 0 };
  private up = true;
  private wire: ((frame: Uint8Array) => void) | null = null;
  private rx: ((skb: SkBuff) => void) | null = null;

  constructor(readonly name: string) {}

  attachWire(send: (frame: Uint8Array) => void): void {
    this.wire = send;
  }
  /** Where received frames go as skbs (a Host's netifReceiveSkb). */
  onReceive(handler: (skb: SkBuff) => void): void {
    this.rx = handler;
  }
  setLink(up: boolean): void {
    this.up = up;
  }
  isUp(): boolean {
    return this.up;
  }

  startXmit(skb: SkBuff): void {
    if (!this.up || !this.wire) {
      this.stats.txDroppedDown++;
      return;
    }
    // TSO in "hardware": cut the super-segment at gso_size.
    const frames = skb.gsoSize > 0 ? tsoSegment(skb.data, skb.gsoSize) : [skb.data];
    for (const f of frames) {
      this.stats.txFrames++;
      this.wire(f);
    }
  }

  receiveFrame(frame: Uint8Array): void {
    this.stats.rxFrames++;
    this.rx?.({ data: frame, sk: null, decrypted: false, gsoSize: 0 });
  }
}
