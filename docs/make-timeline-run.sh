#!/bin/sh
# Makes docs/timeline-run.png: fixtures/scenarios/loss-header.json (the segment holding a record header
# lost on the link) run by the two-host testbed with mlx5 and --timeline, screenshot by headless Chromium.
# Run from the repository root.
set -eu
T=/tmp/tlsnic-timeline-run
rm -rf "$T" && mkdir -p "$T"
trap 'rm -rf "$T"' EXIT
node --import=tsx cli/main.ts run fixtures/scenarios/loss-header.json --driver mlx5 --timeline "$T/timeline.html" >/dev/null
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot="$T/timeline.png" --window-size=1400,1000 "file://$T/timeline.html" 2>/dev/null
mv "$T/timeline.png" docs/timeline-run.png
ls -l docs/timeline-run.png
