// Bundle the CLI into one ESM file. pcap-parser is CommonJS; the createRequire banner lets bundled CJS
// code call require() inside an ESM bundle.
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';

await build({
  entryPoints: ['cli/main.ts'],
  outfile: 'dist/tlsnic.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __tlsnicCreateRequire } from 'node:module';\nconst require = __tlsnicCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
chmodSync('dist/tlsnic.mjs', 0o755);
