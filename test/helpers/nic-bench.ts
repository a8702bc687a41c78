// A device on a test bench: a NIC with one flow, frames built for it, wire output and completions captured.
import { nodeBackend } from '../../emulator/crypto/index.ts';
import { Nic } from '../../emulator/nic/nic.ts';
import type { FlowTuple, NicProfile, RxCompletion } from '../../emulator/nic/types.ts';
import { FLAG_ACK, FLAG_PSH, buildTcpFrame } from '../../emulator/wire/builder.ts';
import { TcpSegmentView } from '../../emulator/wire/packet.ts';
import { seqAdd, seqDiff } from '../../emulator/wire/seq.ts';
import { packetMemory } from '../../emulator/wire/simd-sum.ts';

export const LOCAL = { ip: '10.0.0.1', port: 443 };
export const REMOTE = { ip: '10.0.0.2', port: 40000 };
export const TUPLE: FlowTuple = { family: 4, saddr: LOCAL.ip, sport: LOCAL.port, daddr: REMOTE.ip, dport: REMOTE.port };

export function makeNic(profile: Partial<NicProfile> = {}) {
  const nic = new Nic({ backend: nodeBackend, profile: { tls13: true, ...profile } });
  const wire: Uint8Array[] = [];
  const cqes: RxCompletion[] = [];
  nic.attachWire((f) => wire.push(f.slice())); // a wire frame is valid during the callback only
  nic.onReceive((c) => cqes.push(c));
  return { nic, wire, cqes };
}

/** A frame the local host sends (TX direction). */
export function txFrame(seq: number, payload: Uint8Array): Uint8Array {
  return buildTcpFrame({
    family: 4, srcIp: LOCAL.ip, dstIp: REMOTE.ip, srcPort: LOCAL.port, dstPort: REMOTE.port,
    seq, ack: 1, flags: FLAG_ACK | FLAG_PSH, payload,
  });
}

/**
 * Copies of `frames` laid out in one buffer, 2048 bytes apart from offset 2 (NET_IP_ALIGN), as a NIC's RX ring
 * holds them in its pages: the device sees the memory it gets from a capture's read window (packet memory,
 * whose checksums are summed with SIMD: wire/simd-sum.ts). RX decrypts in place: set() them again per pass.
 */
export function rxRing(frames: readonly Uint8Array[]): Uint8Array[] {
  const mem = packetMemory(frames.length * 2048 + 2);
  return frames.map((f, i) => {
    const v = mem.subarray(2 + i * 2048, 2 + i * 2048 + f.length);
    v.set(f);
    return v;
  });
}

/** A frame the remote peer sends (RX direction). */
export function rxFrame(seq: number, payload: Uint8Array, badChecksum = false): Uint8Array {
  return buildTcpFrame({
    family: 4, srcIp: REMOTE.ip, dstIp: LOCAL.ip, srcPort: REMOTE.port, dstPort: LOCAL.port,
    seq, ack: 1, flags: FLAG_ACK | FLAG_PSH, payload, badChecksum,
  });
}

export type Seg = { seq: number; payload: Uint8Array; checksumOk: boolean };

export function parseSeg(frame: Uint8Array): Seg {
  const v = new TcpSegmentView();
  if (v.parse(frame) !== 'tcp') throw new Error('not a TCP frame');
  return { seq: v.seq, payload: v.payload().slice(), checksumOk: v.verifyTcpChecksum() };
}

/** Lay segments back into a stream starting at `start` (later copies overwrite; gaps stay zero). */
export function reassemble(segs: readonly Seg[], start: number, total: number): Uint8Array {
  const out = new Uint8Array(total);
  for (const s of segs) {
    const off = seqDiff(s.seq, start);
    out.set(s.payload.subarray(0, Math.max(0, Math.min(s.payload.length, total - off))), off);
  }
  return out;
}

export { seqAdd };
