// What the CLI writes to stdout.
import { writeSync } from 'node:fs';
import { outputFileError } from '../emulator/errors.ts';

/**
 * stdout written synchronously, each piece before the next: a report of a capture of many connections is never
 * one string, and nothing is queued for a pipe that is behind (node's stream would queue it all; `--json-lines`
 * writes each connection's line as the replay hands it over). A full pipe (EAGAIN: node keeps stdout pipes
 * non-blocking) is waited for; a reader that goes away (`| head`) ends the output quietly; another failure is
 * the ConfigError naming stdout.
 */
export function stdoutWriter(fd = 1): { write: (text: string) => void } {
  let gone = false;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  return {
    write(text) {
      if (gone) return;
      const buf = Buffer.from(text);
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

/** `pieces` to stdout (stdoutWriter) in blocks of up to 64 KiB. */
export function writeOut(pieces: Iterable<string>): void {
  const out = stdoutWriter();
  let block = '';
  for (const p of pieces) {
    block += p;
    if (block.length >= 1 << 16) {
      out.write(block);
      block = '';
    }
  }
  if (block) out.write(block);
}
