// tlsnic command line.
import { TlsnicError } from '../emulator/errors.ts';
import { USAGE, parseArgs } from './args.ts';
import { REPLAY_HELP, runReplay } from './replay/command.ts';
import { runRun } from './run.ts';

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  switch (args.command) {
    case 'help':
      process.stdout.write(USAGE + '\n\n' + REPLAY_HELP + '\n');
      return 0;
    case 'version':
      process.stdout.write('tlsnic 0.1.0\n');
      return 0;
    case 'replay':
      return runReplay(args);
    case 'run':
      return runRun(args);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof TlsnicError) {
      process.stderr.write(`tlsnic: ${e.name}: ${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`tlsnic: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 70;
  },
);
