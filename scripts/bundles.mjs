// What scripts/build.mjs makes, as functions a test can point at a directory of its own:
// - the CLI, tlsnic.mjs and the chunks it imports only for some commands, and the replay's queue worker
//   (`replay --workers N`) in a file of its own next to them: a worker thread starts from a file, and the CLI
//   bundle runs main() on load; all self-contained (dependencies bundled);
// - the library (`tlsnic`, `tlsnic/testbed/ava` in package.json's exports) as plain ESM, so a driver or an ava
//   test written in JavaScript, or in TypeScript without a loader for dependencies, can import it: one file per
//   entry point and the code they share in a chunk (one copy of every class: an error thrown by one entry
//   point is an instance of the other's class), dependencies left to node_modules;
// - the library's type declarations (tsconfig.lib.json).
// pcap-parser is CommonJS; the createRequire banner lets bundled CJS code call require() inside an ESM bundle.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

const common = {
  absWorkingDir: ROOT,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
};
/**
 * zod's `locales` namespace (z.locales, core.locales) re-exports its ~50 translations of error messages, ~300
 * KB of what was a 1.2 MB CLI bundle, parsed at every start (~27 ms here). tlsnic uses zod's default English
 * messages, which zod imports from locales/en.js directly; in the CLI the namespace holds English alone. (The
 * library leaves zod to node_modules and is not affected.)
 */
export const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (a) => (/[\\/]node_modules[\\/]zod[\\/]/.test(a.importer) ? { path: a.resolveDir, namespace: 'zod-locales' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'zod-locales' }, (a) => ({ contents: "export { default as en } from '../locales/en.js';\n", loader: 'js', resolveDir: a.path }));
  },
};

const requireBanner = "import { createRequire as __tlsnicCreateRequire } from 'node:module';\nconst require = __tlsnicCreateRequire(import.meta.url);";

/** `dir`/tlsnic.mjs (executable) and `dir`/tlsnic-replay-worker.mjs, where parallel.ts looks for it. */
export async function buildCli(dir) {
  // Chunk names carry a hash of their contents: the previous build's would stay beside the new ones.
  try {
    for (const f of readdirSync(dir)) if (/^tlsnic-.*-[A-Z0-9]{8}\.mjs(\.map)?$/.test(f)) rmSync(join(dir, f));
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
  }
  // What the CLI imports only for some commands (zod and the schemas built on it: `run`, `replay --scenario`)
  // goes to chunk files next to it, read when imported: a replay starts ~40 ms sooner than with them inline.
  await build({
    ...common, entryPoints: { tlsnic: 'cli/main.ts' }, outdir: dir, splitting: true, chunkNames: 'tlsnic-[name]-[hash]',
    outExtension: { '.js': '.mjs' }, banner: { js: `#!/usr/bin/env node\n${requireBanner}` }, plugins: [zodEnglishOnly],
  });
  await build({ ...common, entryPoints: ['cli/replay/worker.ts'], outfile: join(dir, 'tlsnic-replay-worker.mjs'), banner: { js: requireBanner } });
  chmodSync(join(dir, 'tlsnic.mjs'), 0o755);
}

/** The library's entry points as package.json's exports name them: `dir`/index.mjs, `dir`/testbed-ava.mjs. */
export async function buildLibrary(dir) {
  await build({
    ...common,
    entryPoints: { index: 'index.ts', 'testbed-ava': 'testbed/ava.ts' },
    outdir: dir,
    outExtension: { '.js': '.mjs' },
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    packages: 'external',
  });
}

/** Declarations of the library (index.d.ts, testbed/ava.d.ts and what they use) under `dir`. */
export function buildTypes(dir) {
  execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.lib.json'), '--outDir', dir], { stdio: 'inherit' });
}
