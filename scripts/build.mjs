// Bundle the CLI into one ESM file, and the replay's queue worker (`replay --workers N`) into a second one
// next to it: a worker thread starts from a file, and the CLI bundle runs main() on load.
// pcap-parser is CommonJS; the createRequire banner lets bundled CJS code call require() inside an ESM bundle.
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
};
const requireBanner = "import { createRequire as __tlsnicCreateRequire } from 'node:module';\nconst require = __tlsnicCreateRequire(import.meta.url);";

await build({
  ...common,
  entryPoints: ['cli/main.ts'],
  outfile: 'dist/tlsnic.mjs',
  banner: { js: `#!/usr/bin/env node\n${requireBanner}` },
});
// parallel.ts looks for it as ./tlsnic-replay-worker.mjs relative to the CLI bundle.
await build({
  ...common,
  entryPoints: ['cli/replay/worker.ts'],
  outfile: 'dist/tlsnic-replay-worker.mjs',
  banner: { js: requireBanner },
});
chmodSync('dist/tlsnic.mjs', 0o755);
