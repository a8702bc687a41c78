// A capture of many short connections one after another (the bench's `many` section): a real fixture capture
// (tls12-many-v4: 14 connections from a real TLS stack) written `copies` times, copy k with its client address
// moved to its own 10.x.y.z and its timestamps after copy k-1's. The key log is the fixture's own (every copy's
// connections have the same client randoms). Connections per second and peak memory against the number of
// connections show what a long capture of short connections costs.
import { openCapture, PcapWriter } from '../emulator/capture/index.ts';
import { TcpSegmentView } from '../emulator/wire/packet.ts';
import { CAPTURES_DIR, loadManifest } from '../fixtures/manifest.ts';
import { join } from 'node:path';

export const MANY_FIXTURE = 'tls12-many-v4';

/** The fixture's capture, key log and manifest. */
export function manyFixture() {
  const m = loadManifest(join(CAPTURES_DIR, `${MANY_FIXTURE}.json`));
  return { capture: join(m.dir, m.capture), keylog: join(m.dir, m.keylog), manifest: m };
}

/** Writes the fixture `copies` times to `out` (classic pcap); returns the connections it holds. */
export function replicateCapture(out: string, copies: number): number {
  const { capture, manifest } = manyFixture();
  const client = manifest.connections[0]!.client.split(':')[0]!.split('.').map(Number);
  const pkts = [...openCapture(capture, { copy: true })];
  const first = pkts[0]!.tsNs;
  const span = pkts[pkts.length - 1]!.tsNs - first + 1_000_000n;
  const w = new PcapWriter(out, { linkType: pkts[0]!.linkType });
  const v = new TcpSegmentView();
  for (let k = 0; k < copies; k++) {
    const addr = k === 0 ? client : [10, 78 + (k >>> 16), (k >>> 8) & 0xff, k & 0xff];
    for (const p of pkts) {
      const data = Uint8Array.from(p.data);
      if (v.parse(data, p.linkType) === 'tcp' && v.addrLength === 4) {
        for (const off of [v.srcAddrOffset, v.dstAddrOffset]) {
          if (client.every((b, i) => data[off + i] === b)) data.set(addr, off);
        }
        v.ipv4.fillChecksum();
        v.updateTcpChecksum();
      }
      w.write({ data, tsNs: p.tsNs + BigInt(k) * span });
    }
  }
  w.close();
  return copies * manifest.connections.length;
}
