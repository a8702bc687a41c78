#!/bin/sh
# Makes docs/timeline.png: the demo fixture with the segment carrying the client's second record header
# (packet 26) delayed past packet 40, as a loss before the NIC and its retransmission look to the
# receiving host; replayed through mlx5 with --timeline, screenshot by headless Chromium.
# Needs editcap/mergecap/tshark (Wireshark) and chromium. Run from the repository root.
set -eu
FIX=fixtures/captures/tls12-aes128-v4
T=/tmp/tlsnic-timeline-demo
rm -rf "$T" && mkdir -p "$T"
trap 'rm -rf "$T"' EXIT
t26=$(tshark -r $FIX.pcap -Y frame.number==26 -T fields -e frame.time_epoch)
t40=$(tshark -r $FIX.pcap -Y frame.number==40 -T fields -e frame.time_epoch)
editcap -r $FIX.pcap "$T/p26.pcap" 26
editcap -t "$(echo "$t40 - $t26 + 0.000001" | bc)" "$T/p26.pcap" "$T/late.pcap"
editcap $FIX.pcap "$T/rest.pcap" 26
mergecap -F pcap -w "$T/late-header.pcap" "$T/rest.pcap" "$T/late.pcap"
node --import=tsx cli/main.ts replay "$T/late-header.pcap" --keylog $FIX.keylog --driver mlx5 --timeline "$T/timeline.html"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot="$T/timeline.png" --window-size=1400,1200 "file://$T/timeline.html" 2>/dev/null
mv "$T/timeline.png" docs/timeline.png
ls -l docs/timeline.png
