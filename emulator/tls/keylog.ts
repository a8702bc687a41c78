// NSS key log files (SSLKEYLOGFILE format): one `LABEL <client_random hex> <secret hex>` per line.
// https://firefox-source-docs.mozilla.org/security/nss/legacy/key_log_format/
import { TlsError } from '../errors.ts';

export type ConnectionSecrets = {
  /** TLS 1.2 (CLIENT_RANDOM): the 48-byte master secret. */
  masterSecret?: Uint8Array;
  clientHandshakeTrafficSecret?: Uint8Array;
  serverHandshakeTrafficSecret?: Uint8Array;
  clientTrafficSecret0?: Uint8Array;
  serverTrafficSecret0?: Uint8Array;
  exporterSecret?: Uint8Array;
  clientEarlyTrafficSecret?: Uint8Array;
};

const LABELS: Record<string, keyof ConnectionSecrets> = {
  CLIENT_RANDOM: 'masterSecret',
  CLIENT_HANDSHAKE_TRAFFIC_SECRET: 'clientHandshakeTrafficSecret',
  SERVER_HANDSHAKE_TRAFFIC_SECRET: 'serverHandshakeTrafficSecret',
  CLIENT_TRAFFIC_SECRET_0: 'clientTrafficSecret0',
  SERVER_TRAFFIC_SECRET_0: 'serverTrafficSecret0',
  EXPORTER_SECRET: 'exporterSecret',
  CLIENT_EARLY_TRAFFIC_SECRET: 'clientEarlyTrafficSecret',
};

export class KeyLog {
  private readonly byRandom = new Map<string, ConnectionSecrets>();
  /** Lines with labels we do not use (kept count, not an error). */
  ignoredLines = 0;

  lookup(clientRandom: Uint8Array): ConnectionSecrets | undefined {
    return this.byRandom.get(Buffer.from(clientRandom).toString('hex'));
  }

  get size(): number {
    return this.byRandom.size;
  }

  set(clientRandomHex: string, field: keyof ConnectionSecrets, secret: Uint8Array): void {
    let e = this.byRandom.get(clientRandomHex);
    if (!e) this.byRandom.set(clientRandomHex, (e = {}));
    e[field] = secret;
  }
}

export function parseKeyLog(text: string, file?: string): KeyLog {
  const log = new KeyLog();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const where = { file, field: `line ${i + 1}` };
    const parts = line.split(/\s+/);
    if (parts.length !== 3) throw new TlsError(`key log line has ${parts.length} fields, expected 3 (LABEL client_random secret)`, where);
    const [label, random, secret] = parts as [string, string, string];
    const field = LABELS[label];
    if (!/^[0-9a-fA-F]+$/.test(random) || random.length !== 64) {
      throw new TlsError(`key log client random must be 64 hex digits, got ${random.length} characters`, where);
    }
    if (!/^[0-9a-fA-F]*$/.test(secret) || secret.length % 2) throw new TlsError('key log secret is not hex', where);
    if (!field) {
      log.ignoredLines++;
      continue;
    }
    const bytes = Uint8Array.from(Buffer.from(secret, 'hex'));
    const want = field === 'masterSecret' ? [48] : [32, 48];
    if (!want.includes(bytes.length)) {
      throw new TlsError(`${label} secret must be ${want.join(' or ')} bytes, got ${bytes.length}`, where);
    }
    log.set(random.toLowerCase(), field, bytes);
  }
  return log;
}
