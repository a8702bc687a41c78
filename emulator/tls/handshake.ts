// Handshake messages from a reassembled handshake byte stream (RFC 5246 7.4, RFC 8446 4): just enough of
// ClientHello and ServerHello to pick the keys of a captured connection.
import { TlsError } from '../errors.ts';
import { TLS_1_2_VERSION, TLS_1_3_VERSION } from './crypto-info.ts';

export const HS_CLIENT_HELLO = 1;
export const HS_SERVER_HELLO = 2;
export const HS_FINISHED = 20;
const EXT_SUPPORTED_VERSIONS = 43;

/** RFC 8446 4.1.3: a ServerHello with this random is a HelloRetryRequest. */
const HRR_RANDOM = Buffer.from('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c', 'hex');

export type ClientHello = { random: Uint8Array; sessionId: Uint8Array; cipherSuites: number[]; supportedVersions: number[] };
export type ServerHello = { random: Uint8Array; cipherSuite: number; selectedVersion: number; helloRetryRequest: boolean };
export type HandshakeMessage = { type: number; body: Uint8Array; clientHello?: ClientHello; serverHello?: ServerHello };

class Reader {
  constructor(readonly b: Uint8Array, public off: number, readonly end: number, readonly what: string) {}
  need(n: number): void {
    if (this.off + n > this.end) throw new TlsError(`${this.what} is truncated: needs ${n} more bytes`, { offset: this.off });
  }
  u8(): number {
    this.need(1);
    return this.b[this.off++]!;
  }
  u16(): number {
    this.need(2);
    const v = (this.b[this.off]! << 8) | this.b[this.off + 1]!;
    this.off += 2;
    return v;
  }
  bytes(n: number): Uint8Array {
    this.need(n);
    const v = this.b.slice(this.off, this.off + n);
    this.off += n;
    return v;
  }
  vec8(): Uint8Array {
    return this.bytes(this.u8());
  }
  vec16(): Uint8Array {
    return this.bytes(this.u16());
  }
}

function extensions(r: Reader): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  if (r.off === r.end) return out;
  const base = r.off + 2;
  const all = r.vec16();
  if (r.off !== r.end) throw new TlsError(`${r.what} has ${r.end - r.off} bytes after its extensions`, { offset: r.off });
  const e = new Reader(all, 0, all.length, `${r.what} extensions`);
  try {
    while (e.off < e.end) {
      const type = e.u16();
      out.set(type, e.vec16());
    }
  } catch (err) {
    // Report the offset in the message body, not in the extensions block.
    if (err instanceof TlsError) throw new TlsError(err.message, { offset: base + (err.where.offset ?? 0) });
    throw err;
  }
  return out;
}

export function parseClientHello(body: Uint8Array): ClientHello {
  const r = new Reader(body, 0, body.length, 'ClientHello');
  r.u16();
  const random = r.bytes(32);
  const sessionId = r.vec8();
  const suites = r.vec16();
  if (suites.length % 2) throw new TlsError('ClientHello cipher_suites has an odd length', { field: 'cipher_suites' });
  const cipherSuites: number[] = [];
  for (let i = 0; i < suites.length; i += 2) cipherSuites.push((suites[i]! << 8) | suites[i + 1]!);
  r.vec8();
  const ext = extensions(r);
  const sv = ext.get(EXT_SUPPORTED_VERSIONS);
  const supportedVersions: number[] = [];
  if (sv) {
    // RFC 8446 4.2.1: ProtocolVersion versions<2..254>, a one-byte length then whole 2-byte entries.
    if (sv.length < 1 || sv[0]! !== sv.length - 1 || sv[0]! % 2 || sv[0]! < 2) {
      throw new TlsError(`ClientHello supported_versions list is malformed (${sv.length} bytes, length byte ${sv[0] ?? 'missing'})`, { field: 'supported_versions' });
    }
    for (let i = 1; i < sv.length; i += 2) supportedVersions.push((sv[i]! << 8) | sv[i + 1]!);
  }
  return { random, sessionId, cipherSuites, supportedVersions };
}

export function parseServerHello(body: Uint8Array): ServerHello {
  const r = new Reader(body, 0, body.length, 'ServerHello');
  const legacy = r.u16();
  const random = r.bytes(32);
  r.vec8();
  const cipherSuite = r.u16();
  r.u8();
  const ext = extensions(r);
  const sv = ext.get(EXT_SUPPORTED_VERSIONS);
  // RFC 8446 4.2.1: in ServerHello the extension body is exactly one ProtocolVersion.
  if (sv && sv.length !== 2) throw new TlsError(`ServerHello supported_versions must be 2 bytes, got ${sv.length}`, { field: 'supported_versions' });
  const selectedVersion = sv ? (sv[0]! << 8) | sv[1]! : legacy;
  if (selectedVersion !== TLS_1_2_VERSION && selectedVersion !== TLS_1_3_VERSION && selectedVersion > 0x0304) {
    throw new TlsError(`ServerHello selects version 0x${selectedVersion.toString(16)}`, { field: 'version' });
  }
  return { random, cipherSuite, selectedVersion, helloRetryRequest: Buffer.from(random).equals(HRR_RANDOM) };
}

/** Split a handshake byte stream into whole messages; `rest` is an incomplete trailing message. */
export function parseHandshakeMessages(stream: Uint8Array): { messages: HandshakeMessage[]; rest: Uint8Array } {
  const messages: HandshakeMessage[] = [];
  let off = 0;
  while (off + 4 <= stream.length) {
    const type = stream[off]!;
    const len = (stream[off + 1]! << 16) | (stream[off + 2]! << 8) | stream[off + 3]!;
    if (off + 4 + len > stream.length) break;
    const body = stream.subarray(off + 4, off + 4 + len);
    const m: HandshakeMessage = { type, body };
    try {
      if (type === HS_CLIENT_HELLO) m.clientHello = parseClientHello(body);
      else if (type === HS_SERVER_HELLO) m.serverHello = parseServerHello(body);
    } catch (e) {
      if (e instanceof TlsError) throw new TlsError(e.message, { offset: off + 4 + (e.where.offset ?? 0) });
      throw e;
    }
    messages.push(m);
    off += 4 + len;
  }
  return { messages, rest: stream.subarray(off) };
}
