// Not a driver: no default export. `--driver` must refuse it with a ConfigError naming the file.
export const name = 'no-default';
