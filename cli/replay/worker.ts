// One receive queue of a multi-queue replay (`tlsnic replay --workers N`), run in a worker thread: like a
// NIC queue served by its own core, it takes the connections whose RSS queue is its own. Each worker reads
// the capture itself (no per-packet messages between threads) and replays only its flows; parallel.ts
// merges the results. Imported outside a worker thread (tests, the type imports of parallel.ts) it does
// nothing on load.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { TlsnicError, type ErrorPlace } from '../../emulator/errors.ts';
import { Rss } from '../../emulator/nic/rss.ts';
import { loadDriver } from '../../driver-api/drivers/index.ts';
import { OutCapture, plaintextFiles, type OutPart } from './command.ts';
import { replay, type FlowReport, type ReplayResult, type TimelineMark } from './engine.ts';
import type { ReplayScenario, ScenarioOutcome } from './scenario.ts';
import type { TimeWindow } from '../../testbed/timeline.ts';

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
  /** Record the timeline's marks (--timeline): the merge renumbers them by the merged connections. */
  timeline?: boolean;
  /** --timeline-window: every queue keeps the marks of the same stretch of capture time. */
  timelineWindow?: TimeWindow | null;
  /** --out: write this queue's frames to a file of its own in this directory (mergeOutCaptures joins them). */
  outDir?: string | null;
  /** Post progress messages (only one worker does: they all read the same file at about the same pace). */
  progress: boolean;
  /** --scenario: every queue impairs its own connections (numbered among all of them, as one thread does). */
  scenario?: ReplayScenario;
  /** Bytes this queue's impairer may hold back at once (its share of scenario.ts MAX_HELD_BYTES). */
  scenarioHeldBytes?: number;
  /** --json-lines: post each connection's report as it becomes final (ReplayOptions.onReport); the result keeps none. */
  streamReports?: boolean;
};

/** A flow this queue replayed and the capture packet number of its first packet (the merge order). */
export type QueueFlow = { first: number; report: FlowReport };

export type QueueResult = {
  packets: number;
  flows: QueueFlow[];
  /** Timeline marks (QueueJob.timeline), numbered by this queue's flows (1 = flows[0]). */
  timeline: TimelineMark[];
  /** QueueJob.outDir: the file this queue wrote and the capture packet number of each of its frames. */
  out: OutPart | null;
  ethtool: Record<string, number>;
  tlsStat: Record<string, number>;
  netdev: string;
  problems: string[];
  /** QueueJob.scenario: this queue's outcome (its flows, what its impairments did) and what the merge checks. */
  scenario: { outcome: ScenarioOutcome; parts: NonNullable<ReplayResult['scenarioParts']> } | null;
  /**
   * CPU seconds of the thread that ran the queue (threadCpuSeconds()): over replayQueue(), and over the
   * worker thread's whole life (start-up and module loading too; null outside a worker). Not merged: only
   * for measuring how the work spreads (bench/workers.ts).
   */
  cpu: { replay: number | null; thread: number | null };
};

export type QueueFailure = { name: string; message: string; where: ErrorPlace; stack: string; typed: boolean };

export type QueueMessage =
  | { kind: 'progress'; bytes: number }
  | { kind: 'report'; first: number; report: FlowReport }
  | { kind: 'done'; result: QueueResult }
  | { kind: 'error'; error: QueueFailure };

/** What a worker finds in workerData. */
export type QueueWorkerData = { tlsnicReplayQueue: QueueJob };

/**
 * CPU seconds the calling thread has used so far: utime + stime of /proc/thread-self/stat, in USER_HZ
 * (100) ticks. Node 20 has no per-thread process.cpuUsage() (it counts every thread of the process, GC
 * helpers included). Null where /proc is not Linux's.
 */
export function threadCpuSeconds(): number | null {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'latin1');
    // After "pid (comm) ": state is field 3, utime field 14, stime field 15 (proc(5)).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]);
    return Number.isFinite(ticks) ? ticks / 100 : null;
  } catch {
    return null;
  }
}

/** Replays the flows of one RSS queue (canonical hash: both directions of a connection on one queue). */
export async function replayQueue(job: QueueJob, onProgress?: (bytes: number) => void, onReport?: (report: FlowReport, first: number) => void): Promise<QueueResult> {
  const cpu0 = threadCpuSeconds();
  const driver = await loadDriver(job.driver);
  const rss = new Rss({ queues: job.queues });
  const files = job.plaintextDir ? plaintextFiles(job.plaintextDir) : null;
  const outFile = job.outDir ? join(job.outDir, `queue-${job.queue}.pcapng`) : null;
  const out = outFile ? new OutCapture(outFile, { track: true }) : null;
  try {
    const r = await replay({
      capture: job.capture,
      keylog: job.keylog,
      local: job.local,
      driver,
      tls13: job.tls13,
      timeline: job.timeline ?? false,
      timelineWindow: job.timelineWindow ?? null,
      // Every worker reads the whole capture, so capture packet numbers (flowFirstPackets) are global.
      flowFilter: (v) => rss.queueOfSegment(v, true) === job.queue,
      onProgress,
      onPlaintext: files?.write,
      onFlowEnd: files?.end,
      onReport,
      onFrame: out ? (f) => out.frame(f) : undefined,
      scenario: job.scenario,
      ...(job.scenarioHeldBytes !== undefined ? { limits: { scenarioHeldBytes: job.scenarioHeldBytes } } : {}),
    });
    out?.close(); // before its packet numbers are read: closing writes the frames it still held back
    const flows = r.flows.map((report, i) => ({ first: r.flowFirstPackets[i]!, report }));
    const cpu1 = threadCpuSeconds();
    const cpu = { replay: cpu0 !== null && cpu1 !== null ? Math.round((cpu1 - cpu0) * 100) / 100 : null, thread: isMainThread ? null : cpu1 };
    return {
      packets: r.packets, flows, timeline: r.timeline, out: out && outFile ? { file: outFile, packets: out.packets!, orders: out.orders! } : null,
      ethtool: r.ethtool, tlsStat: r.tlsStat, netdev: r.netdev, problems: r.problems, cpu,
      scenario: r.scenario && r.scenarioParts ? { outcome: r.scenario, parts: r.scenarioParts } : null,
    };
  } finally {
    files?.close();
    out?.close();
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
  replayQueue(
    job,
    job.progress ? (bytes) => post({ kind: 'progress', bytes }) : undefined,
    job.streamReports ? (report, first) => post({ kind: 'report', first, report }) : undefined,
  ).then(
    (result) => post({ kind: 'done', result }),
    (e: unknown) => post({ kind: 'error', error: toFailure(e) }),
  );
}
