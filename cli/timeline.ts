// A self-contained HTML page: per flow, packets over TCP sequence number (y) and capture time (x), with
// marks for decrypted / not decrypted / dropped / mismatched packets and where sync was lost and regained.
// Inline SVG and CSS only: it opens from a file with no network.
import type { ReplayResult, TimelineMark } from './replay/engine.ts';

const COLORS: Record<TimelineMark['mark'], string> = {
  decrypted: '#2e9e44',
  encrypted: '#7cc47f',
  plain: '#b0b0b0',
  'not-decrypted': '#2f6fd6',
  drop: '#d62f2f',
  mismatch: '#ff00a0',
  resync: '#f0a000',
  lost: '#8b0000',
  call: '#666',
};

const LABELS: Record<TimelineMark['mark'], string> = {
  decrypted: 'RX decrypted by the device',
  encrypted: 'TX encrypted by the device (equals capture)',
  plain: 'before TLS offload (handshake)',
  'not-decrypted': 'RX passed up as received (software decrypts)',
  drop: 'TX dropped by the driver',
  mismatch: 'TX differs from the capture',
  resync: 'resync request / tls_dev_resync',
  lost: 'device lost sync',
  call: 'driver call',
};

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export function renderTimeline(r: ReplayResult): string {
  const W = 1100;
  const H = 320;
  const PAD = 50;
  const sections: string[] = [];
  r.flows.forEach((f, i) => {
    const idx = i + 1;
    const marks = r.timeline.filter((m) => m.flow === idx);
    const t0 = marks.length ? Math.min(...marks.map((m) => m.t)) : 0;
    const t1 = marks.length ? Math.max(...marks.map((m) => m.t)) : 1;
    const svgs: string[] = [];
    for (const dir of ['rx', 'tx'] as const) {
      const ms = marks.filter((m) => m.dir === dir);
      const base = ms.length ? ms[0]!.seq : 0;
      const rel = (s: number) => ((s - base) >>> 0);
      const maxSeq = Math.max(1, ...ms.map((m) => rel(m.seq) + m.len));
      const x = (t: number) => PAD + ((t - t0) / Math.max(1e-9, t1 - t0)) * (W - 2 * PAD);
      const y = (s: number) => H - PAD - (s / maxSeq) * (H - 2 * PAD);
      const items = ms.map((m) => {
        const title = esc(`${m.mark} seq ${m.seq} len ${m.len}${m.note ? ` — ${m.note}` : ''}`);
        if (m.len === 0) {
          return `<line class="mark ${m.mark}" data-mark="${m.mark}" x1="${x(m.t).toFixed(1)}" x2="${x(m.t).toFixed(1)}" y1="${PAD}" y2="${H - PAD}" stroke="${COLORS[m.mark]}" stroke-width="1.5" stroke-dasharray="4 3"><title>${title}</title></line>`;
        }
        const y0 = y(rel(m.seq));
        const y1 = y(rel(m.seq) + m.len);
        return `<rect class="mark ${m.mark}" data-mark="${m.mark}" data-seq="${m.seq}" x="${(x(m.t) - 2).toFixed(1)}" y="${y1.toFixed(1)}" width="4" height="${Math.max(1.5, y0 - y1).toFixed(1)}" fill="${COLORS[m.mark]}"><title>${title}</title></rect>`;
      });
      svgs.push(`<h3>${dir === 'rx' ? 'received (remote → local)' : 'transmitted (local → remote)'}: ${ms.length} marks</h3>
<svg class="timeline" data-dir="${dir}" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" xmlns="http://www.w3.org/2000/svg">
<rect x="${PAD}" y="${PAD}" width="${W - 2 * PAD}" height="${H - 2 * PAD}" fill="#fafafa" stroke="#ccc"/>
<text x="${PAD}" y="${H - 15}" font-size="12">time ${t0.toFixed(3)} s → ${t1.toFixed(3)} s</text>
<text x="10" y="${PAD - 10}" font-size="12">TCP seq (relative to ${base}, up to ${maxSeq} bytes)</text>
${items.join('\n')}
</svg>`);
    }
    const counts = (k: TimelineMark['mark']) => marks.filter((m) => m.mark === k).length;
    sections.push(`<section class="flow" data-flow="${idx}" data-local="${esc(f.local)}" data-remote="${esc(f.remote)}">
<h2>#${idx} ${esc(f.local)} ⇄ ${esc(f.remote)} — TLS ${esc(f.version ?? '?')} ${esc(f.cipher ?? '?')}</h2>
<p>TX ${esc(f.tx.mode)}${f.tx.reason ? ` (${esc(f.tx.reason)})` : ''}, wire ${f.tx.wireMatch ? 'matches the capture' : 'DIFFERS'};
RX ${esc(f.rx.mode)}${f.rx.reason ? ` (${esc(f.rx.reason)})` : ''}: ${f.rx.decrypted}/${f.rx.segments} packets decrypted by the device;
${counts('lost')} sync losses, ${counts('resync')} resync events, ${counts('drop')} TX drops.</p>
${f.problems.length ? `<ul class="problems">${f.problems.map((p) => `<li>${esc(p)}</li>`).join('')}</ul>` : ''}
${svgs.join('\n')}
</section>`);
  });
  const legend = (Object.keys(COLORS) as TimelineMark['mark'][])
    .filter((k) => k !== 'call')
    .map((k) => `<span class="key"><i style="background:${COLORS[k]}"></i>${esc(LABELS[k])}</span>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tlsnic timeline — ${esc(r.capture)}</title>
<style>
body{font:14px system-ui,sans-serif;margin:20px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}h3{font-size:13px;margin:8px 0 2px;color:#555}
.key{display:inline-block;margin:0 14px 6px 0}.key i{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px}
.problems{color:#a00}pre{background:#f4f4f4;padding:8px;font-size:12px;max-height:300px;overflow:auto}
</style></head><body>
<h1>tlsnic replay timeline</h1>
<p>${esc(r.capture)} — ${r.packets} packets, ${r.flows.length} connection(s), device ${esc(r.netdev)}</p>
<div class="legend">${legend}</div>
${sections.join('\n')}
<h2>Counters</h2>
<pre class="ethtool">${esc(r.ethtoolText)}</pre>
<pre class="tls-stat">${esc(r.tlsStatText)}</pre>
</body></html>
`;
}
