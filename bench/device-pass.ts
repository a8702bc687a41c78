// One device pass for the profile helpers (prof-device.ts, prof-alloc.ts): TLS 1.2 AES-128-GCM records of one
// size cut into 1448-byte segments, and a function that sends them all through a fresh NIC's TX or RX path.
import { nodeBackend } from '../emulator/crypto/index.ts';
import { TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128 } from '../emulator/tls/crypto-info.ts';
import { makeNic, rxFrame, rxRing, seqAdd, TUPLE, txFrame } from '../test/helpers/nic-bench.ts';
import { Prng } from '../test/helpers/prng.ts';
import { makeRecordStream, randomInfo } from '../test/helpers/records.ts';

const MSS = 1448;

export function devicePass(which: 'tx' | 'rx', bytes: number, recordSize: number): { frames: Uint8Array[]; streamBytes: number; run: () => void } {
  const rng = new Prng(1);
  const info = randomInfo({ version: TLS_1_2_VERSION, cipherType: TLS_CIPHER_AES_GCM_128, label: 'aes128' }, rng, 0n);
  const stream = makeRecordStream(nodeBackend, info, Array.from({ length: Math.ceil(bytes / recordSize) }, () => recordSize), rng);
  const start = 1_000_000;
  const src = which === 'tx' ? stream.framed : stream.sealed;
  const frames: Uint8Array[] = [];
  for (let off = 0; off < src.length; off += MSS) frames.push((which === 'tx' ? txFrame : rxFrame)(seqAdd(start, off), src.subarray(off, off + MSS)));
  // RX decrypts in place: each pass writes the ciphertext back into the same buffers (as bench/scenarios.ts
  // does), so the profile shows the device and not a copy of every frame.
  const ring = which === 'rx' ? rxRing(frames) : [];
  const run = () => {
    const { nic } = makeNic();
    if (which === 'tx') {
      nic.attachWire(() => {});
      const h = nic.addContext('tx', { tuple: TUPLE, info, startSeq: start });
      for (const frame of frames) nic.transmit({ frame, ctx: h });
    } else {
      nic.onReceive(() => {});
      nic.addContext('rx', { tuple: TUPLE, info, startSeq: start });
      for (let i = 0; i < frames.length; i++) ring[i]!.set(frames[i]!);
      for (const f of ring) nic.receiveFrame(f);
    }
  };
  return { frames, streamBytes: src.length, run };
}
