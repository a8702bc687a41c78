// The AEAD engine on published vectors, then differentially: each streaming backend against one-shot
// node:crypto on random inputs split at random points (STYLE principle 6).
import test from 'ava';
import fc from 'fast-check';
import { createCipheriv } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { backendByName, nobleBackend, nodeBackend, type AeadAlgorithm, type AeadBackend } from '../emulator/crypto/index.ts';
import { ConfigError, CryptoError } from '../emulator/errors.ts';

type Vector = { name: string; key: string; iv: string; aad: string; pt: string; ct: string; tag: string };
const load = (f: string): Vector[] => JSON.parse(readFileSync(new URL(`./vectors/${f}`, import.meta.url), 'utf8')).vectors;
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const GCM = load('aes-gcm.json');
const CHACHA = load('chacha20-poly1305.json');
const BACKENDS: AeadBackend[] = [nodeBackend, nobleBackend];
const ALGS: AeadAlgorithm[] = ['aes-gcm-128', 'aes-gcm-256', 'chacha20-poly1305'];
const keySize = (alg: AeadAlgorithm) => (alg === 'aes-gcm-128' ? 16 : 32);
const gcmAlg = (v: Vector): AeadAlgorithm => (v.key.length === 32 ? 'aes-gcm-128' : 'aes-gcm-256');

/** One-shot node:crypto: the reference every streaming run is compared with. */
function oneShot(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, pt: Uint8Array): { ct: Uint8Array; tag: Uint8Array } {
  const name = alg === 'aes-gcm-128' ? 'aes-128-gcm' : alg === 'aes-gcm-256' ? 'aes-256-gcm' : 'chacha20-poly1305';
  const c = createCipheriv(name as 'aes-128-gcm', key, nonce, { authTagLength: 16 });
  c.setAAD(aad);
  const ct = Buffer.concat([c.update(pt), c.final()]);
  return { ct: new Uint8Array(ct), tag: new Uint8Array(c.getAuthTag()) };
}

/** Feed `buf` to `update` in pieces cut at `cuts` (sorted or not, clamped), as segments would arrive. */
function inPieces(buf: Uint8Array, cuts: number[], update: (piece: Uint8Array) => void): void {
  const points = [...new Set(cuts.map((c) => Math.min(c, buf.length)))].sort((a, b) => a - b);
  let from = 0;
  for (const p of [...points, buf.length]) {
    update(buf.subarray(from, p)); // empty pieces included on purpose
    from = p;
  }
}

test('vector files hold what their tests expect', (t) => {
  t.is(GCM.length, 11);
  t.true(GCM.some((v) => v.aad && gcmAlg(v) === 'aes-gcm-128'));
  t.true(GCM.some((v) => v.aad && gcmAlg(v) === 'aes-gcm-256'));
  t.is(CHACHA.length, 1);
});

for (const b of BACKENDS) {
  test(`${b.name}: NIST GCM vectors, one-shot and streamed byte by byte`, (t) => {
    for (const v of GCM) {
      const alg = gcmAlg(v);
      const sealed = b.seal(alg, hex(v.key), hex(v.iv), hex(v.aad), hex(v.pt));
      t.is(toHex(sealed), v.ct + v.tag, v.name);
      t.is(toHex(b.open(alg, hex(v.key), hex(v.iv), hex(v.aad), sealed)!), v.pt, v.name);
      const buf = hex(v.pt);
      const enc = b.encrypt(alg, hex(v.key), hex(v.iv), hex(v.aad));
      for (let i = 0; i < buf.length; i++) enc.update(buf.subarray(i, i + 1));
      t.is(toHex(buf), v.ct, v.name);
      t.is(toHex(enc.final()), v.tag, v.name);
      const dec = b.decrypt(alg, hex(v.key), hex(v.iv), hex(v.aad));
      for (let i = 0; i < buf.length; i += 7) dec.update(buf.subarray(i, i + 7));
      t.is(toHex(buf), v.pt, v.name);
      t.true(dec.final(hex(v.tag)), v.name);
    }
  });

  test(`${b.name}: RFC 8439 2.8.2 ChaCha20-Poly1305 vector`, (t) => {
    for (const v of CHACHA) {
      const sealed = b.seal('chacha20-poly1305', hex(v.key), hex(v.iv), hex(v.aad), hex(v.pt));
      t.is(toHex(sealed), v.ct + v.tag);
      t.is(toHex(b.open('chacha20-poly1305', hex(v.key), hex(v.iv), hex(v.aad), sealed)!), v.pt);
      const buf = hex(v.ct);
      const dec = b.decrypt('chacha20-poly1305', hex(v.key), hex(v.iv), hex(v.aad));
      inPieces(buf, [1, 17, 63, 64, 65, 100], (p) => dec.update(p));
      t.is(toHex(buf), v.pt);
      t.true(dec.final(hex(v.tag)));
    }
  });

  test(`${b.name}: a flipped bit anywhere in ciphertext, tag or AAD fails authentication`, (t) => {
    const v = GCM[3]!; // test case 4: AAD and a partial last block
    const alg = gcmAlg(v);
    const sealed = hex(v.ct + v.tag);
    for (let i = 0; i < sealed.length; i++) {
      const bad = sealed.slice();
      bad[i]! ^= 0x01 << (i % 8);
      t.is(b.open(alg, hex(v.key), hex(v.iv), hex(v.aad), bad), null, `byte ${i}`);
    }
    const aad = hex(v.aad);
    aad[5]! ^= 0x80;
    t.is(b.open(alg, hex(v.key), hex(v.iv), aad, sealed), null);
    const c = CHACHA[0]!;
    const cs = hex(c.ct + c.tag);
    cs[cs.length - 1]! ^= 1;
    t.is(b.open('chacha20-poly1305', hex(c.key), hex(c.iv), hex(c.aad), cs), null);
    // streaming decrypt with a bad tag says false (and a short tag is never accepted)
    const dec = b.decrypt(alg, hex(v.key), hex(v.iv), hex(v.aad));
    dec.update(hex(v.ct));
    const tag = hex(v.tag);
    tag[0]! ^= 4;
    t.false(dec.final(tag));
    const dec2 = b.decrypt(alg, hex(v.key), hex(v.iv), hex(v.aad));
    dec2.update(hex(v.ct));
    t.false(dec2.final(hex(v.tag).subarray(0, 15)));
    t.is(b.open(alg, hex(v.key), hex(v.iv), hex(v.aad), new Uint8Array(15)), null);
  });

  test(`${b.name}: bad key or nonce sizes are CryptoErrors naming the field`, (t) => {
    const e1 = t.throws(() => b.encrypt('aes-gcm-128', new Uint8Array(32), new Uint8Array(12), new Uint8Array(0)), { instanceOf: CryptoError });
    t.is(e1.where.field, 'key');
    const e2 = t.throws(() => b.decrypt('chacha20-poly1305', new Uint8Array(32), new Uint8Array(8), new Uint8Array(0)), { instanceOf: CryptoError });
    t.is(e2.where.field, 'nonce');
    const e3 = t.throws(() => b.keystream('aes-gcm-256', new Uint8Array(32), new Uint8Array(12), -1), { instanceOf: CryptoError });
    t.is(e3.where.field, 'offset');
    t.throws(() => b.encrypt('aes-cbc' as AeadAlgorithm, new Uint8Array(16), new Uint8Array(12), new Uint8Array(0)), { instanceOf: CryptoError });
  });

  test(`${b.name}: streaming at random split points equals one-shot node:crypto (fast-check, seeded)`, (t) => {
    fc.assert(
      fc.property(
        fc.constantFrom(...ALGS),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ maxLength: 40 }),
        fc.uint8Array({ maxLength: 2500 }),
        fc.array(fc.nat(2500), { maxLength: 12 }),
        (alg, key32, nonce, aad, pt, cuts) => {
          const key = key32.subarray(0, keySize(alg));
          const want = oneShot(alg, key, nonce, aad, pt);
          // Encrypt in place inside a larger buffer at an odd offset: record bodies are unaligned views.
          const frame = new Uint8Array(pt.length + 3);
          frame.set(pt, 3);
          const body = frame.subarray(3);
          const enc = b.encrypt(alg, key, nonce, aad);
          inPieces(body, cuts, (p) => enc.update(p));
          const tag = enc.final();
          if (toHex(body) !== toHex(want.ct) || toHex(tag) !== toHex(want.tag)) return false;
          const dec = b.decrypt(alg, key, nonce, aad);
          inPieces(body, cuts.map((c) => c + 5), (p) => dec.update(p));
          return toHex(body) === toHex(pt) && dec.final(tag);
        },
      ),
      { seed: 0x7157, numRuns: 300 },
    );
    t.pass();
  });

  test(`${b.name}: keystream at a random offset equals ciphertext XOR plaintext there (fast-check, seeded)`, (t) => {
    fc.assert(
      fc.property(
        fc.constantFrom(...ALGS),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.nat(3000),
        fc.nat(2200),
        fc.array(fc.nat(2200), { maxLength: 6 }),
        (alg, key32, nonce, offset, len, cuts) => {
          const key = key32.subarray(0, keySize(alg));
          const pt = new Uint8Array(offset + len).map((_, i) => (i * 31 + 7) & 0xff);
          const { ct } = oneShot(alg, key, nonce, new Uint8Array(0), pt);
          const piece = ct.slice(offset); // decrypting: ciphertext XOR keystream = plaintext
          const ks = b.keystream(alg, key, nonce, offset);
          inPieces(piece, cuts, (p) => ks.xor(p));
          return toHex(piece) === toHex(pt.subarray(offset));
        },
      ),
      { seed: 0x4b53, numRuns: 300 },
    );
    t.pass();
  });
}

test('keystream across block and noble chunk boundaries is the same in both backends', (t) => {
  const key = new Uint8Array(16).fill(9);
  const nonce = new Uint8Array(12).fill(3);
  for (const offset of [0, 15, 16, 1023, 1024, 1025, 16 * 4096 + 5]) {
    const a = new Uint8Array(3000);
    const c = new Uint8Array(3000);
    nodeBackend.keystream('aes-gcm-128', key, nonce, offset).xor(a);
    nobleBackend.keystream('aes-gcm-128', key, nonce, offset).xor(c);
    t.is(toHex(a), toHex(c), `offset ${offset}`);
    const x = new Uint8Array(3000);
    const y = new Uint8Array(3000);
    nodeBackend.keystream('chacha20-poly1305', new Uint8Array(32).fill(1), nonce, offset).xor(x);
    nobleBackend.keystream('chacha20-poly1305', new Uint8Array(32).fill(1), nonce, offset).xor(y);
    t.is(toHex(x), toHex(y), `chacha offset ${offset}`);
  }
});

test('backendByName picks a backend and rejects unknown names with a ConfigError', (t) => {
  t.is(backendByName('node'), nodeBackend);
  t.is(backendByName('noble'), nobleBackend);
  const e = t.throws(() => backendByName('openssl'), { instanceOf: ConfigError });
  t.regex(e.message, /openssl/);
});

test('updateCopy: both backends return the plaintext of each piece and leave the ciphertext untouched', (t) => {
  fc.assert(
    fc.property(fc.constantFrom(...ALGS), fc.uint8Array({ minLength: 0, maxLength: 3000 }), fc.array(fc.nat(3000), { maxLength: 6 }), fc.nat(255), (alg, pt, cuts, seed) => {
      const key = Uint8Array.from({ length: keySize(alg) }, (_, i) => (i * 7 + seed) & 0xff);
      const nonce = Uint8Array.from({ length: 12 }, (_, i) => (i + seed) & 0xff);
      const aad = Uint8Array.of(seed, 1, 2, 3);
      const { ct, tag } = oneShot(alg, key, nonce, aad, pt);
      for (const b of BACKENDS) {
        const input = ct.slice();
        const d = b.decrypt(alg, key, nonce, aad);
        const parts: Uint8Array[] = [];
        inPieces(input, cuts, (piece) => parts.push(d.updateCopy(piece)));
        t.true(d.final(tag), `${b.name}: tag`);
        t.deepEqual(input, ct, `${b.name}: input changed`);
        t.is(Buffer.compare(Buffer.concat(parts), Buffer.from(pt)), 0, `${b.name}: plaintext`);
      }
    }),
    { seed: 4242, numRuns: 200 },
  );
});

test('updateTo: both backends write each piece\'s ciphertext at the given place, leave the source alone and give the one-shot tag', (t) => {
  fc.assert(
    fc.property(fc.constantFrom(...ALGS), fc.uint8Array({ minLength: 0, maxLength: 3000 }), fc.array(fc.nat(3000), { maxLength: 6 }), fc.nat(255), (alg, pt, cuts, seed) => {
      const key = Uint8Array.from({ length: keySize(alg) }, (_, i) => (i * 5 + seed) & 0xff);
      const nonce = Uint8Array.from({ length: 12 }, (_, i) => (i * 3 + seed) & 0xff);
      const aad = Uint8Array.of(seed, 9, 8);
      const { ct, tag } = oneShot(alg, key, nonce, aad, pt);
      for (const b of BACKENDS) {
        const src = pt.slice();
        const dst = new Uint8Array(pt.length + 7).fill(0xa5); // output lands at offset 3, the rest untouched
        const e = b.encrypt(alg, key, nonce, aad);
        let at = 0;
        inPieces(src, cuts, (piece) => {
          e.updateTo(piece, dst, 3 + at);
          at += piece.length;
        });
        t.is(toHex(e.final()), toHex(tag), `${b.name}: tag`);
        t.deepEqual(src, pt, `${b.name}: source changed`);
        t.is(toHex(dst.subarray(3, 3 + pt.length)), toHex(ct), `${b.name}: ciphertext`);
        t.true(dst.subarray(0, 3).every((x) => x === 0xa5) && dst.subarray(3 + pt.length).every((x) => x === 0xa5), `${b.name}: bytes outside the range`);
      }
    }),
    { seed: 4343, numRuns: 200 },
  );
});

// The device makes each record's nonce and AAD in buffers of its own that it writes again for the next record
// (record-tracker.ts): a backend must have read them by the time encrypt()/decrypt() returns.
test('nonce and AAD buffers reused after encrypt()/decrypt() returns: every backend and cipher still gives the one-shot result', (t) => {
  for (const alg of ALGS) {
    const key = Uint8Array.from({ length: keySize(alg) }, (_, i) => i * 7 + 1);
    const nonce = Uint8Array.from({ length: 12 }, (_, i) => i * 11 + 2);
    const aad = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 1, 23, 3, 3, 0x10, 0);
    const pt = Uint8Array.from({ length: 5000 }, (_, i) => (i * 31) & 0xff);
    const { ct, tag } = oneShot(alg, key, nonce, aad, pt);
    for (const b of BACKENDS) {
      const n = nonce.slice();
      const a = aad.slice();
      const e = b.encrypt(alg, key, n, a);
      n.fill(0xee);
      a.fill(0xee);
      const out = pt.slice();
      e.update(out.subarray(0, 1234));
      e.update(out.subarray(1234));
      t.is(toHex(out), toHex(ct), `${b.name} ${alg}: ciphertext`);
      t.is(toHex(e.final()), toHex(tag), `${b.name} ${alg}: tag`);
      const n2 = nonce.slice();
      const a2 = aad.slice();
      const d = b.decrypt(alg, key, n2, a2);
      n2.fill(0x11);
      a2.fill(0x11);
      t.is(toHex(d.updateCopy(ct)), toHex(pt), `${b.name} ${alg}: plaintext`);
      t.true(d.final(tag), `${b.name} ${alg}: tag authenticates`);
    }
  }
});
