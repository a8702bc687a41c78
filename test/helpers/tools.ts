// External tools some tests compare against; a test that needs one skips with a log line when it is absent.
import { spawnSync } from 'node:child_process';

/** tshark (Debian package `tshark`) runs here. */
export const hasTshark = spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0;
