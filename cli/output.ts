// What the CLI writes to stdout.
import { writeSync } from 'node:fs';
import { outputFileError } from '../emulator/errors.ts';

/**
 * Writes to stdout in blocks of up to 64 KiB as its pieces come, each written before the next (to
 * a pipe that is behind, node would queue them all): a report of a capture of many connections is never one
 * string, nor queued whole. A reader that goes away (`| head`) ends the output quietly; another failure is the
 * ConfigError naming stdout.
 */
export async function writeOut(pieces: Iterable<string>): Promise<void> {
  const out = process.stdout;
  // Errors come to each write's callback; without a listener the stream's 'error' event would end the process.
  const ignore = () => {};
  out.on('error', ignore);
  const write = (b: string) => new Promise<void>((resolve, reject) => out.write(b, (e) => (e ? reject(e) : resolve())));
  try {
    let block = '';
    for (const p of pieces) {
      block += p;
      if (block.length >= 1 << 16) {
        await write(block);
        block = '';
      }
    }
    if (block) await write(block);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPIPE') throw outputFileError(e, 'stdout');
  } finally {
    out.off('error', ignore);
  }
}

/**
 * Lines to stdout written at once, synchronously (`--json-lines`: the replay hands over each connection's report
 * as it goes, where an async write would queue them all to a slow pipe). A full pipe (EAGAIN: node keeps stdout
 * pipes non-blocking) is waited for; a reader that went away ends the output quietly; another failure is the
 * ConfigError naming stdout.
 */
export function syncLines(fd = 1): { write: (line: string) => void } {
  let gone = false;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  return {
    write(line) {
      if (gone) return;
      const buf = Buffer.from(line + '\n');
      for (let off = 0; off < buf.length;) {
        try {
          off += writeSync(fd, buf, off);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'EAGAIN') Atomics.wait(nap, 0, 0, 1);
          else if (code === 'EPIPE') {
            gone = true;
            return;
          } else throw outputFileError(e, 'stdout');
        }
      }
    },
  };
}
