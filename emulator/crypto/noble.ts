// @noble/ciphers backend: pure JS, the independent check on the node:crypto hot path. noble's gcm() and
// chacha20poly1305() are one-shot, so the streaming state is built here from their primitives:
//   AES-GCM (NIST SP 800-38D 7.1): GCTR = AES-CTR from J0+1 (J0 = nonce || 0^31 || 1), GHASH over
//     AAD (zero-padded) || C (zero-padded) || len64(A) || len64(C) in bits, tag = GHASH XOR E(K, J0).
//   ChaCha20-Poly1305 (RFC 8439 2.8): Poly1305 key = first 32 bytes of ChaCha20 block 0, payload from
//     block 1, MAC over AAD || pad16 || C || pad16 || le64(|A|) || le64(|C|).
// noble's GHASH pads every update() to 16 bytes, so partial ciphertext blocks are buffered here until whole.
import { unsafe as aesUnsafe } from '@noble/ciphers/aes.js';
import { GHASH } from '@noble/ciphers/_polyval.js';
import { chacha20 } from '@noble/ciphers/chacha.js';
import { Poly1305 } from '@noble/ciphers/_poly1305.js';
import { CryptoError } from '../errors.ts';
import { AEAD_TAG_SIZE, openByStream, sealByStream, type AeadAlgorithm, type AeadBackend, type AeadDecryptStream, type AeadEncryptStream, type AeadKeystream } from './aead.ts';

const KEY_SIZE: Record<AeadAlgorithm, number> = { 'aes-gcm-128': 16, 'aes-gcm-256': 32, 'chacha20-poly1305': 32 };

function check(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array): void {
  if (!Object.hasOwn(KEY_SIZE, alg)) throw new CryptoError(`unknown AEAD '${alg}'`, { field: 'alg' });
  if (key.length !== KEY_SIZE[alg]) throw new CryptoError(`${alg} key must be ${KEY_SIZE[alg]} bytes, got ${key.length}`, { field: 'key' });
  if (nonce.length !== 12) throw new CryptoError(`${alg} nonce must be 12 bytes, got ${nonce.length}`, { field: 'nonce' });
}

/** Keystream is generated this many bytes at a time into an aligned scratch (a multiple of 16 and 64). */
const CHUNK = 1024;
const ZERO_CHUNK = new Uint8Array(CHUNK);

/**
 * A stream cipher's keystream, generated CHUNK bytes at a time and XORed onto caller bytes at any alignment
 * (noble's raw primitives want 4-byte-aligned buffers; the caller's record body views are not).
 */
abstract class ChunkedKeystream implements AeadKeystream {
  protected readonly buf = new Uint8Array(CHUNK);
  private pos = CHUNK;
  /** Fill `buf` with the next CHUNK keystream bytes. */
  protected abstract refill(): void;
  /** Start `skip` bytes into the first chunk (skip < CHUNK). */
  protected startAt(skip: number): void {
    this.refill();
    this.pos = skip;
  }
  xor(data: Uint8Array): void {
    const n = data.length;
    let i = 0;
    while (i < n) {
      if (this.pos === CHUNK) {
        this.refill();
        this.pos = 0;
      }
      const take = Math.min(n - i, CHUNK - this.pos);
      const buf = this.buf;
      const p = this.pos;
      for (let j = 0; j < take; j++) data[i + j] = data[i + j]! ^ buf[p + j]!;
      i += take;
      this.pos += take;
    }
  }
}

/** AES-CTR with GCM's 32-bit big-endian counter in the last word (GCTR, SP 800-38D 6.5). */
class GcmCtr extends ChunkedKeystream {
  private readonly ctr = new Uint8Array(16);
  constructor(private readonly xk: Uint32Array, nonce: Uint8Array, firstBlock: number, skip: number) {
    super();
    this.ctr.set(nonce, 0);
    new DataView(this.ctr.buffer).setUint32(12, firstBlock >>> 0, false);
    this.startAt(skip);
  }
  protected refill(): void {
    // ctr32 advances `ctr` by CHUNK/16 blocks in place (mod 2^32, as GCTR's inc32).
    aesUnsafe.ctr32(this.xk, false, this.ctr, ZERO_CHUNK, this.buf);
  }
}

/** ChaCha20 (RFC 8439 2.4) from a 32-bit block counter. */
class ChaChaCtr extends ChunkedKeystream {
  private counter: number;
  private readonly nonce: Uint8Array;
  constructor(private readonly key: Uint8Array, nonce: Uint8Array, firstBlock: number, skip: number) {
    super();
    this.nonce = nonce.slice(); // the caller may reuse its nonce buffer (AeadBackend)
    this.counter = firstBlock;
    this.startAt(skip);
  }
  protected refill(): void {
    if (this.counter + CHUNK / 64 > 0x1_0000_0000) throw new CryptoError('ChaCha20 block counter would wrap', { field: 'offset' });
    chacha20(this.key, this.nonce, ZERO_CHUNK, this.buf, this.counter);
    this.counter += CHUNK / 64;
  }
}

function lengthsBE(aadLen: number, ctLen: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(aadLen) * 8n, false);
  v.setBigUint64(8, BigInt(ctLen) * 8n, false);
  return b;
}

function lengthsLE(aadLen: number, ctLen: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(aadLen), true);
  v.setBigUint64(8, BigInt(ctLen), true);
  return b;
}

const PAD16 = new Uint8Array(16);

/** The MAC half of an AEAD: absorbs ciphertext in arbitrary pieces, then yields the tag. */
interface Mac {
  absorb(ct: Uint8Array): void;
  tag(): Uint8Array;
}

class GcmMac implements Mac {
  private readonly gh: GHASH;
  private readonly pend = new Uint8Array(16);
  private npend = 0;
  private ctLen = 0;
  constructor(h: Uint8Array, private readonly aadLen: number, aad: Uint8Array, private readonly tagMask: Uint8Array) {
    this.gh = new GHASH(h);
    if (aad.length) this.gh.update(aad); // GHASH.update zero-pads AAD to a block, as GCM wants
  }
  absorb(ct: Uint8Array): void {
    this.ctLen += ct.length;
    let i = 0;
    if (this.npend) {
      const take = Math.min(16 - this.npend, ct.length);
      this.pend.set(ct.subarray(0, take), this.npend);
      this.npend += take;
      i = take;
      if (this.npend < 16) return;
      this.gh.update(this.pend);
      this.npend = 0;
    }
    const whole = i + ((ct.length - i) & ~15);
    if (whole > i) this.gh.update(ct.subarray(i, whole));
    if (whole < ct.length) {
      this.pend.set(ct.subarray(whole), 0);
      this.npend = ct.length - whole;
    }
  }
  tag(): Uint8Array {
    if (this.npend) this.gh.update(this.pend.subarray(0, this.npend));
    this.gh.update(lengthsBE(this.aadLen, this.ctLen));
    const t = this.gh.digest();
    for (let i = 0; i < 16; i++) t[i] = t[i]! ^ this.tagMask[i]!;
    return t;
  }
}

class PolyMac implements Mac {
  private readonly p: Poly1305;
  private ctLen = 0;
  constructor(polyKey: Uint8Array, private readonly aadLen: number, aad: Uint8Array) {
    this.p = new Poly1305(polyKey);
    this.p.update(aad);
    if (aad.length % 16) this.p.update(PAD16.subarray(aad.length % 16));
  }
  absorb(ct: Uint8Array): void {
    this.ctLen += ct.length;
    if (ct.length) this.p.update(ct); // Poly1305 buffers partial blocks itself
  }
  tag(): Uint8Array {
    if (this.ctLen % 16) this.p.update(PAD16.subarray(this.ctLen % 16));
    this.p.update(lengthsLE(this.aadLen, this.ctLen));
    return this.p.digest();
  }
}

function expandAesKey(key: Uint8Array): Uint32Array {
  return aesUnsafe.expandKeyLE(key) as Uint32Array;
}

/** Set up keystream (from the first payload block) and MAC for one record. */
function setup(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array): { ks: ChunkedKeystream; mac: Mac } {
  check(alg, key, nonce);
  if (alg === 'chacha20-poly1305') {
    const block0 = chacha20(key, nonce, new Uint8Array(64), new Uint8Array(64), 0);
    return { ks: new ChaChaCtr(key, nonce, 1, 0), mac: new PolyMac(block0.subarray(0, 32), aad.length, aad) };
  }
  const xk = expandAesKey(key);
  const h = aesUnsafe.encryptBlock(xk, new Uint8Array(16)); // H = E(K, 0^128)
  const j0 = new Uint8Array(16);
  j0.set(nonce, 0);
  j0[15] = 1;
  const tagMask = aesUnsafe.encryptBlock(xk, j0.slice()); // E(K, J0)
  return { ks: new GcmCtr(xk, nonce, 2, 0), mac: new GcmMac(h, aad.length, aad, tagMask) };
}

class NobleEncrypt implements AeadEncryptStream {
  private done = false;
  constructor(private readonly ks: ChunkedKeystream, private readonly mac: Mac) {}
  update(data: Uint8Array): void {
    if (this.done) throw new CryptoError('AEAD encrypt stream used after final()');
    this.ks.xor(data);
    this.mac.absorb(data);
  }
  updateTo(src: Uint8Array, dst: Uint8Array, dstOff: number): void {
    const out = dst.subarray(dstOff, dstOff + src.length);
    if (out.length !== src.length) throw new CryptoError(`output range of ${out.length} bytes for ${src.length}`);
    out.set(src);
    this.update(out);
  }
  final(): Uint8Array {
    if (this.done) throw new CryptoError('AEAD encrypt stream finalised twice');
    this.done = true;
    return this.mac.tag();
  }
}

class NobleDecrypt implements AeadDecryptStream {
  private done = false;
  constructor(private readonly ks: ChunkedKeystream, private readonly mac: Mac) {}
  update(data: Uint8Array): void {
    if (this.done) throw new CryptoError('AEAD decrypt stream used after final()');
    this.mac.absorb(data);
    this.ks.xor(data);
  }
  updateCopy(data: Uint8Array): Uint8Array {
    const out = data.slice();
    this.update(out);
    return out;
  }
  final(tag: Uint8Array): boolean {
    if (this.done) throw new CryptoError('AEAD decrypt stream finalised twice');
    this.done = true;
    if (tag.length !== AEAD_TAG_SIZE) return false;
    const want = this.mac.tag();
    let diff = 0;
    for (let i = 0; i < AEAD_TAG_SIZE; i++) diff |= want[i]! ^ tag[i]!;
    return diff === 0;
  }
}

export const nobleBackend: AeadBackend = {
  name: 'noble',
  encrypt(alg, key, nonce, aad) {
    const { ks, mac } = setup(alg, key, nonce, aad);
    return new NobleEncrypt(ks, mac);
  },
  decrypt(alg, key, nonce, aad) {
    const { ks, mac } = setup(alg, key, nonce, aad);
    return new NobleDecrypt(ks, mac);
  },
  keystream(alg, key, nonce, offset) {
    check(alg, key, nonce);
    if (!Number.isSafeInteger(offset) || offset < 0) throw new CryptoError(`keystream offset ${offset} must be a non-negative integer`, { field: 'offset' });
    // Start at the chunk holding `offset`; the payload begins at block 1 (ChaCha20) or counter 2 (GCM).
    const chunk = Math.floor(offset / CHUNK);
    const skip = offset % CHUNK;
    if (alg === 'chacha20-poly1305') return new ChaChaCtr(key, nonce, 1 + chunk * (CHUNK / 64), skip);
    return new GcmCtr(expandAesKey(key), nonce, (2 + chunk * (CHUNK / 16)) >>> 0, skip);
  },
  seal(alg, key, nonce, aad, plaintext) {
    return sealByStream(this, alg, key, nonce, aad, plaintext);
  },
  open(alg, key, nonce, aad, sealed) {
    return openByStream(this, alg, key, nonce, aad, sealed);
  },
};
