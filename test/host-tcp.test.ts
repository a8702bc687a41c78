// TCP endpoints over a PlainNetDevice link: byte-exact transfers under seeded impairments.
import test from 'ava';
import { createHash } from 'node:crypto';
import { makePlainPair, type PlainPairOptions } from '../driver-api/host/pair.ts';
import { randomImpairment } from '../driver-api/host/link.ts';
import { Rng } from '../driver-api/host/rng.ts';
import type { TcpSocket } from '../driver-api/host/tcp.ts';

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

class Sink {
  private parts: Uint8Array[] = [];
  len = 0;
  closed = false;
  push(d: Uint8Array): void {
    this.parts.push(d.slice());
    this.len += d.length;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.len);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

type Exchange = { client: TcpSocket; server: TcpSocket | null; atServer: Sink; atClient: Sink };

/** Client sends `up` bytes, server sends `down` bytes; both close after writing. */
function exchange(o: PlainPairOptions & { up: Uint8Array; down: Uint8Array; isnA?: number; isnB?: number; maxEvents?: number; chunk?: number }) {
  const p = makePlainPair(o);
  const atServer = new Sink();
  const atClient = new Sink();
  const x: Exchange = { client: null as unknown as TcpSocket, server: null, atServer, atClient };
  const writeAll = (s: TcpSocket, data: Uint8Array) => {
    const chunk = o.chunk ?? data.length;
    for (let off = 0; off < data.length; off += chunk) s.write(data.subarray(off, off + chunk));
    s.close();
  };
  p.b.listen(443, (s) => {
    x.server = s;
    s.onData((d) => atServer.push(d));
    s.onPeerClose(() => (atServer.closed = true));
    writeAll(s, o.down);
  }, o.isnB !== undefined ? { isn: o.isnB } : {});
  const c = p.a.connect(p.b.ip, 443, o.isnA !== undefined ? { isn: o.isnA } : {});
  x.client = c;
  c.onData((d) => atClient.push(d));
  c.onPeerClose(() => (atClient.closed = true));
  c.onEstablished(() => writeAll(c, o.up));
  const run = p.sim.run({ maxEvents: o.maxEvents ?? 2_000_000 });
  return { ...p, x, run };
}

const MB = new Rng(7).bytes(1 << 20);
const MB2 = new Rng(8).bytes(1 << 20);

test('clean link: 1 MB each way, byte-exact, orderly close', (t) => {
  const r = exchange({ up: MB, down: MB2, link: { latencyUs: 100, rateBytesPerSec: 125_000_000 } });
  t.is(sha(r.x.atServer.bytes()), sha(MB));
  t.is(sha(r.x.atClient.bytes()), sha(MB2));
  t.true(r.x.atServer.closed && r.x.atClient.closed);
  t.is(r.a.counters.RetransSegs, 0);
  t.is(r.b.counters.RetransSegs, 0);
  t.is(r.run.reason, 'idle');
  // both sides close right after writing: a simultaneous close ends in TIME-WAIT or CLOSED on each side
  t.true(['time-wait', 'closed'].includes(r.x.client.state));
  t.true(['time-wait', 'closed'].includes(r.x.server!.state));
});
