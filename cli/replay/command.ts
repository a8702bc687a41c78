// `tlsnic replay ...`: options to files and stdout. Exit codes: 0 when at least one connection replayed,
// 1 when nothing could be replayed, 2 for bad input (not a capture, bad arguments).
import { closeSync, mkdirSync, openSync, writeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../emulator/errors.ts';
import { PcapngWriter } from '../../emulator/capture/index.ts';
import { loadDriver } from '../../driver-api/drivers/index.ts';
import type { ReplayArgs } from '../args.ts';
import { toJson, toText } from '../report.ts';
import { renderTimeline } from '../timeline.ts';
import { replay, type FlowReport } from './engine.ts';

export function parseLocal(s: string): { ip: string; port: number | null } {
  // 10.0.0.1, 10.0.0.1:443, [fd00::1]:443, fd00::1
  const v6 = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(s);
  if (v6) return { ip: v6[1]!.toLowerCase(), port: v6[2] ? portOf(v6[2]) : null };
  if (s.includes(':') && s.split(':').length > 2) return { ip: s.toLowerCase(), port: null };
  const [ip, port] = s.split(':');
  if (!ip || !/^\d+\.\d+\.\d+\.\d+$/.test(ip)) throw new ConfigError(`--local '${s}' is not <ip>[:port]`, { field: '--local' });
  return { ip, port: port ? portOf(port) : null };
}

function portOf(p: string): number {
  const n = Number(p);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new ConfigError(`port ${p} out of range`, { field: '--local' });
  return n;
}

function flowFileName(f: FlowReport, dir: 'tx' | 'rx'): string {
  return `${f.local}_${f.remote}.${dir}.bin`.replace(/[[\]]/g, '').replace(/:/g, '_');
}

export async function runReplay(args: ReplayArgs): Promise<number> {
  if (args.scenario) throw new ConfigError('--scenario is not supported by this version of replay yet', { field: '--scenario' });
  const driver = await loadDriver(args.driver);
  const local = args.local ? parseLocal(args.local) : null;
  const writer = args.out ? new PcapngWriter(args.out) : null;
  const fds = new Map<string, number>();
  if (args.plaintextDir) mkdirSync(args.plaintextDir, { recursive: true });
  const tty = process.stderr.isTTY && !args.json;
  let size = 0;
  if (tty) {
    const { statSync } = await import('node:fs');
    size = statSync(args.capture).size;
  }
  try {
    const result = await replay({
      capture: args.capture,
      keylog: args.keylog,
      local,
      driver,
      tls13: args.tls13,
      timeline: args.timeline !== null,
      onFrame: writer ? (f) => writer.write({ data: f.frame, tsNs: f.tsNs, comment: f.note }) : undefined,
      onPlaintext: args.plaintextDir
        ? (flow, dir, data) => {
          const name = join(args.plaintextDir!, flowFileName(flow, dir));
          let fd = fds.get(name);
          if (fd === undefined) {
            fd = openSync(name, 'w');
            fds.set(name, fd);
          }
          writeSync(fd, data);
        }
        : undefined,
      onProgress: tty ? (bytes) => progress(bytes, size) : undefined,
    });
    if (tty) process.stderr.write('\r\x1b[K');
    if (args.timeline) writeFileSync(args.timeline, renderTimeline(result));
    if (args.json) process.stdout.write(JSON.stringify(toJson(result), null, 2) + '\n');
    else process.stdout.write(toText(result, driver.name));
    const replayed = result.flows.some((f) => f.version !== null);
    return replayed ? 0 : 1;
  } finally {
    writer?.close();
    for (const fd of fds.values()) closeSync(fd);
  }
}

function progress(bytes: number, size: number): void {
  const frac = size > 0 ? Math.min(1, bytes / size) : 0;
  const width = 30;
  const done = Math.round(frac * width);
  process.stderr.write(`\r[${'#'.repeat(done)}${'.'.repeat(width - done)}] ${(frac * 100).toFixed(0)}%`);
}
