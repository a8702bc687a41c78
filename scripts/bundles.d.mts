// Types of scripts/bundles.mjs (plain JavaScript: `make build` runs it with node alone).
export function buildCli(dir: string): Promise<void>;
export function buildLibrary(dir: string): Promise<void>;
export function buildTypes(dir: string): void;
