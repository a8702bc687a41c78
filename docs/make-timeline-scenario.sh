#!/bin/sh
# Makes docs/timeline-scenario.png: the demo fixture replayed on its client side under
# fixtures/replay-scenarios/mix.json (reorder, duplicate, bad checksum, lost header) through mlx5 with
# --timeline, screenshot by headless Chromium. Run from the repository root.
set -eu
T=/tmp/tlsnic-timeline-scenario
rm -rf "$T" && mkdir -p "$T"
trap 'rm -rf "$T"' EXIT
FIX=fixtures/captures/tls12-aes128-v4
node --import=tsx cli/main.ts replay $FIX.pcap --keylog $FIX.keylog --local 10.77.0.2 --driver mlx5 \
  --scenario fixtures/replay-scenarios/mix.json --timeline "$T/timeline.html" >/dev/null
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot="$T/timeline.png" --window-size=1400,900 "file://$T/timeline.html" 2>/dev/null
mv "$T/timeline.png" docs/timeline-scenario.png
ls -l docs/timeline-scenario.png
