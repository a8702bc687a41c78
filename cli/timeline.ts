// `--timeline`: a self-contained HTML page (inline SVG and CSS, no script, no network). Per flow and direction,
// packets in arrival order (x) over TCP sequence number (y), coloured by what the device did; the stretch
// where the RX device was out of sync is shaded from the packet where it lost sync (a record header went by
// unseen, tls-offload.rst "Resync handling") to the first packet it decrypted again; and every driver call
// (tlsdev_ops from the stack, resync helpers from the driver) is a line on the chart and a row in a table.
// `tlsnic replay` draws its capture (renderTimeline) and `tlsnic run` a two-host world (testbed/timeline.ts):
// both as a TimelinePage.
import type { TimeWindow } from '../testbed/timeline.ts';
import type { FlowReport, ReplayResult, TimelineMark } from './replay/engine.ts';

/** What one flow section shows: its two charts' marks in time order, and the words around them. */
export type TimelineSection = {
  local: string;
  remote: string;
  /** After "#n " in the section's heading. */
  heading: string;
  /** The summary paragraph's HTML, given what the RX chart found (its losses of sync and recoveries). */
  summary: (rx: { lost: number; regained: number; sync: string; drops: number }) => string;
  problems: readonly string[];
  rxTitle: string;
  txTitle: string;
  marks: TimelineMark[];
};

export type TimelinePage = {
  title: string;
  heading: string;
  /** The line under the heading (text). */
  about: string;
  /** Legend entries for packet marks, in order: [kind, text]. */
  packetKeys: ReadonlyArray<readonly [Kind, string]>;
  /** The legend entry for impairment lines, when the page has any. */
  impairKey: string | null;
  sections: TimelineSection[];
  /** Counter dumps at the end of the page: [class, text]. */
  counters: ReadonlyArray<readonly [string, string]>;
};

type Kind = TimelineMark['mark'];

const COLORS: Record<Kind, string> = {
  decrypted: '#1f9d3a',
  encrypted: '#1f9d3a',
  plain: '#a8a8a8',
  'not-decrypted': '#2a62c9',
  drop: '#d62f2f',
  mismatch: '#ff00a0',
  resync: '#e08a00',
  lost: '#b00000',
  call: '#6a3fb5',
  impair: '#8c564b',
};

const LABELS: Record<Kind, string> = {
  decrypted: 'RX decrypted by the device (skb->decrypted)',
  encrypted: 'TX encrypted by the device, equals the capture',
  plain: 'before the offload start (handshake)',
  'not-decrypted': 'RX passed up encrypted: the stack decrypts in software',
  drop: 'TX dropped by the driver',
  mismatch: 'TX differs from the capture',
  resync: 'device resync event',
  lost: 'device lost sync',
  call: 'driver call',
  impair: 'scenario impairment (replay --scenario)',
};

/** Marks that are packets (a bar); the rest are events at a point between packets (a line). */
const PACKET: ReadonlySet<Kind> = new Set(['decrypted', 'encrypted', 'plain', 'not-decrypted', 'drop', 'mismatch']);

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function bytes(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
}

/** Short label drawn on the chart; the full text is in the tooltip and the calls table. */
function labelOf(m: TimelineMark): string | null {
  if (m.mark === 'lost') return 'sync lost';
  if (m.mark === 'resync') return m.note?.startsWith('device asks') ? 'device asks resync' : null;
  if (m.mark === 'impair') return m.op ?? 'impairment';
  if (m.mark === 'call') {
    const op = m.op ?? 'call';
    return op.replace(/^tls_offload_(rx|tx)_resync_/, '$1 resync ').replace('async_request_', 'async ');
  }
  return null;
}

type Span = { from: number; to: number; regained: boolean; passedUp: number };

const W = 1300;
const H = 330;
const L = 70; // left margin: seq axis labels
const R = 20;
const TOP = 78; // room for stacked event labels
const BOTTOM = 40;
const LABEL_ROWS = 4;

function chart(marks: TimelineMark[], dir: 'rx' | 'tx'): { svg: string; spans: Span[]; packets: number } {
  const pkts = marks.filter((m) => PACKET.has(m.mark));
  const n = pkts.length;
  const base = pkts[0]?.seq ?? 0;
  // Signed distance from the first packet, so a retransmission of older bytes plots below, not at +4 GiB.
  const rel = (s: number) => Math.max(0, (s - base) | 0);
  const maxSeq = Math.max(1, ...pkts.map((m) => rel(m.seq) + m.len));
  const plotW = W - L - R;
  const plotH = H - TOP - BOTTOM;
  const step = plotW / Math.max(1, n);
  const x = (i: number) => L + i * step; // left edge of packet slot i; events at i sit between i-1 and i
  const y = (s: number) => TOP + plotH - (s / maxSeq) * plotH;
  const barW = Math.max(1, Math.min(12, step * 0.8));

  const bars: string[] = [];
  const lines: string[] = [];
  const labels: string[] = [];
  const rows: Array<Array<[number, number]>> = Array.from({ length: LABEL_ROWS }, () => []);
  const spans: Span[] = [];
  let open: Span | null = null;
  let i = 0;
  let highest = 0;
  let late = 0;
  const label = (text: string, at: number, color: string, bold = false) => {
    const w = text.length * 6.4 + 6;
    // Near the right edge the label ends at its line instead of starting there.
    const left = at + w > W - 2 ? at - w : at;
    const row = rows.findIndex((r) => r.every(([a, b]) => left + w < a || left > b));
    if (row < 0) return; // no room: the tooltip and the calls table still have it
    rows[row]!.push([left, left + w]);
    const anchor = left < at ? ` text-anchor="end"` : '';
    const tx = left < at ? at - 3 : at + 3;
    labels.push(`<text x="${tx.toFixed(1)}" y="${TOP - 8 - row * 15}" font-size="11" fill="${color}"${anchor}${bold ? ' font-weight="bold"' : ''}>${esc(text)}</text>`);
  };
  for (const m of marks) {
    const title = esc(`${m.note ?? m.mark} (seq ${m.seq}${m.len ? `, ${m.len} bytes` : ''}, t=${m.t.toFixed(6)} s)`);
    if (PACKET.has(m.mark)) {
      const cx = x(i) + (step - barW) / 2;
      const y0 = y(rel(m.seq));
      const y1 = y(rel(m.seq) + m.len);
      bars.push(`<rect class="mark ${m.mark}" data-seq="${m.seq}" x="${cx.toFixed(1)}" y="${y1.toFixed(1)}" width="${barW.toFixed(1)}" height="${Math.max(2, y0 - y1).toFixed(1)}" fill="${COLORS[m.mark]}"><title>${title}</title></rect>`);
      // Bytes below the highest seen: a retransmission or a segment that came late (the usual cause of a lost sync).
      if (m.len > 0 && rel(m.seq) + m.len <= highest && late++ < 20) {
        bars.push(`<text class="late" x="${(cx + barW + 3).toFixed(1)}" y="${(y0 + 4).toFixed(1)}" font-size="10" fill="#555">late</text>`);
      }
      highest = Math.max(highest, rel(m.seq) + m.len);
      if (m.mark === 'decrypted' && open) {
        open.to = i;
        open.regained = true;
        spans.push(open);
        open = null;
        lines.push(`<line class="regained" x1="${x(i).toFixed(1)}" x2="${x(i).toFixed(1)}" y1="${TOP}" y2="${TOP + plotH}" stroke="${COLORS.decrypted}" stroke-width="2"><title>first packet decrypted again</title></line>`);
        label('sync regained', x(i), COLORS.decrypted, true);
      } else if (m.mark === 'not-decrypted' && open) {
        open.passedUp++;
      }
      i++;
      continue;
    }
    if (m.mark === 'lost' && dir === 'rx' && !open) open = { from: i, to: n, regained: false, passedUp: 0 };
    const at = x(i);
    const strong = m.mark === 'lost' || (m.mark === 'call' && m.op === 'tls_dev_resync');
    lines.push(`<line class="mark ${m.mark}"${m.op ? ` data-op="${esc(m.op)}"` : ''} x1="${at.toFixed(1)}" x2="${at.toFixed(1)}" y1="${TOP}" y2="${TOP + plotH}" stroke="${COLORS[m.mark]}" stroke-width="${strong ? 2 : 1}"${strong ? '' : ' stroke-dasharray="4 3"'}><title>${title}</title></line>`);
    const text = labelOf(m);
    if (text) label(text, at, COLORS[m.mark], m.mark === 'lost');
  }
  if (open) spans.push(open);

  const shades = spans.map((s) => {
    const x0 = x(s.from);
    const x1 = x(s.to);
    const what = `${s.regained ? 'out of sync' : 'out of sync, not regained'}: ${s.passedUp} packet${s.passedUp === 1 ? '' : 's'} passed up encrypted`;
    const tx = Math.min(x0 + 4, W - R - what.length * 6.4);
    return `<rect class="out-of-sync" x="${x0.toFixed(1)}" y="${TOP}" width="${Math.max(2, x1 - x0).toFixed(1)}" height="${plotH}" fill="#ffd9d9"><title>${esc(what)}</title></rect>
<text x="${tx.toFixed(1)}" y="${TOP + 16}" font-size="12" fill="${COLORS.lost}">${esc(what)}</text>`;
  });

  const ticks: string[] = [];
  for (let k = 0; k <= 4; k++) {
    const s = Math.round((maxSeq * k) / 4);
    ticks.push(`<line x1="${L - 4}" x2="${W - R}" y1="${y(s).toFixed(1)}" y2="${y(s).toFixed(1)}" stroke="#e4e4e4"/><text x="${L - 6}" y="${(y(s) + 4).toFixed(1)}" font-size="11" text-anchor="end">${bytes(s)}</text>`);
  }
  const xt = Math.max(1, Math.ceil(n / 10));
  for (let k = 0; k < n; k += xt) ticks.push(`<text x="${(x(k) + step / 2).toFixed(1)}" y="${TOP + plotH + 15}" font-size="11" text-anchor="middle">${k + 1}</text>`);
  const svg = `<svg class="timeline" data-dir="${dir}" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" xmlns="http://www.w3.org/2000/svg" font-family="system-ui,sans-serif">
<rect x="${L}" y="${TOP}" width="${plotW}" height="${plotH}" fill="#fbfbfb" stroke="#bbb"/>
${ticks.join('\n')}
${shades.join('\n')}
${bars.join('\n')}
${lines.join('\n')}
${labels.join('\n')}
<text x="${L}" y="${H - 6}" font-size="11" fill="#555">${dir === 'rx' ? 'received' : 'transmitted'} packets in arrival order (${n}) →</text>
<text x="${L - 60}" y="14" font-size="11" fill="#555">TCP seq from ${base} ↑</text>
</svg>`;
  return { svg, spans, packets: n };
}

function flowSection(sec: TimelineSection, idx: number): string {
  const marks = sec.marks;
  const count = (k: Kind) => marks.filter((m) => m.mark === k).length;
  const rx = chart(marks.filter((m) => m.dir === 'rx'), 'rx');
  const tx = chart(marks.filter((m) => m.dir === 'tx'), 'tx');
  const lost = rx.spans.length;
  const regained = rx.spans.filter((s) => s.regained).length;
  const calls = marks.filter((m) => m.mark === 'call');
  const rows = calls.map((m) => `<tr class="call" data-op="${esc(m.op ?? '')}" data-dir="${m.dir}"><td>${m.t.toFixed(6)}</td><td>${m.dir.toUpperCase()}</td><td><code>${esc(m.note ?? m.op ?? '')}</code></td></tr>`);
  const sync = lost === 0 ? 'RX stayed in sync' : `RX lost sync ${lost}× and regained it ${regained}×`;
  return `<section class="flow" data-flow="${idx}" data-local="${esc(sec.local)}" data-remote="${esc(sec.remote)}">
<h2>#${idx} ${esc(sec.heading)}</h2>
<p class="summary">${sec.summary({ lost, regained, sync, drops: count('drop') })}</p>
${sec.problems.length ? `<ul class="problems">${sec.problems.map((p) => `<li>${esc(p)}</li>`).join('')}</ul>` : ''}
<h3>${esc(sec.rxTitle)}</h3>
${rx.svg}
<h3>${esc(sec.txTitle)}</h3>
${tx.svg}
<details${lost ? ' open' : ''}><summary>${calls.length} driver calls</summary>
<table class="calls"><tr><th>time (s)</th><th>dir</th><th>call</th></tr>
${rows.join('\n')}
</table></details>
</section>`;
}

/** The replay's page: one section per connection, from the local host's side (`maxMarks`: PAGE_MARKS_CAP). */
export function renderTimeline(r: ReplayResult, maxMarks?: number): string {
  const byFlow = new Map<number, TimelineMark[]>();
  for (const m of r.timeline) {
    let a = byFlow.get(m.flow);
    if (!a) byFlow.set(m.flow, (a = []));
    a.push(m);
  }
  return renderPage({
    title: `tlsnic timeline — ${r.capture}`,
    heading: 'tlsnic replay timeline',
    about: `${r.capture} — ${r.packets} packets, ${r.flows.length} connection(s), device ${r.netdev}${r.timelineWindow ? ` — drawn: ${windowText(r.timelineWindow)} (--timeline-window; counts and summaries cover the whole capture)` : ''}`,
    packetKeys: (['decrypted', 'not-decrypted', 'plain', 'drop', 'mismatch'] as const).map((k) => [k, LABELS[k]] as const),
    impairKey: r.scenario ? `scenario ${r.scenario.name}: impairment (drop, reorder, ...; TCP drop: bad checksum)` : null,
    sections: r.flows.map((f, i) => replaySection(f, byFlow.get(i + 1) ?? [])),
    counters: [['ethtool', r.ethtoolText], ['tls-stat', r.tlsStatText]],
  }, maxMarks);
}

/** What a --timeline-window page says it draws. */
export function windowText(w: TimeWindow, clock = 'capture time'): string {
  return w.to === Infinity ? `from ${w.from} s of ${clock} to the end` : `${w.from} s to ${w.to} s of ${clock}`;
}

function replaySection(f: FlowReport, marks: TimelineMark[]): TimelineSection {
  return {
    local: f.local,
    remote: f.remote,
    heading: `${f.local} ⇄ ${f.remote} — TLS ${f.version ?? '?'} ${f.cipher ?? '?'}`,
    summary: ({ lost, sync, drops }) => `RX ${esc(f.rx.mode)}${f.rx.reason ? ` (${esc(f.rx.reason)})` : ''}: <b>${f.rx.decrypted}</b> of ${f.rx.segments} packets decrypted by the device; <b class="${lost ? 'bad' : 'ok'}">${sync}</b>.
TX ${esc(f.tx.mode)}${f.tx.reason ? ` (${esc(f.tx.reason)})` : ''}: wire ${f.tx.wireMatch ? 'matches the capture' : '<b class="bad">DIFFERS from the capture</b>'}, ${drops} dropped.`,
    problems: f.problems,
    rxTitle: `received (${f.remote} → ${f.local})`,
    txTitle: `transmitted (${f.local} → ${f.remote})`,
    marks,
  };
}

/**
 * Marks one page draws at most, over all its sections (~200 bytes of HTML each): a capture of many connections,
 * each at its own cap, would otherwise make a page past what a browser opens, or past the longest string
 * node can build. Past it every section draws an equal share of its first marks and says what it left out.
 */
export const PAGE_MARKS_CAP = 400_000;

export function renderPage(p: TimelinePage, maxMarks = PAGE_MARKS_CAP): string {
  const total = p.sections.reduce((n, s) => n + s.marks.length, 0);
  const share = total > maxMarks ? Math.max(1, Math.floor(maxMarks / Math.max(1, p.sections.length))) : Infinity;
  const sections = p.sections.map((s, i) => {
    if (s.marks.length <= share) return flowSection(s, i + 1);
    const note = `this page draws ${maxMarks} events over its ${p.sections.length} sections: here the first ${share}; ${s.marks.length - share} more are left out`;
    return flowSection({ ...s, marks: s.marks.slice(0, share), problems: [...s.problems, note] }, i + 1);
  });
  const key = (color: string, text: string, cls = '') => `<span class="key ${cls}"><i style="background:${color}"></i>${esc(text)}</span>`;
  const legend = [
    ...p.packetKeys.map(([k, text]) => key(COLORS[k], text)),
    key('#ffd9d9', 'device out of sync (from "sync lost" to the first packet decrypted again)'),
    key(COLORS.lost, 'sync lost', 'line'),
    key(COLORS.resync, 'device resync request / applied', 'line'),
    key(COLORS.call, 'driver call (tls_dev_add/del/resync, resync helpers)', 'line'),
    ...(p.impairKey ? [key(COLORS.impair, p.impairKey, 'line')] : []),
  ].join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(p.title)}</title>
<style>
body{font:14px system-ui,sans-serif;margin:20px;color:#222;max-width:${W + 20}px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:26px 0 4px;border-top:1px solid #ddd;padding-top:12px}
h3{font-size:13px;margin:10px 0 0;color:#444}
.key{display:inline-block;margin:0 14px 4px 0;font-size:12px}.key i{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px}
.key.line i{width:3px;height:14px}
.summary{margin:4px 0}.bad{color:#b00000}.ok{color:#1f7a32}.problems{color:#a00}
table.calls{border-collapse:collapse;font-size:12px;margin:6px 0}table.calls td,table.calls th{border-bottom:1px solid #eee;padding:2px 10px 2px 0;text-align:left}
pre{background:#f4f4f4;padding:8px;font-size:12px;max-height:300px;overflow:auto}
</style></head><body>
<h1>${esc(p.heading)}</h1>
<p>${esc(p.about)}</p>
<div class="legend">${legend}</div>
${sections.join('\n')}
<h2>Counters</h2>
${p.counters.map(([cls, text]) => `<pre class="${cls}">${esc(text)}</pre>`).join('\n')}
</body></html>
`;
}
