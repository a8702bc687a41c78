// node:crypto backend: the hot path. GCM and ChaCha20-Poly1305 stream through createCipheriv /
// createDecipheriv (setAAD first, update in pieces, final + tag). The keystream at an offset uses the
// raw stream cipher under the AEAD (AES-CTR from counter block 2 for GCM, ChaCha20 from block 1).
import { createCipheriv, createDecipheriv, type CipherGCM, type DecipherGCM } from 'node:crypto';
import { CryptoError } from '../errors.ts';
import { AEAD_TAG_SIZE, openByStream, sealByStream, type AeadAlgorithm, type AeadBackend, type AeadDecryptStream, type AeadEncryptStream, type AeadKeystream } from './aead.ts';

const NODE_NAME: Record<AeadAlgorithm, 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305'> = {
  'aes-gcm-128': 'aes-128-gcm',
  'aes-gcm-256': 'aes-256-gcm',
  'chacha20-poly1305': 'chacha20-poly1305',
};

const KEY_SIZE: Record<AeadAlgorithm, number> = { 'aes-gcm-128': 16, 'aes-gcm-256': 32, 'chacha20-poly1305': 32 };

function check(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array): void {
  if (!(alg in NODE_NAME)) throw new CryptoError(`unknown AEAD '${alg}'`, { field: 'alg' });
  if (key.length !== KEY_SIZE[alg]) throw new CryptoError(`${alg} key must be ${KEY_SIZE[alg]} bytes, got ${key.length}`, { field: 'key' });
  if (nonce.length !== 12) throw new CryptoError(`${alg} nonce must be 12 bytes, got ${nonce.length}`, { field: 'nonce' });
}

/** Copy the cipher's output over `data` (node:crypto cannot write into a caller's buffer). */
function into(data: Uint8Array, out: Buffer): void {
  if (out.length === data.length) data.set(out);
  else throw new CryptoError(`stream cipher returned ${out.length} bytes for ${data.length}`);
}

class NodeEncrypt implements AeadEncryptStream {
  constructor(private readonly c: CipherGCM) {}
  update(data: Uint8Array): void {
    if (data.length) into(data, this.c.update(data));
  }
  updateTo(src: Uint8Array, dst: Uint8Array, dstOff: number): void {
    if (!src.length) return;
    const out = this.c.update(src);
    if (out.length !== src.length) throw new CryptoError(`stream cipher returned ${out.length} bytes for ${src.length}`);
    dst.set(out, dstOff);
  }
  final(): Uint8Array {
    this.c.final();
    return this.c.getAuthTag(); // a Buffer of its own: no copy
  }
}

class NodeDecrypt implements AeadDecryptStream {
  constructor(private readonly d: DecipherGCM) {}
  update(data: Uint8Array): void {
    if (data.length) into(data, this.d.update(data));
  }
  updateCopy(data: Uint8Array): Uint8Array {
    // node:crypto returns a fresh buffer anyway: hand it over instead of copying twice.
    const out = this.d.update(data);
    if (out.length !== data.length) throw new CryptoError(`stream cipher returned ${out.length} bytes for ${data.length}`);
    return out;
  }
  final(tag: Uint8Array): boolean {
    // setAuthTag throws on a tag of the wrong length; a short tag simply does not authenticate.
    if (tag.length !== AEAD_TAG_SIZE) return false;
    this.d.setAuthTag(tag);
    try {
      this.d.final();
      return true;
    } catch {
      return false;
    }
  }
}

class NodeKeystream implements AeadKeystream {
  private skip: number;
  private readonly c: ReturnType<typeof createCipheriv>;
  constructor(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array, offset: number) {
    const iv = new Uint8Array(16);
    if (alg === 'chacha20-poly1305') {
      // RFC 8439: block 0 keys Poly1305, the payload starts at block 1. node's chacha20 IV = counter(LE) || nonce.
      const block = 1 + Math.floor(offset / 64);
      new DataView(iv.buffer).setUint32(0, block, true);
      iv.set(nonce, 4);
      this.c = createCipheriv('chacha20', key, iv);
      this.skip = offset % 64;
    } else {
      // GCM: counter block 1 encrypts the tag, the payload starts at block 2 (big-endian 32-bit counter).
      iv.set(nonce, 0);
      new DataView(iv.buffer).setUint32(12, (2 + Math.floor(offset / 16)) >>> 0, false);
      this.c = createCipheriv(alg === 'aes-gcm-128' ? 'aes-128-ctr' : 'aes-256-ctr', key, iv);
      this.skip = offset % 16;
    }
    if (this.skip) this.c.update(new Uint8Array(this.skip));
  }
  xor(data: Uint8Array): void {
    if (data.length) into(data, this.c.update(data));
  }
}

export const nodeBackend: AeadBackend = {
  name: 'node',
  encrypt(alg, key, nonce, aad) {
    check(alg, key, nonce);
    const c = createCipheriv(NODE_NAME[alg] as 'aes-128-gcm', key, nonce, { authTagLength: AEAD_TAG_SIZE });
    c.setAAD(aad);
    return new NodeEncrypt(c);
  },
  decrypt(alg, key, nonce, aad) {
    check(alg, key, nonce);
    const d = createDecipheriv(NODE_NAME[alg] as 'aes-128-gcm', key, nonce, { authTagLength: AEAD_TAG_SIZE });
    d.setAAD(aad);
    return new NodeDecrypt(d);
  },
  keystream(alg, key, nonce, offset) {
    check(alg, key, nonce);
    if (!Number.isInteger(offset) || offset < 0) throw new CryptoError(`keystream offset ${offset} must be a non-negative integer`, { field: 'offset' });
    return new NodeKeystream(alg, key, nonce, offset);
  },
  seal(alg, key, nonce, aad, plaintext) {
    return sealByStream(this, alg, key, nonce, aad, plaintext);
  },
  open(alg, key, nonce, aad, sealed) {
    return openByStream(this, alg, key, nonce, aad, sealed);
  },
};
