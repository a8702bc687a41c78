// `make build`: the CLI bundles, the library and its declarations under dist/ (see scripts/bundles.mjs).
import { buildCli, buildLibrary, buildTypes } from './bundles.mjs';

await buildCli('dist');
await buildLibrary('dist/lib');
buildTypes('dist/types');
