// IP address text <-> bytes. IPv6 text follows RFC 5952 (lowercase, longest zero run as ::).
import { WireError } from '../errors.ts';

export function formatIp(buf: Uint8Array, off: number, len: number): string {
  if (len === 4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
  if (len !== 16) throw new WireError(`an IP address is 4 or 16 bytes, not ${len}`, { offset: off, field: 'address' });
  if (off + 16 > buf.length) throw new WireError('IPv6 address runs past the buffer', { offset: off, field: 'address' });
  // RFC 5952 section 5: IPv4-mapped addresses keep the dotted quad (::ffff:192.0.2.1).
  let mapped = buf[off + 10] === 0xff && buf[off + 11] === 0xff;
  for (let i = 0; mapped && i < 10; i++) mapped = buf[off + i] === 0;
  if (mapped) return `::ffff:${formatIp(buf, off + 12, 4)}`;
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((buf[off + 2 * i]! << 8) | buf[off + 2 * i + 1]!);
  // Longest run of zero words (length >= 2) becomes ::, the first one on ties.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  if (best < 0) return hex(words);
  return `${hex(words.slice(0, best))}::${hex(words.slice(best + bestLen))}`;
}

export function parseIp(text: string): Uint8Array {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) {
    const parts = text.split('.').map(Number);
    if (parts.some((p) => p > 255)) throw new WireError(`IPv4 address '${text}' has an octet over 255`, { field: 'address' });
    return Uint8Array.from(parts);
  }
  if (!/^[0-9a-fA-F:.]+$/.test(text) || !text.includes(':')) throw new WireError(`'${text}' is not an IP address`, { field: 'address' });
  let s = text;
  if (s.includes('.')) {
    // Embedded IPv4 in the last 32 bits (::ffff:1.2.3.4): rewrite it as two hex groups.
    const cut = s.lastIndexOf(':');
    const b = parseIp(s.slice(cut + 1));
    s = `${s.slice(0, cut + 1)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) throw new WireError(`IPv6 address '${text}' has more than one '::'`, { field: 'address' });
  const parse = (h: string) => (h === '' ? [] : h.split(':').map((w) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(w)) throw new WireError(`IPv6 address '${text}' has a bad group '${w}'`, { field: 'address' });
    return parseInt(w, 16);
  }));
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  const given = head.length + rest.length;
  if (halves.length === 1 && given !== 8) throw new WireError(`IPv6 address '${text}' has ${given} groups, not 8`, { field: 'address' });
  if (halves.length === 2 && given > 7) throw new WireError(`IPv6 address '${text}' is too long`, { field: 'address' });
  const words = [...head, ...new Array(8 - given).fill(0), ...rest];
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >>> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}
