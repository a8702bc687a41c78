// One receive queue of a multi-queue replay (`tlsnic replay --workers N`), run in a worker thread: like a
// NIC queue served by its own core, it takes the connections whose RSS queue is its own. Each worker reads
// the capture itself (no per-packet messages between threads) and replays only its flows; parallel.ts
// merges the results. Imported outside a worker thread (tests, the type imports of parallel.ts) it does
// nothing on load.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { TlsnicError, type ErrorPlace } from '../../emulator/errors.ts';
import { Rss } from '../../emulator/nic/rss.ts';
import type { TcpSegmentView } from '../../emulator/wire/packet.ts';
import { loadDriver } from '../../driver-api/drivers/index.ts';
import { plaintextFiles } from './command.ts';
import { replay, type FlowReport } from './engine.ts';

export type QueueJob = {
  capture: string;
  keylog: string | null;
  local: { ip: string; port: number | null } | null;
  /** Built-in driver name or module path: each worker loads it (modules do not cross threads). */
  driver: string;
  tls13: boolean;
  queue: number;
  queues: number;
  plaintextDir: string | null;
  /** Post progress messages (only one worker does: they all read the same file at about the same pace). */
  progress: boolean;
};

/** A flow this queue replayed and the ordinal of its first TCP packet in the capture (the merge order). */
export type QueueFlow = { first: number; report: FlowReport };

export type QueueResult = {
  packets: number;
  flows: QueueFlow[];
  ethtool: Record<string, number>;
  tlsStat: Record<string, number>;
  netdev: string;
  problems: string[];
};

export type QueueFailure = { name: string; message: string; where: ErrorPlace; stack: string; typed: boolean };

export type QueueMessage =
  | { kind: 'progress'; bytes: number }
  | { kind: 'done'; result: QueueResult }
  | { kind: 'error'; error: QueueFailure };

/** What a worker finds in workerData. */
export type QueueWorkerData = { tlsnicReplayQueue: QueueJob };

/**
 * First TCP packet of each connection this queue owns, in capture order, as the engine would create its
 * flows. Tuples are kept as bytes (compared in place against the segment, either direction) so the per-packet
 * cost is a Map lookup by RSS hash and a short compare; a string key is built once per connection.
 */
class FirstSeen {
  private readonly byHash = new Map<number, number>();
  /** Per entry: addrLength, src addr, dst addr, src port, dst port (as first seen); next entry of the hash. */
  private tuples = new Uint8Array(64 * 37);
  private next: number[] = [];
  readonly firstByKey = new Map<string, number>();
  private count = 0;

  see(v: TcpSegmentView, hash: number, ordinal: number): void {
    let i = this.byHash.get(hash);
    while (i !== undefined && i >= 0) {
      if (this.same(i, v)) return;
      i = this.next[i]!;
    }
    this.add(v, hash);
    const ep = (ip: string, port: number) => (v.ipVersion === 6 ? `[${ip}]:${port}` : `${ip}:${port}`);
    const a = ep(v.srcIp(), v.srcPort);
    const b = ep(v.dstIp(), v.dstPort);
    // The engine's flow key: both endpoints, sorted (engine.ts keys its flow map the same way).
    this.firstByKey.set(a < b ? `${a}|${b}` : `${b}|${a}`, ordinal);
  }

  private add(v: TcpSegmentView, hash: number): void {
    const at = this.count * 37;
    if (at + 37 > this.tuples.length) {
      const grown = new Uint8Array(this.tuples.length * 2);
      grown.set(this.tuples);
      this.tuples = grown;
    }
    const t = this.tuples;
    const n = v.addrLength;
    t[at] = n;
    t.set(v.buf.subarray(v.srcAddrOffset, v.srcAddrOffset + n), at + 1);
    t.set(v.buf.subarray(v.dstAddrOffset, v.dstAddrOffset + n), at + 1 + n);
    t.set(v.buf.subarray(v.l4Offset, v.l4Offset + 4), at + 1 + 2 * n);
    this.next.push(this.byHash.get(hash) ?? -1);
    this.byHash.set(hash, this.count++);
  }

  private same(i: number, v: TcpSegmentView): boolean {
    const t = this.tuples;
    const at = i * 37;
    const n = v.addrLength;
    if (t[at] !== n) return false;
    const b = v.buf;
    const a0 = at + 1;
    const b0 = at + 1 + n;
    const p0 = at + 1 + 2 * n;
    const l4 = v.l4Offset;
    let fwd = true;
    let rev = true;
    for (let k = 0; k < n && (fwd || rev); k++) {
      const s = b[v.srcAddrOffset + k]!;
      const d = b[v.dstAddrOffset + k]!;
      fwd &&= t[a0 + k] === s && t[b0 + k] === d;
      rev &&= t[a0 + k] === d && t[b0 + k] === s;
    }
    fwd &&= t[p0] === b[l4] && t[p0 + 1] === b[l4 + 1] && t[p0 + 2] === b[l4 + 2] && t[p0 + 3] === b[l4 + 3];
    rev &&= t[p0] === b[l4 + 2] && t[p0 + 1] === b[l4 + 3] && t[p0 + 2] === b[l4] && t[p0 + 3] === b[l4 + 1];
    return fwd || rev;
  }
}

/** Replays the flows of one RSS queue (canonical hash: both directions of a connection on one queue). */
export async function replayQueue(job: QueueJob, onProgress?: (bytes: number) => void): Promise<QueueResult> {
  const driver = await loadDriver(job.driver);
  const rss = new Rss({ queues: job.queues });
  const seen = new FirstSeen();
  let ordinal = 0;
  const files = job.plaintextDir ? plaintextFiles(job.plaintextDir) : null;
  try {
    const r = await replay({
      capture: job.capture,
      keylog: job.keylog,
      local: job.local,
      driver,
      tls13: job.tls13,
      // Called for every TCP packet in capture order, in every worker alike: the ordinal is global.
      flowFilter: (v) => {
        ordinal++;
        const hash = rss.hashSegment(v, true);
        if (rss.queueOfHash(hash) !== job.queue) return false;
        seen.see(v, hash, ordinal);
        return true;
      },
      onProgress,
      onPlaintext: files?.write,
    });
    const flows = r.flows.map((report) => {
      const key = report.local < report.remote ? `${report.local}|${report.remote}` : `${report.remote}|${report.local}`;
      const first = seen.firstByKey.get(key);
      if (first === undefined) throw new Error(`replay worker ${job.queue}: flow ${key} has no first packet recorded`);
      return { first, report };
    });
    return { packets: r.packets, flows, ethtool: r.ethtool, tlsStat: r.tlsStat, netdev: r.netdev, problems: r.problems };
  } finally {
    files?.close();
  }
}

export function toFailure(e: unknown): QueueFailure {
  if (e instanceof TlsnicError) return { name: e.name, message: e.message, where: e.where, stack: e.stack ?? '', typed: true };
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name, message: err.message, where: {}, stack: err.stack ?? String(e), typed: false };
}

const data = workerData as QueueWorkerData | null;
if (!isMainThread && parentPort && data?.tlsnicReplayQueue) {
  const port = parentPort;
  const job = data.tlsnicReplayQueue;
  const post = (m: QueueMessage) => port.postMessage(m);
  replayQueue(job, job.progress ? (bytes) => post({ kind: 'progress', bytes }) : undefined).then(
    (result) => post({ kind: 'done', result }),
    (e: unknown) => post({ kind: 'error', error: toFailure(e) }),
  );
}
