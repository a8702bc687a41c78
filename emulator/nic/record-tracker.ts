// Per-flow TLS record tracking across TCP segments, as inline-crypto silicon keeps it: where the next
// record header is, the partial header / explicit nonce / tag, the record number, and the AEAD state of the
// record in flight. Segments may start anywhere in a record and hold any number of records.
// One tracker serves TX (encrypt in place, write the tag over the placeholder) and RX (decrypt into a
// pending copy, check the tag), so the framing rules exist once.
import type { AeadBackend, AeadDecryptStream, AeadEncryptStream } from '../crypto/aead.ts';
import { CIPHER_DESC, TLS_1_3_VERSION, type CipherDesc, type CryptoInfo } from '../tls/crypto-info.ts';
import { recordNonce, tls12Aad, tls13Aad } from '../tls/record-crypto.ts';
import { TLS_HEADER_SIZE, TLS_TAG_SIZE, maxRecordLength } from '../tls/record.ts';
import { seqAdd } from '../wire/seq.ts';

export type RecordPhase = 'header' | 'nonce' | 'body' | 'tag';

/** Whether the record in flight is processed with crypto ('crypto') or only framed ('blind'). */
export type RecordMode = 'crypto' | 'blind';

/**
 * What the RX side learned from one packet's bytes. Reused across packets: reset() before each. Lists are
 * arrays with a count rather than emptied arrays: this runs once per packet.
 */
export class RxPacketResult {
  /** Plaintext to write over the packet once every record in it authenticated (apply()). */
  nWrites = 0;
  private readonly writeOff: number[] = [];
  private readonly writePlain: Array<Uint8Array | null> = [];
  /** Some byte belongs to a record the device cannot decrypt/authenticate (blind or partially seen). */
  unknown = false;
  /** Records whose tag failed in this packet. */
  authFailures = 0;
  /** Records whose tag verified in this packet. */
  authOk = 0;
  /** Record headers completed in this packet: start seqs and record numbers, in stream order. */
  nHeaders = 0;
  readonly headers: number[] = [];
  readonly headerRecs: bigint[] = [];

  write(off: number, plain: Uint8Array): void {
    this.writeOff[this.nWrites] = off;
    this.writePlain[this.nWrites++] = plain;
  }

  header(seq: number, recSeq: bigint): void {
    this.headers[this.nHeaders] = seq;
    this.headerRecs[this.nHeaders++] = recSeq;
  }

  /** Write the decrypted pieces over `buf`, the packet the offsets refer to. */
  apply(buf: Uint8Array): void {
    for (let k = 0; k < this.nWrites; k++) buf.set(this.writePlain[k]!, this.writeOff[k]);
  }

  reset(): void {
    for (let k = 0; k < this.nWrites; k++) this.writePlain[k] = null; // let the plaintext copies go
    this.nWrites = 0;
    this.unknown = false;
    this.authFailures = 0;
    this.authOk = 0;
    this.nHeaders = 0;
  }
}

export type FeedStatus = { ok: true } | { ok: false; badHeaderAt: number; reason: string };

const FEED_OK: FeedStatus = { ok: true };

export class RecordTracker {
  readonly desc: CipherDesc;
  readonly maxLength: number;
  readonly minLength: number;
  /** TCP seq of the next byte the tracker expects. */
  seq: number;
  phase: RecordPhase = 'header';
  /** Bytes gathered in the header / nonce / tag phase. */
  private fill = 0;
  /** Body bytes left in the body phase. */
  private left = 0;
  private readonly hdr = new Uint8Array(TLS_HEADER_SIZE);
  private readonly explicitNonce = new Uint8Array(8);
  private readonly tagBuf = new Uint8Array(TLS_TAG_SIZE);
  /** The record's nonce and AAD, made again for each record (the backend reads them during the call). */
  private readonly nonceBuf = new Uint8Array(12);
  private readonly aad12 = new Uint8Array(13);
  private readonly aad13 = new Uint8Array(5);
  private type = 0;
  private length = 0;
  /** TCP seq of the current record's header. */
  recordStart: number;
  /** Number of the current record (the one being parsed, or the next one when at a header boundary). */
  recSeq: bigint;
  /** New records get crypto state (true) or are only framed (false: chaining after a scan). */
  cryptoOn: boolean;
  mode: RecordMode;
  private enc: AeadEncryptStream | null = null;
  private dec: AeadDecryptStream | null = null;
  private tagOut: Uint8Array | null = null;

  constructor(
    readonly dir: 'tx' | 'rx',
    readonly info: CryptoInfo,
    private readonly backend: AeadBackend,
    seq: number,
    recSeq: bigint,
    cryptoOn = true,
  ) {
    this.desc = CIPHER_DESC[info.cipherType];
    this.maxLength = maxRecordLength(info.version, info.cipherType);
    this.minLength = this.nonceSize() + TLS_TAG_SIZE + (info.version === TLS_1_3_VERSION ? 1 : 0);
    this.seq = seq;
    this.recordStart = seq;
    this.recSeq = recSeq;
    this.cryptoOn = cryptoOn;
    this.mode = cryptoOn ? 'crypto' : 'blind';
  }

  private nonceSize(): number {
    return this.info.version === TLS_1_3_VERSION ? 0 : this.desc.explicitNonceSize;
  }

  /** Start framing at a record boundary: the record at `seq` has number `recSeq`. */
  resetAt(seq: number, recSeq: bigint, cryptoOn: boolean): void {
    this.seq = seq;
    this.recordStart = seq;
    this.recSeq = recSeq;
    this.phase = 'header';
    this.fill = 0;
    this.left = 0;
    this.cryptoOn = cryptoOn;
    this.mode = cryptoOn ? 'crypto' : 'blind';
    this.enc = null;
    this.dec = null;
    this.tagOut = null;
  }

  /** At a record boundary with nothing of the next header seen yet. */
  atBoundary(): boolean {
    return this.phase === 'header' && this.fill === 0;
  }

  /** TCP seq where the next record header starts, or -1 while a header is partly read. */
  nextHeaderSeq(): number {
    switch (this.phase) {
      case 'header':
        return this.fill === 0 ? this.seq : -1;
      case 'nonce':
        return seqAdd(this.seq, this.nonceSize() - this.fill + this.bodyLength() + TLS_TAG_SIZE);
      case 'body':
        return seqAdd(this.seq, this.left + TLS_TAG_SIZE);
      case 'tag':
        return seqAdd(this.seq, TLS_TAG_SIZE - this.fill);
    }
  }

  private bodyLength(): number {
    return this.length - this.nonceSize() - TLS_TAG_SIZE;
  }

  /**
   * Skip `n` bytes the device never saw (a lost or reordered segment). The framing survives when no header
   * byte is among them; the record in flight can no longer be authenticated, so it turns blind.
   * Returns false when a header byte was skipped: sync is lost.
   */
  skip(n: number): boolean {
    if (n <= 0) return true;
    const next = this.nextHeaderSeq();
    if (next < 0) return false;
    const toHeader = (next - this.seq) >>> 0;
    if (n > toHeader) return false;
    // Walk the phases without data. Everything up to the next header belongs to the current record.
    this.mode = 'blind';
    this.enc = null;
    this.dec = null;
    this.tagOut = null;
    let rest = n;
    while (rest > 0) {
      switch (this.phase) {
        case 'header':
          return false; // unreachable: n <= toHeader
        case 'nonce': {
          const k = Math.min(rest, this.nonceSize() - this.fill);
          this.fill += k;
          rest -= k;
          if (this.fill === this.nonceSize()) this.enterBody();
          break;
        }
        case 'body': {
          const k = Math.min(rest, this.left);
          this.left -= k;
          rest -= k;
          if (this.left === 0) this.enterTag();
          break;
        }
        case 'tag': {
          const k = Math.min(rest, TLS_TAG_SIZE - this.fill);
          this.fill += k;
          rest -= k;
          if (this.fill === TLS_TAG_SIZE) this.endRecord(null);
          break;
        }
      }
    }
    this.seq = seqAdd(this.seq, n);
    return true;
  }

  /**
   * Process stream bytes buf[off, end), which start at this.seq. TX: encrypts bodies and writes tags over
   * the placeholder, into `out` at the same offsets (header, nonce and anything not encrypted copied as is)
   * or in place when `out` is `buf`. RX: decrypts bodies into `rx` write copies and checks tags.
   */
  feed(buf: Uint8Array, off: number, end: number, rx: RxPacketResult | null, out: Uint8Array = buf): FeedStatus {
    const start = off;
    const copy = out !== buf && this.dir === 'tx';
    while (off < end) {
      switch (this.phase) {
        case 'header': {
          const k = Math.min(TLS_HEADER_SIZE - this.fill, end - off);
          if (this.fill === 0) this.recordStart = seqAdd(this.seq, off - start);
          // A few bytes: copied by hand (a view per copy cost more than the copy, once a record).
          for (let i = 0; i < k; i++) this.hdr[this.fill + i] = buf[off + i]!;
          if (copy) for (let i = 0; i < k; i++) out[off + i] = buf[off + i]!;
          this.fill += k;
          off += k;
          if (rx && !this.cryptoOn) rx.unknown = true;
          if (this.fill === TLS_HEADER_SIZE) {
            const bad = this.checkHeader();
            if (bad) {
              this.seq = seqAdd(this.seq, off - start);
              return { ok: false, badHeaderAt: this.recordStart, reason: bad };
            }
            rx?.header(this.recordStart, this.recSeq);
            this.mode = this.cryptoOn ? 'crypto' : 'blind';
            this.fill = 0;
            if (this.nonceSize() > 0) this.phase = 'nonce';
            else this.enterBody();
          }
          break;
        }
        case 'nonce': {
          const k = Math.min(this.nonceSize() - this.fill, end - off);
          for (let i = 0; i < k; i++) this.explicitNonce[this.fill + i] = buf[off + i]!;
          if (copy) for (let i = 0; i < k; i++) out[off + i] = buf[off + i]!;
          this.fill += k;
          off += k;
          if (rx && this.mode === 'blind') rx.unknown = true;
          if (this.fill === this.nonceSize()) this.enterBody();
          break;
        }
        case 'body': {
          const k = Math.min(this.left, end - off);
          if (k > 0) {
            if (this.mode === 'blind') {
              if (rx) rx.unknown = true;
              if (copy) out.set(buf.subarray(off, off + k), off);
            } else if (this.dir === 'tx') {
              if (copy) this.enc!.updateTo(buf.subarray(off, off + k), out, off);
              else this.enc!.update(buf.subarray(off, off + k));
            } else {
              // The packet stays untouched until all its records authenticate (all-or-nothing).
              rx!.write(off, this.dec!.updateCopy(buf.subarray(off, off + k)));
            }
            this.left -= k;
            off += k;
          }
          if (this.left === 0) this.enterTag();
          break;
        }
        case 'tag': {
          const k = Math.min(TLS_TAG_SIZE - this.fill, end - off);
          if (this.mode === 'blind') {
            if (rx) rx.unknown = true;
            if (copy) for (let i = 0; i < k; i++) out[off + i] = buf[off + i]!;
          } else if (this.dir === 'tx') {
            const tag = this.tagOut!;
            for (let i = 0; i < k; i++) out[off + i] = tag[this.fill + i]!;
          } else {
            for (let i = 0; i < k; i++) this.tagBuf[this.fill + i] = buf[off + i]!;
          }
          this.fill += k;
          off += k;
          if (this.fill === TLS_TAG_SIZE) this.endRecord(rx);
          break;
        }
      }
    }
    this.seq = seqAdd(this.seq, end - start);
    return FEED_OK;
  }

  /** Why the just-completed header cannot start a record here, or null when it can. */
  private checkHeader(): string | null {
    this.type = this.hdr[0]!;
    this.length = (this.hdr[3]! << 8) | this.hdr[4]!;
    return headerProblem(this.hdr, 0, this.info.version === TLS_1_3_VERSION, this.minLength, this.maxLength);
  }

  private enterBody(): void {
    this.phase = 'body';
    this.fill = 0;
    this.left = this.bodyLength();
    if (this.mode === 'crypto') this.startCrypto();
  }

  private startCrypto(): void {
    const info = this.info;
    const is13 = info.version === TLS_1_3_VERSION;
    const nonce = recordNonce(info, this.recSeq, is13 ? undefined : this.explicitNonce, this.nonceBuf);
    const aad = is13 ? tls13Aad(this.length, this.aad13) : tls12Aad(this.recSeq, this.type, this.bodyLength(), this.aad12);
    if (this.dir === 'tx') this.enc = this.backend.encrypt(this.desc.aead, info.key, nonce, aad);
    else this.dec = this.backend.decrypt(this.desc.aead, info.key, nonce, aad);
  }

  private enterTag(): void {
    this.phase = 'tag';
    this.fill = 0;
    if (this.mode === 'crypto' && this.dir === 'tx') {
      this.tagOut = this.enc!.final();
      this.enc = null;
    }
  }

  private endRecord(rx: RxPacketResult | null): void {
    if (this.mode === 'crypto' && this.dir === 'rx' && rx) {
      if (this.dec!.final(this.tagBuf)) rx.authOk++;
      else rx.authFailures++;
    }
    this.dec = null;
    this.tagOut = null;
    this.phase = 'header';
    this.fill = 0;
    this.recSeq++;
    this.mode = this.cryptoOn ? 'crypto' : 'blind';
  }
}

/**
 * Why the 5 bytes at buf[off] cannot be a record header of this flow, or null when they can. The same rule
 * checks headers at expected places and candidates a stream scan finds (pattern `type 03 03 len`).
 */
export function headerProblem(buf: Uint8Array, off: number, tls13: boolean, minLength: number, maxLength: number): string | null {
  const type = buf[off]!;
  const length = (buf[off + 3]! << 8) | buf[off + 4]!;
  if (buf[off + 1] !== 3 || buf[off + 2] !== 3) return `version bytes ${hex2(buf[off + 1]!)}${hex2(buf[off + 2]!)} are not 0303`;
  if (tls13 ? type !== 23 : type < 20 || type > 24) return `content type ${type} not expected`;
  if (length > maxLength) return `length ${length} over the limit ${maxLength}`;
  if (length < minLength) return `length ${length} under the minimum ${minLength}`;
  return null;
}

function hex2(b: number): string {
  return b.toString(16).padStart(2, '0');
}
