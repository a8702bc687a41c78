// Reads ava's TAP output on stdin, passes it through, and ends with the line CI reads:
// "N passed, N failed" (", N skipped" when some were). Exit code: 1 if any failed or nothing ran.
import { createInterface } from 'node:readline';

let passed = 0;
let failed = 0;
let skipped = 0;
let bailedOut = false;
let code = 0;
const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  process.stdout.write(line + '\n');
  if (/^not ok \d+/.test(line)) failed++;
  else if (/^ok \d+/.test(line)) {
    if (/# (SKIP|TODO)/i.test(line)) skipped++;
    else passed++;
  } else if (/^Bail out!/.test(line)) bailedOut = true;
  const m = /^# ava-exit (\d+)$/.exec(line);
  if (m) code = Number(m[1]);
}
if (bailedOut) failed++;
if (code !== 0 && failed === 0) failed++; // the runner itself failed (e.g. a crash outside a test)
process.stdout.write(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
