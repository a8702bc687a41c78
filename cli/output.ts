// What the CLI writes to stdout.
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
