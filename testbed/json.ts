// A small JSON parser (RFC 8259) that remembers where every value and key starts, so a scenario that does
// not validate can be reported as `file:line:col: field.path: what` (STYLE principle 7). JSON.parse gives
// neither positions nor paths; no dependency is needed for a grammar this small.
import { ConfigError } from '../emulator/errors.ts';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

/** 1-based line and column, and the 0-based character offset. */
export type Pos = { line: number; col: number; offset: number };

export type PathKey = string | number;

export type ParsedJson = {
  value: JsonValue;
  /** Where the value at a path starts (`pathId(path)`); the root is ''. */
  valueAt: Map<string, Pos>;
  /** Where the key naming the member at a path starts (objects only). */
  keyAt: Map<string, Pos>;
  /** Position of a character offset (for errors computed elsewhere). */
  posOf(offset: number): Pos;
};

/** A stable string for a path: keys joined by U+0000 so no key can collide with a separator. */
export function pathId(path: readonly PropertyKey[]): string {
  return path.map((k) => String(k)).join('\u0000');
}

/** `impairments[2].record`: the field path as a user writes it. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const k of path) {
    if (typeof k === 'number') out += `[${k}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(String(k))) out += out ? `.${String(k)}` : String(k);
    else out += `[${JSON.stringify(String(k))}]`;
  }
  return out || '(root)';
}

const MAX_DEPTH = 256;

export function parseJsonWithPositions(text: string, file = '<input>'): ParsedJson {
  // Line starts, for offset -> line:col.
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) lineStarts.push(i + 1);
  const posOf = (offset: number): Pos => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - lineStarts[lo]! + 1, offset };
  };
  const valueAt = new Map<string, Pos>();
  const keyAt = new Map<string, Pos>();
  let i = 0;

  const fail = (msg: string, at = i): never => {
    const p = posOf(at);
    throw new ConfigError(`${file}:${p.line}:${p.col}: JSON syntax: ${msg}`, { file, offset: at });
  };
  const describe = (at: number): string => (at >= text.length ? 'end of input' : JSON.stringify(text[at]));
  const ws = () => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else return;
    }
  };

  const parseString = (): string => {
    const start = i;
    i++; // opening quote
    let out = '';
    let run = i;
    for (;;) {
      if (i >= text.length) fail('unterminated string', start);
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(run, i);
        i++;
        return out;
      }
      if (c < 0x20) fail('control character in string (escape it)');
      if (c === 0x5c) {
        out += text.slice(run, i);
        const e = text[i + 1];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            const hex = text.slice(i + 2, i + 6);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('bad \\u escape');
            out += String.fromCharCode(parseInt(hex, 16));
            i += 4;
            break;
          }
          default: fail(`bad escape \\${e ?? ''}`);
        }
        i += 2;
        run = i;
        continue;
      }
      i++;
    }
  };

  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

  const parseValue = (path: PropertyKey[], depth: number): JsonValue => {
    if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH}`);
    ws();
    valueAt.set(pathId(path), posOf(i));
    const c = text[i];
    if (c === '{') {
      i++;
      const obj: { [k: string]: JsonValue } = {};
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail(`expected a "key" but found ${describe(i)}`);
        const keyStart = i;
        const key = parseString();
        if (Object.prototype.hasOwnProperty.call(obj, key)) fail(`duplicate key "${key}"`, keyStart);
        const p = [...path, key];
        keyAt.set(pathId(p), posOf(keyStart));
        ws();
        if (text[i] !== ':') fail(`expected ':' after key "${key}" but found ${describe(i)}`);
        i++;
        obj[key] = parseValue(p, depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return obj;
        }
        fail(`expected ',' or '}' but found ${describe(i)}`);
      }
    }
    if (c === '[') {
      i++;
      const arr: JsonValue[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(parseValue([...path, arr.length], depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return arr;
        }
        fail(`expected ',' or ']' but found ${describe(i)}`);
      }
    }
    if (c === '"') return parseString();
    if (text.startsWith('true', i)) {
      i += 4;
      return true;
    }
    if (text.startsWith('false', i)) {
      i += 5;
      return false;
    }
    if (text.startsWith('null', i)) {
      i += 4;
      return null;
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (m && m[0].length > 0 && m[0] !== '-') {
      i += m[0].length;
      return Number(m[0]);
    }
    return fail(`expected a value but found ${describe(i)}`);
  };

  // A UTF-8 BOM is tolerated as JSON parsers commonly do.
  if (text.charCodeAt(0) === 0xfeff) i = 1;
  const value = parseValue([], 0);
  ws();
  if (i < text.length) fail(`unexpected ${describe(i)} after the top-level value`);
  return { value, valueAt, keyAt, posOf };
}
