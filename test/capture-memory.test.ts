// Bounded memory: reading a ~100 MB capture keeps RSS growth small, because the reader holds one chunk
// window (1 MiB) and hands out views. Measured with process.memoryUsage().rss, not timed.
import test from 'ava';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCapture, PcapngWriter, PcapWriter } from '../emulator/capture/index.ts';

const TARGET = 100 << 20;
const MB = 1 << 20;

for (const kind of ['pcap', 'pcapng'] as const) {
  test(`reading a ~100 MB ${kind} keeps RSS growth under 64 MB`, (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'tlsnic-capture-mem-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, `big.${kind}`);
    // Full-size frames with a per-packet pattern, so a wrong byte or a lost packet shows in the checksum.
    const frame = new Uint8Array(1514);
    const w = kind === 'pcap' ? new PcapWriter(path, { resolution: 'ns' }) : new PcapngWriter(path);
    let n = 0;
    let want = 0;
    for (let written = 0; written < TARGET; written += frame.length + (kind === 'pcap' ? 16 : 34)) {
      n++;
      frame[0] = n & 0xff;
      frame[1513] = (n >> 8) & 0xff;
      want = (want + frame[0] + frame[1513]) >>> 0;
      w.write({ data: frame, tsNs: BigInt(n) * 1000n });
    }
    w.close();
    t.true(statSync(path).size >= TARGET);

    const start = process.memoryUsage().rss;
    let peak = start;
    let got = 0;
    let count = 0;
    let lastTs = 0n;
    const r = openCapture(path);
    for (const p of r) {
      count++;
      got = (got + p.data[0]! + p.data[1513]!) >>> 0;
      if (p.tsNs !== BigInt(count) * 1000n || p.number !== count) return t.fail(`packet ${count} out of order`);
      lastTs = p.tsNs;
      if ((count & 4095) === 0) peak = Math.max(peak, process.memoryUsage().rss);
    }
    r.close();
    peak = Math.max(peak, process.memoryUsage().rss);
    t.is(count, n);
    t.is(got, want);
    t.is(lastTs, BigInt(n) * 1000n);
    const growth = (peak - start) / MB;
    t.log(`${kind}: ${(statSync(path).size / MB).toFixed(0)} MB, ${n} packets, RSS growth ${growth.toFixed(1)} MB`);
    t.true(growth < 64, `RSS grew ${growth.toFixed(1)} MB`);
  });
}
