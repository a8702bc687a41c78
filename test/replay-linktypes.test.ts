// A TLS capture taken with another link layer replays the same as on its own (Ethernet, SLL2): raw IP, Linux SLL2 (tcpdump -i
// any), BSD loopback as macOS writes it (DLT_NULL, address family in host order: 2 and 30) and as OpenBSD
// does (DLT_LOOP, network order: 2 and 24). The replay puts each IP packet behind a synthetic Ethernet header
// for the NIC; the reports (bytes, hashes, wire match, counters) must not change.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCapture, PcapWriter } from '../emulator/capture/index.ts';
import { linkL3 } from '../emulator/wire/link.ts';
import { mlx5Driver } from '../driver-api/drivers/index.ts';
import { CAPTURES_DIR, loadManifest } from '../fixtures/manifest.ts';
import { replay } from '../cli/replay/engine.ts';
import { toJson } from '../cli/report.ts';

const tmp = mkdtempSync(join(tmpdir(), 'tlsnic-linktypes-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

type Link = { name: string; linkType: number; header: (ipVersion: number) => Uint8Array };
const LINKS: Link[] = [
  { name: 'raw IP (101)', linkType: 101, header: () => new Uint8Array(0) },
  // SLL2: protocol, reserved, ifindex, ARPHRD_ETHER, packet type (host), address length 6, address.
  { name: 'Linux SLL2 (276)', linkType: 276, header: (v) => Uint8Array.of(v === 4 ? 0x08 : 0x86, v === 4 ? 0x00 : 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0) },
  { name: 'BSD loopback, macOS (0, little-endian)', linkType: 0, header: (v) => Uint8Array.of(v === 4 ? 2 : 30, 0, 0, 0) },
  { name: 'BSD loopback, big-endian host (0)', linkType: 0, header: (v) => Uint8Array.of(0, 0, 0, v === 4 ? 2 : 28) },
  { name: 'OpenBSD loopback (108)', linkType: 108, header: (v) => Uint8Array.of(0, 0, 0, v === 4 ? 2 : 24) },
];

for (const fixture of ['tls12-aes128-v4', 'tls13-aes256-v6']) {
  const m = loadManifest(join(CAPTURES_DIR, `${fixture}.json`));
  const capture = join(m.dir, m.capture);
  const keylog = join(m.dir, m.keylog);
  const tls13 = fixture.startsWith('tls13');
  for (const link of LINKS) {
    test(`${fixture} as ${link.name}: the same report as the capture's own link layer`, async (t) => {
      const out = join(tmp, `${fixture}-${link.linkType}-${link.name.length}.pcap`);
      const w = new PcapWriter(out, { linkType: link.linkType });
      let n = 0;
      for (const p of openCapture(capture, { copy: true })) {
        const l3 = { offset: 0, ethertype: 0 };
        linkL3(p.linkType, p.data, l3);
        const h = link.header(l3.ethertype === 0x86dd ? 6 : 4);
        const data = new Uint8Array(h.length + p.data.length - l3.offset);
        data.set(h, 0);
        data.set(p.data.subarray(l3.offset), h.length);
        w.write({ data, tsNs: p.tsNs });
        n++;
      }
      w.close();
      const ref = await replay({ capture, keylog, local: null, driver: mlx5Driver, tls13 });
      const got = await replay({ capture: out, keylog, local: null, driver: mlx5Driver, tls13 });
      t.is(got.packets, n);
      t.true(ref.flows.length > 0 && ref.flows.every((f) => f.tx.wireMatch && f.tx.mode === 'hw'));
      const { capture: _a, ...a } = toJson(ref) as { capture?: string };
      const { capture: _b, ...b } = toJson(got) as { capture?: string };
      t.deepEqual(b, a);
    });
  }
}
