// Walks the TLS records of one captured connection, both directions, to find what user space would know
// when it installs kTLS: the cipher, the keys (from the key log), and per direction the TCP seq where the
// first record under the application traffic keys starts and its record number. Afterwards it opens each
// application-phase record in software: the reference plaintext (and, for the local TX side, what the
// application handed to the stack).
import type { AeadBackend } from '../../emulator/crypto/aead.ts';
import { TlsError } from '../../emulator/errors.ts';
import { TLS_1_2_VERSION, TLS_1_3_VERSION, bigIntToRecSeq, type CryptoInfo } from '../../emulator/tls/crypto-info.ts';
import type { KeyLog } from '../../emulator/tls/keylog.ts';
import { parseHandshakeMessages, type ClientHello, type ServerHello } from '../../emulator/tls/handshake.ts';
import { cipherSuiteInfo, tls12KeyBlock, tls13TrafficKeys } from '../../emulator/tls/keys.ts';
import { openRecord } from '../../emulator/tls/record-crypto.ts';
import {
  CONTENT_APPLICATION_DATA, CONTENT_CHANGE_CIPHER_SPEC, CONTENT_HANDSHAKE, isKeyUpdate, MAX_RECORD_LENGTH_ANY, TLS_HEADER_SIZE,
} from '../../emulator/tls/record.ts';
import { seqAdd } from '../../emulator/wire/seq.ts';
import { concatBytes } from '../../emulator/bytes.ts';

export type Dir = 'c2s' | 's2c';

const EMPTY = new Uint8Array(0);

/** `wire` is a view of the walker's buffer (or of the pushed bytes): valid during onRecord only. */
export type WalkRecord = { dir: Dir; seq: number; type: number; plaintext: Uint8Array; recSeq: bigint; wire: Uint8Array };

export type WalkStart = { dir: Dir; seq: number; info: CryptoInfo };

export interface WalkerEvents {
  /** Direction `dir` switches to application traffic keys at TCP `seq` (install kTLS there). */
  onStart(s: WalkStart): void;
  /** One application-phase record, opened in software. */
  onRecord(r: WalkRecord): void;
  /** This connection cannot be replayed further (why). */
  onProblem(dir: Dir | null, why: string): void;
  /**
   * Optional: the header of application-phase record `index` (0 = the first after the handshake) was read at
   * TCP `seq`, `total` bytes with the header; in stream order, as soon as its 5 header bytes are in.
   */
  onRecordStart?(dir: Dir, seq: number, index: number, total: number): void;
}

type DirState = {
  phase: 'plain' | 'encrypted-handshake' | 'app' | 'dead';
  buf: Uint8Array;
  fill: number;
  /** Seq of buf[0]. */
  seq: number;
  handshake: Uint8Array[];
  /** TLS 1.3 handshake keys and their record counter, when the key log has them. */
  hsInfo: CryptoInfo | null;
  hsRecSeq: bigint;
  appInfo: CryptoInfo | null;
  recSeq: bigint;
  /** recSeq of the first application-phase record. */
  startRecSeq: bigint;
};

export class TlsWalker {
  version: number | null = null;
  cipherSuite: number | null = null;
  cipherName: string | null = null;
  clientHello: ClientHello | null = null;
  serverHello: ServerHello | null = null;
  private readonly dirs: Record<Dir, DirState>;
  private keysReady = false;
  /** Directions whose application records are opened (onRecord); the others are only framed. */
  private readonly opened: Record<Dir, boolean> = { c2s: true, s2c: true };

  constructor(
    private readonly keylog: KeyLog | null,
    private readonly backend: AeadBackend,
    private readonly ev: WalkerEvents,
  ) {
    // Record buffers grow to the largest record seen (not the largest possible): many flows with small
    // records stay small, and release() gives them back when a flow ends.
    const mk = (): DirState => ({
      phase: 'plain', buf: EMPTY, fill: 0, seq: 0, handshake: [],
      hsInfo: null, hsRecSeq: 0n, appInfo: null, recSeq: 0n, startRecSeq: 0n,
    });
    this.dirs = { c2s: mk(), s2c: mk() };
  }

  /** In-order stream bytes of one direction. */
  push(dir: Dir, seq: number, data: Uint8Array): void {
    const d = this.dirs[dir];
    if (d.phase === 'dead') return;
    if (d.fill === 0) d.seq = seq;
    let off = 0;
    while (off < data.length && !this.isDead(dir)) {
      if (d.fill === 0 && data.length - off >= TLS_HEADER_SIZE) {
        // A whole record inside the pushed bytes: walk it where it is, no copy.
        const total = TLS_HEADER_SIZE + ((data[off + 3]! << 8) | data[off + 4]!);
        if (off + total <= data.length && this.validHeader(dir, data, off, d.seq)) {
          const recSeqTcp = d.seq;
          if (d.phase === 'app') this.ev.onRecordStart?.(dir, recSeqTcp, Number(d.recSeq - d.startRecSeq), total);
          d.seq = seqAdd(recSeqTcp, total);
          this.onRecord(dir, recSeqTcp, data.subarray(off, off + total));
          off += total;
          continue;
        }
        if (this.isDead(dir)) return;
      }
      if (d.fill < TLS_HEADER_SIZE) {
        if (d.buf.length < TLS_HEADER_SIZE) d.buf = new Uint8Array(TLS_HEADER_SIZE);
        const k = Math.min(TLS_HEADER_SIZE - d.fill, data.length - off);
        d.buf.set(data.subarray(off, off + k), d.fill);
        d.fill += k;
        off += k;
        if (d.fill < TLS_HEADER_SIZE) break;
        if (!this.validHeader(dir, d.buf, 0, d.seq)) return;
        if (d.phase === 'app') this.ev.onRecordStart?.(dir, d.seq, Number(d.recSeq - d.startRecSeq), TLS_HEADER_SIZE + ((d.buf[3]! << 8) | d.buf[4]!));
      }
      const total = TLS_HEADER_SIZE + ((d.buf[3]! << 8) | d.buf[4]!);
      if (d.phase === 'app' && !this.opened[dir]) {
        // A record of a direction framed but not opened (the replay's RX): nothing reads its bytes, so they
        // are counted, not copied into the buffer, which keeps the header alone.
        const k = Math.min(total - d.fill, data.length - off);
        d.fill += k;
        off += k;
        if (d.fill === total) {
          const recSeqTcp = d.seq;
          d.fill = 0;
          d.seq = seqAdd(recSeqTcp, total);
          this.appRecord(dir, recSeqTcp, d.buf.subarray(0, TLS_HEADER_SIZE));
        }
        continue;
      }
      if (d.buf.length < total) {
        const bigger = new Uint8Array(Math.max(total, Math.min(2 * d.buf.length, TLS_HEADER_SIZE + MAX_RECORD_LENGTH_ANY)));
        bigger.set(d.buf.subarray(0, d.fill));
        d.buf = bigger;
      }
      const k = Math.min(total - d.fill, data.length - off);
      d.buf.set(data.subarray(off, off + k), d.fill);
      d.fill += k;
      off += k;
      if (d.fill === total) {
        const rec = d.buf.subarray(0, total);
        const recSeqTcp = d.seq;
        d.fill = 0;
        d.seq = seqAdd(recSeqTcp, total);
        this.onRecord(dir, recSeqTcp, rec);
      }
    }
  }

  /** A record header at b[off..off+5): kills the direction (and says where) when it is not one. */
  private validHeader(dir: Dir, b: Uint8Array, off: number, seq: number): boolean {
    const type = b[off]!;
    const len = (b[off + 3]! << 8) | b[off + 4]!;
    if (b[off + 1] !== 3 || type < 20 || type > 24 || len > MAX_RECORD_LENGTH_ANY) {
      this.kill(dir, `not a TLS record stream at seq ${seq} (bytes ${hex(b.subarray(off, off + 5))})`);
      return false;
    }
    return true;
  }

  /** The connection ended (FIN/RST): give back record buffers not holding a partial record. */
  release(): void {
    for (const d of [this.dirs.c2s, this.dirs.s2c]) if (d.fill === 0) d.buf = EMPTY;
  }

  /** Stop walking `dir` (the replay cannot keep its bytes); `why` goes to onProblem. */
  abandon(dir: Dir, why: string): void {
    if (!this.isDead(dir)) this.kill(dir, why);
  }

  /**
   * Open the application records of `dir` only: the other direction's records are framed and counted but
   * not decrypted and not reported (the replay's RX records are the device's and the stack's to decrypt
   * and authenticate; opening them here too was a second AEAD pass over every received byte).
   */
  openOnly(dir: Dir): void {
    this.opened.c2s = dir === 'c2s';
    this.opened.s2c = dir === 's2c';
  }

  /** Records complete up to this seq in `dir` (a segment ending at or before it can be released). */
  completeUpTo(dir: Dir): number {
    return this.dirs[dir].seq;
  }

  isDead(dir: Dir): boolean {
    return this.dirs[dir].phase === 'dead';
  }

  private kill(dir: Dir | null, why: string): void {
    if (dir) this.dirs[dir].phase = 'dead';
    else this.dirs.c2s.phase = this.dirs.s2c.phase = 'dead';
    this.ev.onProblem(dir, why);
  }

  private onRecord(dir: Dir, seq: number, rec: Uint8Array): void {
    const d = this.dirs[dir];
    const type = rec[0]!;
    switch (d.phase) {
      case 'plain':
        if (type === CONTENT_HANDSHAKE) {
          this.handshakeBytes(dir, rec.subarray(TLS_HEADER_SIZE));
        } else if (type === CONTENT_CHANGE_CIPHER_SPEC) {
          // TLS 1.2: what follows is encrypted. TLS 1.3: a middlebox-compatibility record, nothing changes.
          if (this.version === TLS_1_2_VERSION) d.phase = 'encrypted-handshake';
        } else if (type === CONTENT_APPLICATION_DATA && this.version === TLS_1_3_VERSION) {
          d.phase = 'encrypted-handshake';
          this.encryptedHandshake(dir, seq, rec);
        } else if (type === CONTENT_APPLICATION_DATA) {
          this.kill(dir, `application data at seq ${seq} before any handshake: the capture does not hold the handshake`);
        }
        return;
      case 'encrypted-handshake':
        if (type === CONTENT_CHANGE_CIPHER_SPEC) return;
        this.encryptedHandshake(dir, seq, rec);
        return;
      case 'app':
        this.appRecord(dir, seq, rec);
        return;
      case 'dead':
        return;
    }
  }

  private handshakeBytes(dir: Dir, body: Uint8Array): void {
    const d = this.dirs[dir];
    d.handshake.push(Uint8Array.from(body));
    const joined = concatBytes(d.handshake);
    let msgs;
    try {
      msgs = parseHandshakeMessages(joined);
    } catch (e) {
      if (e instanceof TlsError) return this.kill(dir, `handshake: ${e.message}`);
      throw e;
    }
    for (const m of msgs.messages) {
      if (m.clientHello && !this.clientHello) this.clientHello = m.clientHello;
      if (m.serverHello && !this.serverHello) {
        this.serverHello = m.serverHello;
        this.version = m.serverHello.selectedVersion;
        this.cipherSuite = m.serverHello.cipherSuite;
      }
    }
    d.handshake = msgs.rest.length ? [Uint8Array.from(msgs.rest)] : [];
    this.deriveKeys();
  }

  private deriveKeys(): void {
    if (this.keysReady || !this.clientHello || !this.serverHello || this.version === null || this.cipherSuite === null) return;
    const suite = cipherSuiteInfo(this.cipherSuite);
    if (!suite) return this.kill(null, `cipher suite 0x${this.cipherSuite.toString(16).padStart(4, '0')} is not one tlsnic knows`);
    this.cipherName = suite.aead;
    if (!this.keylog) return this.kill(null, 'no key log given');
    const secrets = this.keylog.lookup(this.clientHello.random);
    if (!secrets) return this.kill(null, `no key for client random ${hex(this.clientHello.random).slice(0, 16)}… in the key log`);
    if (this.version === TLS_1_2_VERSION) {
      if (!secrets.masterSecret) return this.kill(null, 'key log has no CLIENT_RANDOM master secret for this connection');
      const kb = tls12KeyBlock(secrets.masterSecret, this.clientHello.random, this.serverHello.random, this.cipherSuite);
      this.dirs.c2s.appInfo = kb.client;
      this.dirs.s2c.appInfo = kb.server;
    } else if (this.version === TLS_1_3_VERSION) {
      if (!secrets.clientTrafficSecret0 || !secrets.serverTrafficSecret0) {
        return this.kill(null, 'key log lacks CLIENT_TRAFFIC_SECRET_0 / SERVER_TRAFFIC_SECRET_0 for this connection');
      }
      this.dirs.c2s.appInfo = tls13TrafficKeys(secrets.clientTrafficSecret0, this.cipherSuite);
      this.dirs.s2c.appInfo = tls13TrafficKeys(secrets.serverTrafficSecret0, this.cipherSuite);
      if (secrets.clientHandshakeTrafficSecret) this.dirs.c2s.hsInfo = tls13TrafficKeys(secrets.clientHandshakeTrafficSecret, this.cipherSuite);
      if (secrets.serverHandshakeTrafficSecret) this.dirs.s2c.hsInfo = tls13TrafficKeys(secrets.serverHandshakeTrafficSecret, this.cipherSuite);
    } else {
      return this.kill(null, `TLS version 0x${this.version.toString(16)} is not replayable`);
    }
    this.keysReady = true;
  }

  private encryptedHandshake(dir: Dir, seq: number, rec: Uint8Array): void {
    const d = this.dirs[dir];
    if (!this.keysReady) return this.kill(dir, `encrypted records at seq ${seq} but no keys (handshake not in the capture or no key log entry)`);
    const app = d.appInfo!;
    if (this.version === TLS_1_2_VERSION) {
      // The first encrypted record is Finished, record number 0; application data follows from number 1.
      if (!openRecord(this.backend, app, 0n, rec)) return this.kill(dir, `Finished at seq ${seq} does not decrypt with the key log's keys`);
      this.start(dir, seqAdd(seq, rec.length), 1n);
      return;
    }
    // TLS 1.3: with handshake secrets, find the record holding Finished; without, the first record that
    // opens under the application keys at number 0 starts the application phase.
    if (d.hsInfo) {
      const opened = openRecord(this.backend, d.hsInfo, d.hsRecSeq, rec);
      if (opened) {
        d.hsRecSeq++;
        if (opened.type === CONTENT_HANDSHAKE && containsFinished(opened.plaintext)) this.start(dir, seqAdd(seq, rec.length), 0n);
        return;
      }
    }
    if (openRecord(this.backend, app, 0n, rec)) {
      this.start(dir, seq, 0n);
      this.appRecord(dir, seq, rec);
    }
  }

  private start(dir: Dir, seq: number, recSeq: bigint): void {
    const d = this.dirs[dir];
    d.phase = 'app';
    d.recSeq = recSeq;
    d.startRecSeq = recSeq;
    // crypto_info as user space would pass it; for TLS 1.2 GCM TX the replay takes iv from the first
    // application record's explicit nonce (WalkRecord.wire), since that is what the sender used.
    this.ev.onStart({ dir, seq, info: { ...d.appInfo!, recSeq: bigIntToRecSeq(recSeq) } });
  }

  private appRecord(dir: Dir, seq: number, rec: Uint8Array): void {
    const d = this.dirs[dir];
    if (!this.opened[dir]) {
      d.recSeq++;
      return;
    }
    const info = d.appInfo!;
    const opened = openRecord(this.backend, info, d.recSeq, rec);
    if (!opened) return this.kill(dir, `record ${d.recSeq} at seq ${seq} does not authenticate`);
    this.ev.onRecord({ dir, seq, type: opened.type, plaintext: opened.plaintext, recSeq: d.recSeq, wire: rec });
    d.recSeq++;
    if (this.version !== null && isKeyUpdate(this.version, opened.type, opened.plaintext)) {
      // The sender's next records are under keys derived from the next traffic secret: the kernel's rekey
      // (setsockopt TLS_TX/TLS_RX again) is not modelled, so the replay of this direction ends here.
      this.kill(dir, `record ${d.recSeq - 1n} at seq ${seq} is a TLS 1.3 KeyUpdate: the keys change after it and rekeying is not modelled; the rest of this direction is not replayed`);
    }
  }
}

/** Whether a TLS 1.3 handshake plaintext holds a Finished message (type 20) at a message boundary. */
function containsFinished(p: Uint8Array): boolean {
  let off = 0;
  while (off + 4 <= p.length) {
    if (p[off] === 20) return true;
    off += 4 + ((p[off + 1]! << 16) | (p[off + 2]! << 8) | p[off + 3]!);
  }
  return false;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}
