// Two hosts joined by one link through PlainNetDevices: the smallest world a test or scenario needs.
import { Host, PlainNetDevice, type HostOptions } from './host.ts';
import { Link, type LinkOptions } from './link.ts';
import { Rng } from './rng.ts';
import { Sim } from './sim.ts';

export type PlainPairOptions = {
  seed?: number;
  family?: 4 | 6;
  link?: LinkOptions;
  tcpA?: HostOptions['tcp'];
  tcpB?: HostOptions['tcp'];
};

export type PlainPair = { sim: Sim; rng: Rng; link: Link; a: Host; b: Host; devA: PlainNetDevice; devB: PlainNetDevice };

export const MAC_A = Uint8Array.of(0x02, 0, 0, 0, 0, 0x0a);
export const MAC_B = Uint8Array.of(0x02, 0, 0, 0, 0, 0x0b);

export function makePlainPair(o: PlainPairOptions = {}): PlainPair {
  const sim = new Sim();
  const rng = new Rng(o.seed ?? 1);
  const link = new Link(sim, o.link);
  const v6 = o.family === 6;
  const devA = new PlainNetDevice('ethA');
  const devB = new PlainNetDevice('ethB');
  const a = new Host(sim, rng.fork('host-a'), { name: 'a', ip: v6 ? 'fd00::a' : '10.0.0.1', mac: MAC_A, peerMac: MAC_B, netdev: devA, ...(o.tcpA ? { tcp: o.tcpA } : {}) });
  const b = new Host(sim, rng.fork('host-b'), { name: 'b', ip: v6 ? 'fd00::b' : '10.0.0.2', mac: MAC_B, peerMac: MAC_A, netdev: devB, ...(o.tcpB ? { tcp: o.tcpB } : {}) });
  devA.onReceive((skb) => a.netifReceiveSkb(skb));
  devB.onReceive((skb) => b.netifReceiveSkb(skb));
  link.attach(devA, devB);
  devA.attachWire(link.sender('a'));
  devB.attachWire(link.sender('b'));
  return { sim, rng, link, a, b, devA, devB };
}
