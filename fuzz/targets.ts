// Fuzz targets (issue 8): each takes a seeded Rng, makes one bad-ish input of its class from real material
// (fixture captures, real frames, sealed record streams, key logs, crypto_info), runs it through the code a
// user's input reaches, and checks the invariants. A target returns 'accepted' or 'rejected' (a typed
// error with a message and a place); anything else — another exception, a wrong byte delivered, a packet
// flagged decrypted with wrong plaintext — throws FuzzFailure. The same targets back the seeded property
// tests in test/fuzz.test.ts and the long runs of `make fuzz` (fuzz/run.ts).
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PcapWriter, readCaptureBytes } from '../emulator/capture/index.ts';
import { nodeBackend } from '../emulator/crypto/index.ts';
import { EKEYEXPIRED } from '../emulator/errno.ts';
import { ConfigError, TlsnicError } from '../emulator/errors.ts';
import { Nic } from '../emulator/nic/nic.ts';
import type { FlowTuple } from '../emulator/nic/types.ts';
import {
  CIPHER_DESC, TLS_1_2_VERSION, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_256, TLS_CIPHER_CHACHA20_POLY1305,
  bigIntToRecSeq, recSeqToBigInt, type CryptoInfo,
} from '../emulator/tls/crypto-info.ts';
import { parseKeyLog } from '../emulator/tls/keylog.ts';
import { sealRecord } from '../emulator/tls/record-crypto.ts';
import { CONTENT_ALERT, CONTENT_APPLICATION_DATA, CONTENT_CHANGE_CIPHER_SPEC, CONTENT_HANDSHAKE, HANDSHAKE_KEY_UPDATE, TLS_HEADER_SIZE } from '../emulator/tls/record.ts';
import { FLAG_ACK, FLAG_PSH, buildTcpFrame } from '../emulator/wire/builder.ts';
import { TcpSegmentView } from '../emulator/wire/packet.ts';
import { seqAdd, seqDiff } from '../emulator/wire/seq.ts';
import { concatBytes } from '../emulator/bytes.ts';
import { Rng } from '../driver-api/host/rng.ts';
import type { NetDevice, SkBuff, TlsDevOps } from '../driver-api/ops.ts';
import type { RxChunk, TcpSock, TcpUlp } from '../driver-api/tcp.ts';
import { parseCryptoInfo } from '../driver-api/stack/crypto-info-check.ts';
import { TlsStack } from '../driver-api/stack/index.ts';
import { parseScenario, validateScenario } from '../testbed/load.ts';
import { CAPTURES_DIR, loadManifest } from '../fixtures/manifest.ts';
import { runScenarioObject, type WorldTimeline } from '../testbed/runner.ts';
import type { TimelineMark, WorldTimelineDir } from '../testbed/timeline.ts';
import { replay, TIME_WAIT_NS, type ReplayResult } from '../cli/replay/engine.ts';
import { MAX_HELD_BYTES, type ReplayScenario } from '../cli/replay/scenario.ts';
import { replayScenarioSchema, validateReplayScenario } from '../cli/replay/scenario-schema.ts';
import { firstFailure, mergeQueueResults } from '../cli/replay/parallel.ts';
import { replayQueue, type QueueResult } from '../cli/replay/worker.ts';
import { renderTimeline } from '../cli/timeline.ts';
import { mergeOutCaptures, OutCapture } from '../cli/replay/command.ts';
import { toJson } from '../cli/report.ts';
import { BUILTIN_DRIVERS, FAULT_KINDS, nfpDriver } from '../driver-api/drivers/index.ts';

export type Outcome = 'accepted' | 'rejected';

export class FuzzFailure extends Error {}

export type FuzzTarget = {
  name: string;
  /** What one input is, for the run summary. */
  input: string;
  /** Inputs of this class per input asked for (`make fuzz --count N` runs N * perCount): a class whose input is a whole replay is slow. */
  perCount?: number;
  one(rng: Rng): Outcome | Promise<Outcome>;
};

const ROOT = new URL('..', import.meta.url).pathname;

/** A typed rejection must say what (a message) and where (some place field). */
function typed(e: unknown, what: string): Outcome {
  if (!(e instanceof TlsnicError)) throw new FuzzFailure(`${what}: untyped ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  if (!e.message) throw new FuzzFailure(`${what}: ${e.name} without a message`);
  if (Object.keys(e.where).length === 0) throw new FuzzFailure(`${what}: ${e.name} "${e.message}" says nowhere where`);
  return 'rejected';
}

// ---- byte mutators --------------------------------------------------------------------------------------

const INTERESTING32 = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe, 65535, 262144];

/** 1-6 edits of the kinds that break parsers: bit flips, interesting 32-bit values, cuts, inserts, deletes. */
export function mutate(rng: Rng, src: Uint8Array): Uint8Array {
  let b: Uint8Array = src.slice();
  const edits = 1 + rng.int(6);
  for (let k = 0; k < edits && b.length > 0; k++) {
    const at = rng.int(b.length);
    switch (rng.int(7)) {
      case 0:
        b[at]! ^= 1 << rng.int(8);
        break;
      case 1:
        b[at] = rng.int(256);
        break;
      case 2: {
        // a length-like field: 32 bits at a 4-aligned offset, either byte order
        const o = at & ~3;
        if (o + 4 > b.length) break;
        const v = INTERESTING32[rng.int(INTERESTING32.length)]!;
        const dv = new DataView(b.buffer, b.byteOffset, b.length);
        dv.setUint32(o, v, rng.chance(0.5));
        break;
      }
      case 3:
        b = b.subarray(0, at).slice();
        break;
      case 4: {
        const n = 1 + rng.int(64);
        b = concatBytes([b.subarray(0, at), rng.bytes(n), b.subarray(at)]);
        break;
      }
      case 5: {
        const n = 1 + rng.int(Math.min(256, b.length - at));
        b = concatBytes([b.subarray(0, at), b.subarray(at + n)]);
        break;
      }
      case 6: {
        // 16 bits (ports, lengths, link types, options)
        const o = at & ~1;
        if (o + 2 > b.length) break;
        const v = [0, 1, 0xffff, 0x8000, 0x7fff, 0x0800, 0x86dd, 276, 113, 101][rng.int(10)]!;
        b[o] = v >>> 8;
        b[o + 1] = v & 0xff;
        break;
      }
    }
  }
  return b;
}

// ---- 1. capture files -----------------------------------------------------------------------------------

function loadCaptureSeeds(): Uint8Array[] {
  const out: Uint8Array[] = [];
  const formats = join(ROOT, 'fixtures/formats');
  for (const f of readdirSync(formats)) if (/\.pcap(ng)?$/.test(f)) out.push(new Uint8Array(readFileSync(join(formats, f))));
  // One real TLS capture, cut to its first 64 KiB (mutations past that add nothing the small ones lack).
  const cap = new Uint8Array(readFileSync(join(ROOT, 'fixtures/captures/tls12-aes128-v4.pcap')));
  out.push(cap.subarray(0, Math.min(cap.length, 65536)));
  return out;
}

export function captureTarget(): FuzzTarget {
  const seeds = loadCaptureSeeds();
  return {
    name: 'capture',
    input: 'a mutated pcap/pcapng file (all link types, both byte orders, µs/ns) read to the end',
    one(rng) {
      const seed = seeds[rng.int(seeds.length)]!;
      const buf = rng.chance(0.05) ? rng.bytes(rng.int(200)) : mutate(rng, seed);
      try {
        const r = readCaptureBytes(buf, { truncated: rng.chance(0.5) ? 'stop' : 'throw' });
        let n = 0;
        for (const p of r) {
          if (++n > 100_000) throw new FuzzFailure(`capture: more packets (${n}) than a ${buf.length}-byte file can hold`);
          if (p.data.length > buf.length) throw new FuzzFailure(`capture: packet ${p.number} has ${p.data.length} bytes from a ${buf.length}-byte file`);
          if (p.fileOffset < 0 || p.fileOffset >= buf.length) throw new FuzzFailure(`capture: packet ${p.number} at offset ${p.fileOffset} outside the file`);
        }
        return 'accepted';
      } catch (e) {
        if (e instanceof FuzzFailure) throw e;
        return typed(e, 'capture');
      }
    },
  };
}

// ---- shared: a record stream of a flow, its frames -----------------------------------------------------

const LOCAL = { ip: '10.9.0.1', port: 443 };
const REMOTE = { ip: '10.9.0.2', port: 40000 };
const RX_TUPLE: FlowTuple = { family: 4, saddr: LOCAL.ip, sport: LOCAL.port, daddr: REMOTE.ip, dport: REMOTE.port };

function rxFrame(seq: number, payload: Uint8Array): Uint8Array {
  return buildTcpFrame({
    family: 4, srcIp: REMOTE.ip, dstIp: LOCAL.ip, srcPort: REMOTE.port, dstPort: LOCAL.port, seq, ack: 1, flags: FLAG_ACK | FLAG_PSH, payload,
  });
}

function randomInfo(rng: Rng, version: CryptoInfo['version'] = TLS_1_2_VERSION, cipherType: CryptoInfo['cipherType'] = TLS_CIPHER_AES_GCM_128): CryptoInfo {
  const d = CIPHER_DESC[cipherType];
  return { version, cipherType, key: rng.bytes(d.keySize), iv: rng.bytes(d.ivSize), salt: rng.bytes(d.saltSize), recSeq: bigIntToRecSeq(BigInt(rng.int(1000))) };
}

type Rec = { type: number; plaintext: Uint8Array; offset: number; length: number };

/** Sealed records: mostly application data, some alerts, change-cipher-spec and handshake messages. */
function recordStream(rng: Rng, info: CryptoInfo, count: number): { recs: Rec[]; sealed: Uint8Array } {
  let sn = recSeqToBigInt(info.recSeq);
  const recs: Rec[] = [];
  const parts: Uint8Array[] = [];
  let off = 0;
  for (let i = 0; i < count; i++) {
    const r = rng.int(20);
    const type = r === 0 ? CONTENT_ALERT : r === 1 ? CONTENT_CHANGE_CIPHER_SPEC : r === 2 ? CONTENT_HANDSHAKE : CONTENT_APPLICATION_DATA;
    const size = rng.chance(0.1) ? 16384 : rng.chance(0.1) ? 0 : rng.int(3000);
    const plaintext = type === CONTENT_APPLICATION_DATA ? rng.bytes(size) : rng.bytes(1 + rng.int(40));
    const sealed = sealRecord(nodeBackend, info, sn++, type, plaintext);
    recs.push({ type, plaintext, offset: off, length: sealed.length });
    parts.push(sealed);
    off += sealed.length;
  }
  return { recs, sealed: concatBytes(parts) };
}

/** Edits aimed at TLS: record lengths (over the limit, zero, short), versions, types, tag and body bytes. */
function mutateRecords(rng: Rng, recs: readonly Rec[], sealed: Uint8Array): Uint8Array {
  const b = sealed.slice();
  const edits = rng.int(4);
  for (let k = 0; k < edits; k++) {
    const r = recs[rng.int(recs.length)]!;
    switch (rng.int(6)) {
      case 0: {
        const len = [0, 1, 16, 17, 16384 + 256, 16384 + 257, 0x4100, 0xffff, rng.int(0x10000)][rng.int(9)]!;
        b[r.offset + 3] = len >>> 8;
        b[r.offset + 4] = len & 0xff;
        break;
      }
      case 1:
        b[r.offset + 1] = [2, 3, 0xfe, 0][rng.int(4)]!;
        b[r.offset + 2] = [0, 1, 3, 4, 0xff][rng.int(5)]!;
        break;
      case 2:
        b[r.offset] = [0, 20, 21, 22, 23, 24, 0xff][rng.int(7)]!;
        break;
      case 3:
        b[r.offset + r.length - 1 - rng.int(16)]! ^= 1 << rng.int(8); // the tag
        break;
      default:
        b[r.offset + 5 + rng.int(Math.max(1, r.length - 5))]! ^= 1 << rng.int(8); // anywhere in the body
        break;
    }
  }
  return b;
}

// ---- 2. packets through the device ----------------------------------------------------------------------

/**
 * Real frames of a sealed record stream, some mutated in their IP/TCP headers (lengths, header lengths,
 * options, fragment bits, protocol), some in their payload, half of the mutated ones with checksums fixed
 * so they reach the TLS engine. The device must not throw, and a frame it flags decrypted whose bytes were
 * not mutated must hold exactly the plaintext at its sequence number.
 */
export function packetTarget(): FuzzTarget {
  const v = new TcpSegmentView();
  return {
    name: 'packet',
    input: 'frames of 1-6 records, some with mutated IP/TCP headers or payload, through an RX context',
    one(rng) {
      const info = randomInfo(rng, TLS_1_2_VERSION, rng.chance(0.5) ? TLS_CIPHER_AES_GCM_128 : TLS_CIPHER_AES_GCM_256);
      const { recs, sealed } = recordStream(rng, info, 1 + rng.int(6));
      const opened = sealed.slice();
      // what the stream holds once decrypted: each record's body replaced by its plaintext (TLS 1.2 AEAD)
      const nonce = CIPHER_DESC[info.cipherType].explicitNonceSize;
      for (const r of recs) opened.set(r.plaintext, r.offset + 5 + nonce);
      const start = rng.next();
      const nic = new Nic({ backend: nodeBackend });
      let bad: string | null = null;
      let mutatedNow = false;
      let seqNow = 0;
      let lenNow = 0;
      // Once a mutated frame with a valid checksum reached the TLS engine, the device may track records the
      // damaged bytes describe (a header whose length changed on the wire): what it flags decrypted after
      // that is what those bytes imply, and the stack's authentication is what catches it (the record
      // target checks that end to end). Before that, a decrypted flag must mean exactly the right bytes.
      let tainted = false;
      nic.onReceive((c) => {
        if (mutatedNow && c.ctx >= 0) tainted = true;
        if (!c.decrypted || mutatedNow || tainted || bad) return;
        if (v.parse(c.frame) !== 'tcp') {
          bad = 'a frame flagged decrypted does not parse';
          return;
        }
        const pl = v.payload();
        const off = seqDiff(v.seq, start);
        if (v.seq !== seqNow || pl.length !== lenNow) bad = 'a decrypted completion for another frame';
        for (let i = 0; i < pl.length && !bad; i++) {
          if (off + i < 0 || off + i >= opened.length || pl[i] !== opened[off + i]) bad = `decrypted frame at stream offset ${off} byte ${i} is wrong`;
        }
      });
      nic.addContext('rx', { tuple: RX_TUPLE, info, startSeq: start });
      let off = 0;
      while (off < sealed.length) {
        const n = Math.min(sealed.length - off, 1 + rng.int(1460));
        const frame = rxFrame(seqAdd(start, off), sealed.subarray(off, off + n));
        let f = frame;
        mutatedNow = false;
        if (rng.chance(0.25)) {
          mutatedNow = true;
          f = rng.chance(0.5) ? mutateHeaders(rng, frame) : mutate(rng, frame);
          try {
            if (rng.chance(0.5) && v.parse(f) === 'tcp') v.updateTcpChecksum(); // reach the TLS engine
          } catch (e) {
            typed(e, 'packet parse');
          }
        }
        seqNow = seqAdd(start, off);
        lenNow = n;
        try {
          v.parse(f);
        } catch (e) {
          typed(e, 'packet parse');
        }
        try {
          nic.receiveFrame(f);
        } catch (e) {
          throw new FuzzFailure(`packet: the device threw on frame at stream offset ${off}: ${e instanceof Error ? e.message : String(e)}`);
        }
        if (bad) throw new FuzzFailure(`packet: ${bad}`);
        // a reordered duplicate now and then
        if (rng.chance(0.05) && off > 0) {
          mutatedNow = false;
          const back = rng.int(off);
          const m = Math.min(sealed.length - back, 1 + rng.int(1460));
          seqNow = seqAdd(start, back);
          lenNow = m;
          nic.receiveFrame(rxFrame(seqNow, sealed.subarray(back, back + m)));
          if (bad) throw new FuzzFailure(`packet: ${bad}`);
        }
        off += n;
      }
      return 'accepted';
    },
  };
}

/** Edit an IPv4/TCP header field that parsers trust: IHL, total length, flags/fragment offset, protocol, data offset, options. */
function mutateHeaders(rng: Rng, frame: Uint8Array): Uint8Array {
  const b = frame.slice();
  const ip = 14;
  const tcp = ip + 20;
  switch (rng.int(7)) {
    case 0:
      b[ip] = 0x40 | rng.int(16); // IHL 0..15
      break;
    case 1: {
      const len = [0, 19, 20, 39, 40, 0xffff, rng.int(0x10000)][rng.int(7)]!;
      b[ip + 2] = len >>> 8;
      b[ip + 3] = len & 0xff;
      break;
    }
    case 2:
      b[ip + 6] = [0x20, 0x00, 0x40, 0x3f, 0xff][rng.int(5)]!; // MF, fragment offsets
      b[ip + 7] = rng.int(256);
      break;
    case 3:
      b[ip + 9] = [17, 1, 0, 6, 41][rng.int(5)]!;
      break;
    case 4:
      b[tcp + 12] = rng.int(16) << 4; // TCP data offset 0..15
      break;
    case 5:
      if (b.length > tcp + 24) for (let i = 0; i < 4; i++) b[tcp + 20 + i] = [0, 1, 2, 4, 8, 255][rng.int(6)]!; // options soup
      b[tcp + 12] = 6 << 4;
      break;
    default:
      return b.subarray(0, rng.int(b.length)).slice();
  }
  return b;
}

// ---- 3. TLS records through device and stack ------------------------------------------------------------

class FuzzTcp implements TcpSock {
  static nextId = 1;
  readonly id = FuzzTcp.nextId++;
  readonly tuple = { family: 4 as const, saddr: LOCAL.ip, sport: LOCAL.port, daddr: REMOTE.ip, dport: REMOTE.port };
  writeSeq = 1;
  sndUna = 1;
  ulp: TcpUlp | null = null;
  constructor(readonly netdev: NetDevice, public copiedSeq: number) {}
  setUlp(ulp: TcpUlp): void {
    this.ulp = ulp;
  }
  queue(): void {}
  fence(): void {}
  push(): void {}
  close(): void {
    this.ulp?.onDestroy?.();
  }
}

/**
 * A sealed record stream with TLS-level damage (lengths over the limit, bad versions and types, bad tags,
 * alerts and change-cipher-spec in the middle), cut into random segments, through the device (HW RX,
 * device stream-scan resync) and the stack model in order. Invariant: what reaches the application is
 * exactly the records before the first damaged byte, or a prefix of them: nothing with a bad tag, nothing
 * twice, nothing out of order; the stack never throws.
 */
export function recordTarget(): FuzzTarget {
  const v = new TcpSegmentView();
  return {
    name: 'record',
    input: 'a stream of 1-12 sealed TLS 1.2/1.3 records with 0-3 TLS-level edits, device + stack RX',
    one(rng) {
      const tls13 = rng.chance(0.3);
      const info = randomInfo(rng, tls13 ? TLS_1_3_VERSION : TLS_1_2_VERSION, rng.chance(0.5) ? TLS_CIPHER_AES_GCM_128 : TLS_CIPHER_AES_GCM_256);
      const { recs, sealed } = recordStream(rng, info, 1 + rng.int(12));
      const wire = rng.chance(0.8) ? mutateRecords(rng, recs, sealed) : sealed;
      let firstBad = wire.length === sealed.length ? -1 : 0;
      for (let i = 0; i < wire.length && firstBad < 0; i++) if (wire[i] !== sealed[i]) firstBad = i;
      // A TLS 1.3 KeyUpdate is delivered, then reading stops (the kernel waits for the next key: EKEYEXPIRED).
      const keyUpdate = tls13 ? recs.findIndex((r) => r.type === CONTENT_HANDSHAKE && r.plaintext[0] === HANDSHAKE_KEY_UPDATE) : -1;
      const readable = keyUpdate < 0 ? recs : recs.slice(0, keyUpdate + 1);
      const intact = readable.filter((r) => firstBad < 0 || r.offset + r.length <= firstBad);

      const start = rng.next();
      const nic = new Nic({ backend: nodeBackend, profile: { tls13: true } });
      let handle = -1;
      const ops: TlsDevOps = {
        tlsDevAdd: (_nd, _sk, dir, ci, sn) => {
          if (dir !== 'rx') return -95;
          handle = nic.addContext('rx', { tuple: RX_TUPLE, info: ci, startSeq: sn });
          return 0;
        },
        tlsDevDel: () => void nic.delContext(handle),
        // The stack's default resync type, DRIVER_REQ, answers with the header's last byte; the device takes the record start.
        tlsDevResync: (_nd, _sk, seq, sn) => (nic.rxResync(handle, seqAdd(seq, -(TLS_HEADER_SIZE - 1)), recSeqToBigInt(sn)), 0),
      };
      const netdev: NetDevice = {
        name: 'fuzz0', features: { tlsHwTxOffload: false, tlsHwRxOffload: rng.chance(0.8), txChecksumOffload: true, rxChecksumOffload: true },
        tlsdevOps: ops, isUp: () => true, startXmit: (_skb: SkBuff) => {},
      };
      const stack = new TlsStack({ backend: nodeBackend, tls13Offload: true });
      const tcp = new FuzzTcp(netdev, start);
      const tls = stack.attach(tcp);
      const got: Array<{ type: number; data: Uint8Array }> = [];
      tls.onData((data, type) => got.push({ type: type ?? -1, data: data.slice() }));
      try {
        tls.setCryptoInfo('rx', info);
      } catch (e) {
        return typed(e, 'record setCryptoInfo');
      }
      nic.onReceive((c) => {
        if (v.parse(c.frame) !== 'tcp') return;
        const chunk: RxChunk = { seq: v.seq, data: v.payload().slice(), decrypted: c.decrypted };
        try {
          tcp.ulp!.onReceive([chunk]);
        } catch (e) {
          throw new FuzzFailure(`record: the stack threw: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
        }
        tcp.copiedSeq = seqAdd(v.seq, chunk.data.length);
      });
      let off = 0;
      while (off < wire.length && tls.error === null) {
        const n = Math.min(wire.length - off, 1 + rng.int(rng.chance(0.3) ? 8 : 1460)); // tiny pieces split headers
        nic.receiveFrame(rxFrame(seqAdd(start, off), wire.subarray(off, off + n)));
        off += n;
      }
      // Delivered must be the intact records, in order, possibly fewer of them (AEAD: an edited record never opens).
      if (got.length > intact.length) {
        throw new FuzzFailure(`record: ${got.length} records delivered, only ${intact.length} precede the first edit at byte ${firstBad}`);
      }
      for (let i = 0; i < got.length; i++) {
        const want = intact[i]!;
        if (got[i]!.type !== want.type || !equal(got[i]!.data, want.plaintext)) {
          throw new FuzzFailure(`record: delivery ${i} (type ${got[i]!.type}, ${got[i]!.data.length} B) is not record ${i} (type ${want.type}, ${want.plaintext.length} B)`);
        }
      }
      const expectError = keyUpdate < 0 ? null : EKEYEXPIRED;
      if (firstBad < 0 && (got.length !== readable.length || tls.error !== expectError)) {
        throw new FuzzFailure(`record: an undamaged stream delivered ${got.length}/${readable.length} records${tls.error !== null ? `, error ${tls.errorDetail?.message}` : ''}`);
      }
      if (tls.error !== null) {
        if (!tls.errorDetail || !(tls.errorDetail instanceof TlsnicError)) throw new FuzzFailure('record: socket error without a typed detail');
        return 'rejected';
      }
      return 'accepted';
    },
  };
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---- text inputs ----------------------------------------------------------------------------------------

/** The text files of a fixtures folder with this extension: the seeds of a text class. */
function textSeeds(folder: string, ext: string): string[] {
  const dir = join(ROOT, folder);
  return readdirSync(dir).filter((f) => f.endsWith(ext)).map((f) => readFileSync(join(dir, f), 'utf8'));
}

const utf8Enc = new TextEncoder();
const utf8Dec = new TextDecoder();

/** mutate() on the UTF-8 bytes of a text (invalid sequences decode to U+FFFD, as a reader would see them). */
function mutateText(rng: Rng, text: string): string {
  return utf8Dec.decode(mutate(rng, utf8Enc.encode(text)));
}

// ---- 4. key logs ----------------------------------------------------------------------------------------

export function keylogTarget(): FuzzTarget {
  const seeds = textSeeds('fixtures/captures', '.keylog');
  return {
    name: 'keylog',
    input: 'a mutated NSS key log (line edits, wrong lengths, junk bytes, missing keys)',
    one(rng) {
      const seed = seeds[rng.int(seeds.length)]!;
      let text: string;
      if (rng.chance(0.5)) {
        text = mutateText(rng, seed);
      } else {
        const lines = seed.split('\n');
        const k = rng.int(lines.length);
        const parts = lines[k]!.split(' ');
        switch (rng.int(5)) {
          case 0:
            parts.pop();
            break;
          case 1:
            parts[rng.int(parts.length)] = parts[rng.int(parts.length)]!.slice(0, rng.int(80));
            break;
          case 2:
            parts.push('extra');
            break;
          case 3:
            parts[0] = ['CLIENT_RANDOM', 'SERVER_TRAFFIC_SECRET_0', 'EXPORTER_SECRET', 'client_random', ''][rng.int(5)]!;
            break;
          default:
            lines.splice(k, 1);
        }
        if (parts.length) lines[k] = parts.join(rng.chance(0.9) ? ' ' : '\t');
        text = lines.join(rng.chance(0.9) ? '\n' : '\r\n');
      }
      try {
        parseKeyLog(text, 'fuzz.keylog');
        return 'accepted';
      } catch (e) {
        return typed(e, 'keylog');
      }
    },
  };
}

// ---- 5. crypto_info -------------------------------------------------------------------------------------

/** setsockopt(TLS_TX/TLS_RX) arguments: random shapes; a rejection must be a ConfigError naming the field. */
export function cryptoInfoTarget(): FuzzTarget {
  const anyValue = (rng: Rng): unknown => {
    switch (rng.int(9)) {
      case 0: return rng.bytes(rng.int(40));
      case 1: return rng.int(100);
      case 2: return 'abc';
      case 3: return null;
      case 4: return undefined;
      case 5: return [1, 2, 3];
      case 6: return { length: 16 };
      case 7: return new Uint16Array(8);
      default: return Buffer.from(rng.bytes(rng.int(40)));
    }
  };
  return {
    name: 'crypto_info',
    input: 'a TLS_TX/TLS_RX crypto_info object with random fields, sizes and types',
    one(rng) {
      const ciphers: CryptoInfo['cipherType'][] = [TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_256, TLS_CIPHER_CHACHA20_POLY1305];
      const cipher = ciphers[rng.int(3)]!;
      const base = randomInfo(rng, rng.chance(0.5) ? TLS_1_2_VERSION : TLS_1_3_VERSION, cipher) as Record<string, unknown>;
      const obj: Record<string, unknown> = rng.chance(0.05) ? {} : { ...base };
      const fields = ['version', 'cipherType', 'key', 'iv', 'salt', 'recSeq'];
      const edits = rng.int(3);
      for (let k = 0; k < edits; k++) {
        const f = fields[rng.int(fields.length)]!;
        if (rng.chance(0.2)) delete obj[f];
        else if (f === 'version' || f === 'cipherType') obj[f] = [0, 0x0301, 0x0302, 0x0303, 0x0304, 51, 52, 53, 54, 55, -1, 1e9][rng.int(12)];
        else obj[f] = anyValue(rng);
      }
      const input = rng.chance(0.03) ? anyValue(rng) : obj;
      const dir = rng.chance(0.5) ? 'tx' : 'rx';
      try {
        const ci = parseCryptoInfo(input, dir);
        const d = CIPHER_DESC[ci.cipherType];
        if (ci.key.length !== d.keySize || ci.iv.length !== d.ivSize || ci.salt.length !== d.saltSize) throw new FuzzFailure('crypto_info: accepted with wrong sizes');
        return 'accepted';
      } catch (e) {
        if (e instanceof FuzzFailure) throw e;
        if (!(e instanceof ConfigError)) throw new FuzzFailure(`crypto_info: ${e instanceof Error ? e.name : typeof e} instead of ConfigError`);
        if (!e.where.field || !e.where.field.startsWith(dir)) throw new FuzzFailure(`crypto_info: ConfigError "${e.message}" does not name the field`);
        return 'rejected';
      }
    },
  };
}

// ---- 6. scenario files ---------------------------------------------------------------------------------

/** Mutated scenario files (bytes and JSON-aware edits): parsed, or a ScenarioError with file:line:col. */
export function scenarioTarget(): FuzzTarget {
  const seeds = textSeeds('fixtures/scenarios', '.json');
  const tokens = ['{', '}', '[', ']', ':', ',', '"', '-1', '1e309', '0.5', 'null', 'true', '"x"', '99999999999', '\\u0000', '[]', '{}'];
  return {
    name: 'scenario',
    input: 'a mutated scenario file (byte edits, JSON tokens, wrong types and values)',
    one(rng) {
      const seed = seeds[rng.int(seeds.length)]!;
      let text: string;
      if (rng.chance(0.4)) {
        text = mutateText(rng, seed);
      } else {
        // Replace a value-ish token with another token: keeps the file mostly JSON, so the schema is reached.
        const m = [...seed.matchAll(/-?\d+(\.\d+)?|"[^"]*"|true|false|null/g)];
        text = seed;
        const hit = m[rng.int(m.length)];
        if (hit) text = seed.slice(0, hit.index!) + tokens[rng.int(tokens.length)]! + seed.slice(hit.index! + hit[0].length);
      }
      try {
        parseScenario(text, 'fuzz.json');
        return 'accepted';
      } catch (e) {
        const out = typed(e, 'scenario');
        if (!(e instanceof ConfigError) || !/fuzz\.json:\d+:\d+/.test(e.message)) throw new FuzzFailure(`scenario: rejection without file:line:col: ${(e as Error).message}`);
        return out;
      }
    },
  };
}

// ---- 7. replay scenarios, run -------------------------------------------------------------------------

/** Bundled captures a replay scenario runs on: one connection each (v4, v6, TLS 1.3) and fourteen at once. */
const REPLAY_CAPTURES = [
  { name: 'tls12-aes128-v4', tls13: false },
  { name: 'tls12-aes256-v6', tls13: false },
  { name: 'tls13-aes128-v4', tls13: true },
  { name: 'tls12-many-v4', tls13: false },
] as const;

/**
 * A clean replay: what each connection received ("local|remote"), the capture's duration (linkDown times
 * are drawn within it and a little past it) and how many record indices impairments draw from (the bundled
 * streams hold 8-20 records: some names fall past the end, which the scenario must report as never matched).
 */
type CleanRun = { rx: Map<string, Uint8Array>; durationUs: number; records: number };

const captureFiles = (name: string) => ({ capture: join(CAPTURES_DIR, `${name}.pcap`), keylog: join(CAPTURES_DIR, `${name}.keylog`) });

/** A replay of `capture` (path) from `local`, and the plaintext each connection received, by "local|remote". */
async function replayCollect(o: { capture: string; keylog: string; tls13: boolean; local: string; driver: string; scenario?: unknown; readChunkBytes?: number }) {
  const rx = new Map<string, Uint8Array[]>();
  const r = await replay({
    capture: o.capture, keylog: o.keylog, local: { ip: o.local, port: null }, driver: BUILTIN_DRIVERS[o.driver]!, tls13: o.tls13, timeline: true,
    ...(o.readChunkBytes ? { limits: { readChunkBytes: o.readChunkBytes } } : {}),
    ...(o.scenario === undefined ? {} : { scenario: validateReplayScenario(o.scenario, 'fuzz') }),
    onPlaintext: (f, dir, data) => {
      if (dir !== 'rx') return;
      const k = `${f.local}|${f.remote}`;
      (rx.get(k) ?? rx.set(k, []).get(k)!).push(data.slice());
    },
  });
  return { r, rx: new Map([...rx].map(([k, v]) => [k, concatBytes(v)])) };
}

const cleanRuns = new Map<string, CleanRun>();
const manifests = new Map<string, ReturnType<typeof loadManifest>>();

/** A bundled capture's manifest, read once. */
function manifestOf(name: string): ReturnType<typeof loadManifest> {
  let m = manifests.get(name);
  if (!m) manifests.set(name, (m = loadManifest(join(CAPTURES_DIR, `${name}.json`))));
  return m;
}

/**
 * The capture reader's read size for a fuzzed replay: half the time a small one (its window then moves every
 * packet or few, overwriting earlier packets' bytes), since a bundled capture fits the default 1 MiB whole
 * and would never show a view kept past its packet's turn. 0: the default.
 */
function readChunk(rng: Rng): number {
  return rng.chance(0.5) ? 0 : 512 + rng.int(16384);
}

/** The unimpaired replay of a bundled capture from `local` (cached): what every connection receives. */
async function cleanReplay(name: string, tls13: boolean, local: string): Promise<CleanRun> {
  const key = `${name}|${local}`;
  let c = cleanRuns.get(key);
  if (!c) {
    const { r, rx } = await replayCollect({ ...captureFiles(name), tls13, local, driver: 'mlx5' });
    const m = manifestOf(name);
    if (r.flows.length !== m.connections.length) throw new FuzzFailure(`the clean replay of ${name} found ${r.flows.length} connections, the manifest ${m.connections.length}`);
    // linkDown's atUs counts from the capture's first packet: pick times inside the capture and a little past it.
    let first: bigint | null = null;
    let last = 0n;
    for (const p of readCaptureBytes(readFileSync(captureFiles(name).capture), { name })) {
      first ??= p.tsNs;
      last = p.tsNs;
    }
    const durationUs = Number(last - (first ?? last)) / 1000;
    c = { rx, durationUs: Math.ceil(durationUs * 1.1) + 1, records: 40 };
    cleanRuns.set(key, c);
  }
  return c;
}

/** The IP of one end of a bundled capture's first connection (the manifest says "10.77.0.2:45230", "[fd77::1]:4827"). */
function endOf(name: string, rng: Rng): { local: string; connections: number } {
  const m = manifestOf(name);
  const endpoint = rng.chance(0.5) ? m.connections[0]!.client : m.connections[0]!.server;
  return { local: endpoint.replace(/^\[/, '').replace(/\]?:\d+$/, ''), connections: m.connections.length };
}

/** A bundled capture, one end of it as the local host, and its clean replay from there. */
async function pickCapture(rng: Rng) {
  const cap = REPLAY_CAPTURES[rng.int(REPLAY_CAPTURES.length)]!;
  const { local, connections } = endOf(cap.name, rng);
  return { cap, local, connections, c: await cleanReplay(cap.name, cap.tls13, local) };
}

/**
 * What a replay delivered against the clean replay: every connection's received plaintext a prefix of the
 * clean one's (all of it when `complete(index)`), nothing for a connection the clean replay does not have.
 */
function checkDelivered(what: string, at: string, got: Map<string, Uint8Array>, r: ReplayResult, clean: CleanRun, complete: (index: number) => boolean): void {
  for (const [k, bytes] of got) {
    if (!clean.rx.has(k) && bytes.length > 0) throw new FuzzFailure(`${what}: ${at}: ${bytes.length} bytes delivered to ${k}, a connection the capture does not have`);
  }
  r.flows.forEach((f, index) => {
    const k = `${f.local}|${f.remote}`;
    const want = clean.rx.get(k);
    const have = got.get(k) ?? new Uint8Array(0);
    if (!want) return; // checked above
    if (have.length > want.length || !sameBytes(have, want.subarray(0, have.length))) {
      throw new FuzzFailure(`${what}: ${at}, connection ${index}: ${have.length} bytes delivered are not a prefix of the ${want.length} the clean replay delivers`);
    }
    if (complete(index) && have.length !== want.length) throw new FuzzFailure(`${what}: ${at}, connection ${index}: ${have.length} of ${want.length} bytes delivered`);
    // The timeline draws this connection's received packets after the TLS RX install, as many decrypted as it
    // counted (the handshake's are drawn 'plain' and not counted).
    const bars = (mark: string) => r.timeline.filter((m) => m.flow === index + 1 && m.dir === 'rx' && m.mark === mark).length;
    if (bars('decrypted') !== f.rx.decrypted || bars('decrypted') + bars('not-decrypted') !== f.rx.segments) {
      throw new FuzzFailure(`${what}: ${at}, connection ${index}: the timeline draws ${bars('decrypted')} decrypted of ${bars('decrypted') + bars('not-decrypted')} received packets, the report counts ${f.rx.decrypted} of ${f.rx.segments}`);
    }
  });
}

/**
 * A random replay impairment for a capture of `records` received records, `durationUs` long, `flows`
 * connections. With `wrong`, now and then a field out of range or of the wrong type: the schema must name it.
 */
function randomImpairment(rng: Rng, c: { records: number; durationUs: number }, flows: number, opts: { wrong: boolean; tableFull: boolean }): Record<string, unknown> {
  const wrong = (): unknown => [-1, 1.5, 'x', null, 1e12, [], {}][rng.int(7)];
  const seg = () => ({
    ...(rng.chance(0.7) ? { flow: rng.int(flows) } : {}), record: rng.int(c.records),
    ...(rng.chance(0.5) ? { part: rng.chance(0.5) ? 'header' : 'body' } : {}), ...(rng.chance(0.4) ? { nth: rng.int(12) } : {}),
    ...(rng.chance(0.2) ? { copy: rng.int(3) } : {}), ...(rng.chance(0.6) ? { after: 1 + rng.int(rng.chance(0.1) ? 2000 : 20) } : {}),
  });
  const rate = () => (rng.chance(0.5) ? rng.int(30) / 100 : 0);
  let imp: Record<string, unknown>;
  switch (rng.int(opts.tableFull ? 8 : 7)) {
    case 0: imp = { kind: 'drop', ...seg() }; break;
    case 1: imp = { kind: 'reorder', ...seg() }; break;
    case 2: imp = { kind: 'duplicate', ...seg() }; break;
    case 3: imp = { kind: 'badChecksum', ...seg() }; break;
    case 4: imp = { kind: 'corruptCiphertext', flow: rng.int(flows), record: rng.int(c.records), byte: rng.int(rng.chance(0.5) ? 40 : 20000), ...(rng.chance(0.2) ? { copy: rng.int(2) } : {}) }; break;
    case 5: imp = { kind: 'linkDown', atUs: rng.int(c.durationUs), forUs: rng.int(rng.chance(0.3) ? 2_000_000 : 20_000), ...(rng.chance(0.3) ? { netdevDown: rng.chance(0.5) } : {}) }; break;
    case 6: imp = { kind: 'random', loss: rate(), reorder: rate(), duplicate: rate(), ...(rng.chance(0.5) ? { untilFraction: rng.int(101) / 100 } : {}), ...(rng.chance(0.5) ? { after: 1 + rng.int(10) } : {}) }; break;
    default: imp = { kind: 'tableFull', capacity: rng.int(3) };
  }
  if (opts.wrong && rng.chance(0.08)) {
    const keys = Object.keys(imp);
    imp[keys[rng.int(keys.length)]!] = wrong();
  }
  return imp;
}

/**
 * Random replay scenarios (every impairment kind, fields in and just out of range, sometimes wrong types) run
 * on bundled captures from either end with either driver. Rejected: a typed error naming the field.
 * Accepted: the replay ends (no crash, no hang), every connection's transmissions match the capture, and its
 * received plaintext is a prefix of what the same replay without impairments delivers: never a wrong,
 * invented or repeated byte. Without a corrupted record on the connection it is all of it (every impairment
 * here is followed by the sender's retransmission).
 */
export function replayScenarioTarget(): FuzzTarget {
  return {
    name: 'replay_scenario',
    input: 'a random replay scenario (every impairment kind, some fields wrong) run on a bundled capture, either end, either driver',
    perCount: 0.01,
    async one(rng) {
      const { cap, local, connections, c } = await pickCapture(rng);
      const scenario = {
        name: `fuzz-${rng.int(1000)}`, seed: rng.int(0xffff),
        impairments: Array.from({ length: 1 + rng.int(4) }, () => randomImpairment(rng, c, connections, { wrong: true, tableFull: true })),
        ...(rng.chance(0.2) ? { expect: { recovered: rng.chance(0.5) } } : {}),
      };
      const driver = rng.chance(0.5) ? 'mlx5' : 'nfp';
      const readChunkBytes = readChunk(rng);
      let res: Awaited<ReturnType<typeof replayCollect>>;
      try {
        res = await replayCollect({ ...captureFiles(cap.name), tls13: cap.tls13, local, driver, scenario, readChunkBytes });
      } catch (e) {
        // The scenario's own fault (a field the schema refuses, or a byte past the record it names): the field said.
        const out = typed(e, 'replay_scenario');
        if (!(e instanceof ConfigError) || !(e.where.field || /^fuzz: /.test(e.message))) throw new FuzzFailure(`replay_scenario: rejection that names no field: ${(e as Error).message}`);
        return out;
      }
      if (!res.r.scenario) throw new FuzzFailure('replay_scenario: a replay with a scenario reported no scenario outcome');
      const at = `${cap.name} from ${local}, ${driver}, read chunk ${readChunkBytes || 'default'}, scenario ${JSON.stringify(scenario)}`;
      for (const f of res.r.flows) {
        // Impairments act on what the host receives; what it sends is still what the capture holds.
        if (!f.tx.wireMatch) throw new FuzzFailure(`replay_scenario: ${at}: the host's TX does not match the capture: ${f.problems.slice(0, 3).join(' / ')}`);
      }
      const corrupt = new Set(scenario.impairments.filter((i) => i.kind === 'corruptCiphertext').map((i) => i.flow as number));
      checkDelivered('replay_scenario', at, res.rx, res.r, c, (index) => !corrupt.has(index));
      return 'accepted';
    },
  };
}

// ---- 8. damaged captures, replayed ---------------------------------------------------------------------

let damageDir: string | null = null; // made at the first damaged capture, removed when the process exits
const packetsOf = new Map<string, Array<{ data: Uint8Array; tsNs: bigint }>>();

/**
 * Bundled capture `name` with 1-4 packets dropped, duplicated, swapped with the next, cut short, a byte
 * flipped anywhere (headers included), a pause of over TIME_WAIT before one, or the file ended early, written to
 * `file` in a temporary directory. `lossy`: some edit can lose bytes (duplicates, swaps and pauses cannot).
 */
function damagedCapture(rng: Rng, name: string, file: string): { path: string; edits: string[]; lossy: boolean } {
  let orig = packetsOf.get(name);
  if (!orig) {
    orig = [...readCaptureBytes(readFileSync(captureFiles(name).capture), { name })].map((p) => ({ data: Uint8Array.from(p.data), tsNs: p.tsNs }));
    packetsOf.set(name, orig);
  }
  const pkts = orig.map((p) => ({ data: p.data, tsNs: p.tsNs }));
  const edits: string[] = [];
  let lossy = false;
  for (let k = 1 + rng.int(4); k > 0 && pkts.length > 1; k--) {
    const i = rng.int(pkts.length);
    const p = pkts[i]!;
    switch (rng.int(7)) {
      case 0:
        pkts.splice(i, 1);
        edits.push(`drop ${i}`);
        lossy = true;
        break;
      case 1: {
        const j = Math.min(pkts.length, i + 1 + rng.int(20));
        pkts.splice(j, 0, { data: p.data, tsNs: pkts[j - 1]!.tsNs });
        edits.push(`duplicate ${i} at ${j}`);
        break;
      }
      case 2:
        if (i + 1 < pkts.length) {
          pkts[i] = { data: pkts[i + 1]!.data, tsNs: p.tsNs };
          pkts[i + 1] = { data: p.data, tsNs: pkts[i + 1]!.tsNs };
          edits.push(`swap ${i}`);
        }
        break;
      case 3: {
        const data = Uint8Array.from(p.data);
        const at = rng.int(data.length);
        data[at] = data[at]! ^ (1 << rng.int(8));
        pkts[i] = { data, tsNs: p.tsNs };
        edits.push(`flip ${i}@${at}`);
        lossy = true;
        break;
      }
      case 4: {
        const n = rng.int(p.data.length);
        pkts[i] = { data: p.data.subarray(0, n), tsNs: p.tsNs };
        edits.push(`cut ${i} to ${n}`);
        lossy = true;
        break;
      }
      case 5: {
        // A pause longer than TIME_WAIT: connections over by then are let go, and their late packets are strays.
        for (let j = i; j < pkts.length; j++) pkts[j] = { data: pkts[j]!.data, tsNs: pkts[j]!.tsNs + TIME_WAIT_NS + 1_000_000_000n };
        edits.push(`pause before ${i}`);
        break;
      }
      default:
        pkts.length = i + 1;
        edits.push(`end after ${i}`);
        lossy = true;
    }
  }
  const w = new PcapWriter(null);
  for (const p of pkts) w.write(p);
  if (damageDir === null) {
    const made = mkdtempSync(join(tmpdir(), 'tlsnic-fuzz-'));
    process.once('exit', () => rmSync(made, { recursive: true, force: true }));
    damageDir = made;
  }
  const path = join(damageDir, file);
  writeFileSync(path, w.bytes());
  return { path, edits, lossy };
}

/**
 * A damaged bundled capture (see damagedCapture) replayed from either end with either driver. Rejected: a
 * typed error. Accepted: nothing crashes or hangs; no connection gets a byte the clean replay does not deliver
 * to it at that place, and a connection the capture does not have gets nothing (AEAD and TCP between them
 * decide what a damaged segment becomes). With only duplicates and swapped neighbours every byte arrives.
 */
export function replayCaptureTarget(): FuzzTarget {
  return {
    name: 'replay_capture',
    input: 'a bundled capture with packets dropped, duplicated, swapped, cut or flipped, replayed from either end',
    perCount: 0.01,
    async one(rng) {
      const { cap, local, c } = await pickCapture(rng);
      const { path, edits, lossy } = damagedCapture(rng, cap.name, 'damaged.pcap');
      const driver = rng.chance(0.5) ? 'mlx5' : 'nfp';
      const readChunkBytes = readChunk(rng);
      let res: Awaited<ReturnType<typeof replayCollect>>;
      try {
        res = await replayCollect({ capture: path, keylog: captureFiles(cap.name).keylog, tls13: cap.tls13, local, driver, readChunkBytes });
      } catch (e) {
        return typed(e, 'replay_capture');
      }
      const at = `${cap.name} from ${local}, ${driver}, read chunk ${readChunkBytes || 'default'}, ${edits.join(', ')}`;
      checkDelivered('replay_capture', at, res.rx, res.r, c, () => !lossy);
      return 'accepted';
    },
  };
}

/**
 * A damaged bundled capture replayed in one thread and as 2 or 3 RSS queues (each queue's replay run here in
 * turn, as a worker runs it, then merged): the --json report, the --timeline page and the --out file must be the same, or both fail with the same
 * typed error. Workers read the whole capture each and keep only their connections, so a damaged packet that
 * moves a connection's frames between queues, or a merge that orders or sums wrong, shows here.
 */
export function replayQueuesTarget(): FuzzTarget {
  return {
    name: 'replay_queues',
    input: 'a damaged bundled capture replayed in one thread and as 2-3 RSS queues merged, half the time under a random scenario: the same report, scenario outcome, timeline page and --out',
    perCount: 0.005,
    async one(rng) {
      const cap = REPLAY_CAPTURES[rng.int(REPLAY_CAPTURES.length)]!;
      const local = rng.chance(0.3) ? endOf(cap.name, rng).local : null;
      const { path, edits } = damagedCapture(rng, cap.name, 'queues.pcap');
      const keylog = captureFiles(cap.name).keylog;
      const queues = 2 + rng.int(2);
      const readChunkBytes = readChunk(rng);
      // Half the time a scenario (no tableFull: --workers refuses it), sized by the clean capture from one end.
      let scenario: ReplayScenario | undefined;
      if (rng.chance(0.5)) {
        const end = endOf(cap.name, rng);
        const c = await cleanReplay(cap.name, cap.tls13, end.local);
        scenario = replayScenarioSchema.parse({
          name: 'fuzz-queues', seed: rng.int(0xffff), impairments: Array.from({ length: 1 + rng.int(4) }, () => randomImpairment(rng, c, end.connections, { wrong: false, tableFull: false })),
        });
      }
      const heldBytes = Math.floor(MAX_HELD_BYTES / queues);
      // Now and then only a stretch of the timeline (--timeline-window), open-ended or not.
      const timelineWindow = rng.chance(0.3) ? { from: rng.int(100) / 1000, to: rng.chance(0.5) ? Infinity : 0.1 + rng.int(400) / 1000 } : null;
      const at = `${cap.name}${local ? ` from ${local}` : ''}, ${queues} queues, one thread's read chunk ${readChunkBytes || 'default'}, ${edits.join(', ')}${scenario ? `, scenario ${JSON.stringify(scenario)}` : ''}${timelineWindow ? `, timeline window ${timelineWindow.from}:${timelineWindow.to}` : ''}`;
      // --out too: one thread's file in memory, the queues' parts in files joined as --workers joins them.
      const outDir = join(dirname(path), 'queues-out');
      rmSync(outDir, { recursive: true, force: true });
      mkdirSync(outDir);
      const joined = join(outDir, 'joined.pcapng');
      const outcome = async (f: () => Promise<{ r: ReplayResult; out: Uint8Array }>): Promise<{ json: string; page: string; out: Uint8Array } | { error: string }> => {
        try {
          const { r, out } = await f();
          return { json: JSON.stringify(toJson(r)), page: renderTimeline(r), out };
        } catch (e) {
          typed(e, 'replay_queues');
          return { error: `${(e as Error).name}: ${(e as Error).message}` };
        }
      };
      const loc = local === null ? null : { ip: local, port: null };
      const one = await outcome(async () => {
        const out = new OutCapture(null);
        const r = await replay({
          capture: path, keylog, local: loc, driver: BUILTIN_DRIVERS.mlx5!, tls13: cap.tls13, timeline: true, timelineWindow, onFrame: (f) => out.frame(f), scenario,
          // The queues share the bound on held-back frames: one thread gets their sum (all of it in one queue).
          limits: { ...(readChunkBytes ? { readChunkBytes } : {}), scenarioHeldBytes: heldBytes * queues },
        });
        return { r, out: out.bytes() };
      });
      const many = await outcome(async () => {
        const parts: QueueResult[] = [];
        const failures: unknown[] = [];
        for (let q = 0; q < queues; q++) {
          // Every queue runs to its end, as the workers do; the error reported is the one replayParallel picks.
          await replayQueue({
            capture: path, keylog, local: loc, driver: 'mlx5', tls13: cap.tls13, queue: q, queues, plaintextDir: null, progress: false, timeline: true, timelineWindow, outDir,
            ...(scenario ? { scenario, scenarioHeldBytes: heldBytes } : {}),
          }).then((p) => parts.push(p), (e: unknown) => failures.push(e));
        }
        if (failures.length) throw firstFailure(failures);
        mergeOutCaptures(joined, parts.flatMap((p) => (p.out ? [p.out] : [])));
        return { r: mergeQueueResults(path, parts, { scenario, timelineWindow }), out: readFileSync(joined) };
      });
      if ('error' in one || 'error' in many) {
        if (!('error' in one) || !('error' in many) || one.error !== many.error) {
          throw new FuzzFailure(`replay_queues: ${at}: one thread ${'error' in one ? one.error : 'ran'}, queues ${'error' in many ? many.error : 'ran'}`);
        }
        return 'rejected';
      }
      if (one.json !== many.json) throw new FuzzFailure(`replay_queues: ${at}: the merged report differs from one thread's`);
      if (one.page !== many.page) throw new FuzzFailure(`replay_queues: ${at}: the merged timeline page differs from one thread's`);
      if (!sameBytes(one.out, many.out)) throw new FuzzFailure(`replay_queues: ${at}: the joined --out differs from one thread's`);
      return 'accepted';
    },
  };
}

// ---- 9. scenario runs ------------------------------------------------------------------------------

/**
 * Random scenarios run by the two-host testbed: a driver profile (knobs included), a device scan policy, TCP
 * MSS, window and TSO, random writes both ways on up to three connections (sometimes across the 32-bit seq
 * wrap, sometimes TLS 1.3), 0-4 impairments of every kind and sometimes a driver fault. Expected: never a wrong byte; exact delivery
 * on every connection without a corrupted record or a driver fault (a fault may stall one: a prefix then);
 * no contract violation that was not injected and every injected one reported. Recovery is not asked for.
 * Rejected: a typed error (an impairment naming what the traffic lacks).
 */
export function scenarioRunTarget(): FuzzTarget {
  const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)]!;
  return {
    name: 'scenario_run',
    input: 'a random scenario (driver, device, TCP, traffic, impairments, faults) run by the two-host testbed',
    perCount: 0.002,
    one(rng) {
      const flows = 1 + rng.int(3);
      const writes = Array.from({ length: 1 + rng.int(6) }, () => 1 + rng.int(rng.chance(0.3) ? 40_000 : 6000));
      const reverseBytes = rng.chance(0.5) ? rng.int(30_000) : 0;
      const recordsAB = writes.reduce((n, w) => n + Math.ceil(w / 16384), 0);
      const recordsBA = Math.ceil(reverseBytes / 16384);
      const seg = () => {
        const d = reverseBytes > 0 && rng.chance(0.3) ? 'b>a' : 'a>b';
        return {
          record: rng.int((d === 'a>b' ? recordsAB : recordsBA) + 1), part: pick(rng, ['header', 'body'] as const), nth: rng.int(4),
          copy: rng.chance(0.1) ? 1 : 0, dir: d, flow: rng.int(flows),
        };
      };
      const impairments: Record<string, unknown>[] = [];
      const corrupted = new Set<string>();
      for (let k = rng.int(5); k > 0; k--) {
        switch (rng.int(9)) {
          case 0: impairments.push({ kind: 'drop', ...seg() }); break;
          case 1: impairments.push({ kind: 'reorder', ...seg(), delayUs: rng.int(2000) }); break;
          case 2: impairments.push({ kind: 'delay', ...seg(), delayUs: rng.int(20_000) }); break;
          case 3: impairments.push({ kind: 'duplicate', ...seg() }); break;
          case 4: impairments.push({ kind: 'badChecksum', ...seg() }); break;
          case 5: {
            const d = reverseBytes > 0 && rng.chance(0.3) ? 'b>a' : 'a>b';
            const records = d === 'a>b' ? recordsAB : recordsBA;
            const flow = rng.int(flows);
            impairments.push({ kind: 'corruptCiphertext', record: rng.int(records), byte: rng.int(8), dir: d, flow });
            corrupted.add(`${flow} ${d}`);
            break;
          }
          case 6: impairments.push({ kind: 'linkDown', side: pick(rng, ['a', 'b'] as const), atUs: rng.int(20_000), forUs: rng.int(30_000), netdevDown: rng.chance(0.8) }); break;
          case 7: impairments.push({ kind: 'tableFull', side: pick(rng, ['a', 'b'] as const), capacity: rng.int(3) }); break;
          default: impairments.push({
            kind: 'random', loss: rng.int(8) / 100, reorder: rng.int(8) / 100, duplicate: rng.int(8) / 100, ackLoss: rng.int(5) / 100,
            dir: pick(rng, ['a>b', 'b>a', 'both'] as const),
          });
        }
      }
      const driver = pick(rng, [
        { name: 'mlx5', ...(rng.chance(0.3) ? { psvDelayUs: rng.int(500) } : {}), ...(rng.chance(0.1) ? { psvNeverAnswers: true, psvTimeoutUs: rng.int(2000) } : {}) },
        { name: 'nfp', rxResyncType: 'driver_req' },
        { name: 'nfp', rxResyncType: 'core_next_hint' },
        // A driver module (the nfp driver under its own name, knobs through `options`).
        { name: 'module', path: 'fuzz-nfp', options: { rxResyncType: rng.chance(0.5) ? 'driver_req' : 'core_next_hint' } },
      ]);
      const input = {
        name: 'fuzz', seed: rng.int(0xffff_ffff), driver,
        ...(rng.chance(0.5) ? { device: {
          ...(rng.chance(0.3) ? { tso: rng.chance(0.5) } : {}),
          ...(rng.chance(0.5) ? { scan: { confirmHeaders: 1 + rng.int(4), rerequestEveryRecords: 1 + rng.int(8), restartScanAfterRequests: 1 + rng.int(4), skipOneMaxRecord: rng.chance(0.5) } } : {}),
        } } : {}),
        ...(rng.chance(0.5) ? { tcp: { mss: 200 + rng.int(1300), rcvBuf: 4000 + rng.int(61_000), tso: rng.chance(0.5) } } : {}),
        traffic: {
          keyBits: rng.chance(0.5) ? 128 : 256, writes, reverseBytes, flows, ...(rng.chance(0.25) ? { tls13: true } : {}),
          ...(rng.chance(0.2) ? { isnA: 0xffff_ffff - rng.int(60_000), isnB: 0xffff_ffff - rng.int(60_000) } : {}),
        },
        impairments,
        ...(rng.chance(0.2) ? { faults: [{ kind: pick(rng, FAULT_KINDS), side: pick(rng, ['a', 'b', 'both'] as const), first: rng.int(3), every: 1 + rng.int(3) }] } : {}),
        expect: { delivery: corrupted.size ? 'badTagRejected' : 'exact', recovered: false },
      };
      let result: ReturnType<typeof runScenarioObject>;
      const timelines = new Map<string, WorldTimeline>();
      try {
        result = runScenarioObject(validateScenario(input), {
          drivers: { 'fuzz-nfp': { name: 'fuzz-nfp', probe: nfpDriver.probe } },
          onTimeline: (profile, tl) => timelines.set(profile, tl),
        });
      } catch (e) {
        return typed(e, 'scenario_run');
      }
      // tlsnic run --timeline draws every packet the devices counted: as many decrypted RX bars on a side as its
      // rx_tls_decrypted_packets, encrypted TX bars as its tx_tls_encrypted_packets, and marks in time order.
      for (const run of result.runs) {
        const tl = timelines.get(run.profile);
        if (!tl) throw new FuzzFailure(`scenario_run: ${run.profile}: no timeline recorded; ${JSON.stringify(input)}`);
        for (const side of ['a', 'b'] as const) {
          // A direction's TX marks are its sender's device, its RX marks its receiver's.
          const sideOf = (d: WorldTimelineDir, m: TimelineMark) => ((m.dir === 'tx') === (d.dir === 'a>b') ? 'a' : 'b');
          const marks = tl.dirs.flatMap((d) => d.marks.filter((m) => sideOf(d, m) === side));
          const bars = (dir: 'rx' | 'tx', mark: string) => marks.filter((m) => m.dir === dir && m.mark === mark).length;
          const e = run.hosts[side].ethtool;
          if (bars('rx', 'decrypted') !== e.rx_tls_decrypted_packets || bars('tx', 'encrypted') !== e.tx_tls_encrypted_packets) {
            throw new FuzzFailure(`scenario_run: ${run.profile}: timeline of ${side} draws ${bars('rx', 'decrypted')} decrypted / ${bars('tx', 'encrypted')} encrypted packets, ethtool counts ${e.rx_tls_decrypted_packets} / ${e.tx_tls_encrypted_packets}; ${JSON.stringify(input)}`);
          }
        }
        for (const d of tl.dirs) {
          for (let i = 1; i < d.marks.length; i++) {
            if (d.marks[i]!.t < d.marks[i - 1]!.t) throw new FuzzFailure(`scenario_run: ${run.profile}: timeline marks of ${d.flow} ${d.dir} out of time order; ${JSON.stringify(input)}`);
          }
        }
      }
      // The runner checks one delivery rule for every flow: with a corruption, badTagRejected; the flows without
      // one are checked here. A driver fault may stall a connection for good (a tls_get_record that always
      // fails drops every retransmission, as it would in the kernel): then a prefix, never a wrong byte.
      const faulty = input.faults !== undefined;
      for (const run of result.runs) {
        for (const f of run.flows) {
          const at = `${run.profile} flow ${f.flow} ${f.dir}: read ${f.bytesRead} of ${f.bytesWritten} bytes, ${f.inOrder ? 'in order' : 'WRONG BYTES'}`;
          if (!f.inOrder) throw new FuzzFailure(`scenario_run: ${at}; ${JSON.stringify(input)}`);
          if (!corrupted.has(`${f.flow} ${f.dir}`) && !faulty && !f.exact) throw new FuzzFailure(`scenario_run: ${at}; ${JSON.stringify(input)}`);
        }
      }
      const excused = (x: string): boolean => {
        if (/never matched/.test(x)) return true;
        const m = /flow (\d+) (a>b|b>a): (.*)$/.exec(x);
        if (!m) return false;
        // A corrupted transmission the random loss dropped is retransmitted intact: no EBADMSG then.
        if (corrupted.has(`${m[1]} ${m[2]}`) && /^(socket error|the reader got)/.test(m[3]!)) return true;
        return faulty && /^(delivery not exact: .* in order$|socket error)/.test(m[3]!);
      };
      const bad = result.failures.filter((x) => !excused(x));
      if (bad.length) throw new FuzzFailure(`scenario_run: ${bad.slice(0, 3).join(' / ')}; ${JSON.stringify(input)}`);
      return 'accepted';
    },
  };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function allTargets(): FuzzTarget[] {
  return [captureTarget(), packetTarget(), recordTarget(), keylogTarget(), cryptoInfoTarget(), scenarioTarget(), replayScenarioTarget(), replayCaptureTarget(), replayQueuesTarget(), scenarioRunTarget()];
}
