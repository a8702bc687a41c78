// Profile helper (not a benchmark): run the device TX or RX path alone for a while, for `node --cpu-prof`.
// usage: node --cpu-prof --import=tsx bench/prof-device.ts tx|rx [MiB] [rounds] [record bytes, default 16384]
import { nodeBackend } from '../emulator/crypto/index.ts';
import { TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128 } from '../emulator/tls/crypto-info.ts';
import { makeNic, rxFrame, seqAdd, TUPLE, txFrame } from '../test/helpers/nic-bench.ts';
import { Prng } from '../test/helpers/prng.ts';
import { makeRecordStream, randomInfo } from '../test/helpers/records.ts';

const MSS = 1448;
const which = process.argv[2] ?? 'tx';
const mib = Number(process.argv[3] ?? 16);
const rng = new Prng(1);
const info = randomInfo({ version: TLS_1_2_VERSION, cipherType: TLS_CIPHER_AES_GCM_128, label: 'aes128' }, rng, 0n);
const recordSize = Number(process.argv[5] ?? 16384);
const stream = makeRecordStream(nodeBackend, info, Array.from({ length: Math.ceil((mib << 20) / recordSize) }, () => recordSize), rng);
const start = 1_000_000;
const src = which === 'tx' ? stream.framed : stream.sealed;
const frames: Uint8Array[] = [];
for (let off = 0; off < src.length; off += MSS) frames.push((which === 'tx' ? txFrame : rxFrame)(seqAdd(start, off), src.subarray(off, off + MSS)));
const rounds = Number(process.argv[4] ?? 6);
for (let round = 0; round < rounds; round++) {
  const { nic } = makeNic();
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  if (which === 'tx') {
    nic.attachWire(() => {});
    const h = nic.addContext('tx', { tuple: TUPLE, info, startSeq: start });
    for (const frame of frames) nic.transmit({ frame, ctx: h });
  } else {
    nic.onReceive(() => {});
    nic.addContext('rx', { tuple: TUPLE, info, startSeq: start });
    for (const f of frames) nic.receiveFrame(f.slice());
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  // CPU time as well as wall time: on a shared machine the wall clock also counts time spent descheduled.
  const cpu = (c.user + c.system) / 1e6;
  console.log(`${which} ${(src.length / s / 1e6).toFixed(0)} MB/s wall, ${(src.length / cpu / 1e6).toFixed(0)} MB/s cpu`);
}
