// Loaded with `node --import` by bench/run.ts: reports the process's peak RSS (getrusage ru_maxrss) on
// stderr at exit, so the bench measures the real CLI and not a wrapper.
process.on('exit', () => {
  process.stderr.write(`TLSNIC_MAXRSS_KB ${process.resourceUsage().maxRSS}\n`);
});
