// Profile helper (not a benchmark): where the device TX or RX path allocates JS heap, per 1448-byte segment,
// over 1 MiB of records (V8's sampling heap profiler, collected objects included). `make bench` prints the
// total; this names the allocation sites (function <- caller <- its caller).
// usage: node --import=tsx bench/prof-alloc.ts tx|rx [record bytes, default 100]
import { Session } from 'node:inspector';
import { nodeBackend } from '../emulator/crypto/index.ts';
import { TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128 } from '../emulator/tls/crypto-info.ts';
import { makeNic, rxFrame, seqAdd, TUPLE, txFrame } from '../test/helpers/nic-bench.ts';
import { Prng } from '../test/helpers/prng.ts';
import { makeRecordStream, randomInfo } from '../test/helpers/records.ts';
const MSS = 1448;
const which = process.argv[2] ?? 'tx';
const RB = Number(process.argv[3] ?? 100);
const rng = new Prng(1);
const info = randomInfo({ version: TLS_1_2_VERSION, cipherType: TLS_CIPHER_AES_GCM_128, label: 'aes128' }, rng, 0n);
const stream = makeRecordStream(nodeBackend, info, Array.from({ length: Math.ceil((1 << 20) / RB) }, () => RB), rng);
const start = 1_000_000;
const src = which === 'tx' ? stream.framed : stream.sealed;
const frames: Uint8Array[] = [];
for (let off = 0; off < src.length; off += MSS) frames.push((which === 'tx' ? txFrame : rxFrame)(seqAdd(start, off), src.subarray(off, off + MSS)));
const run = () => {
  const { nic } = makeNic();
  if (which === 'tx') {
    nic.attachWire(() => {});
    const h = nic.addContext('tx', { tuple: TUPLE, info, startSeq: start });
    for (const frame of frames) nic.transmit({ frame, ctx: h });
  } else {
    nic.onReceive(() => {});
    nic.addContext('rx', { tuple: TUPLE, info, startSeq: start });
    for (const f of frames) nic.receiveFrame(f.slice());
  }
};
run(); run();
const session = new Session();
session.connect();
session.post('HeapProfiler.startSampling', { samplingInterval: 128, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
run();
session.post('HeapProfiler.stopSampling', (err, r) => {
  if (err) throw err;
  const by = new Map<string, number>(); let total = 0;
  const walk = (n: any, stack: string[]) => {
    const cf = n.callFrame; const name = `${cf.functionName || '(anon)'} ${cf.url.split('/').slice(-1)}:${cf.lineNumber}`;
    total += n.selfSize;
    if (n.selfSize) { const k = `${name} <- ${stack.slice(-2).join(' <- ')}`; by.set(k, (by.get(k) ?? 0) + n.selfSize); }
    for (const c of n.children) walk(c, [...stack, name]);
  };
  walk(r.profile.head, []);
  const lines = [`total per segment ${(total / frames.length).toFixed(0)} B, ${frames.length} segments, records ${Math.ceil((1 << 20) / RB)}`];
  for (const [k, v] of [...by].sort((a, b) => b[1] - a[1]).slice(0, 22)) lines.push(`${(v / frames.length).toFixed(0).padStart(7)} ${k}`);
  process.stdout.write(lines.join('\n') + '\n');
});
