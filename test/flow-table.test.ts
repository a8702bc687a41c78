// The device's context table against a Map reference: random add/remove/lookup churn, IPv4 and IPv6,
// stable handles, capacity, and lookups straight from packet bytes.
import test from 'ava';
import { nodeBackend } from '../emulator/crypto/index.ts';
import { ENOSPC } from '../emulator/errno.ts';
import { FlowTable, flowKeyHash, type FlowKeyFields } from '../emulator/nic/flow-table.ts';
import { Nic } from '../emulator/nic/nic.ts';
import { TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128 } from '../emulator/tls/crypto-info.ts';
import { Prng } from './helpers/prng.ts';
import { randomInfo } from './helpers/records.ts';

function randomKey(rng: Prng): FlowKeyFields {
  const family = rng.chance(0.5) ? 4 : 6;
  const n = family === 4 ? 4 : 16;
  // Small value ranges so keys collide in every field but one, and hash buckets collide often.
  const addr = () => Uint8Array.from({ length: n }, () => rng.int(0, 2));
  return { dir: rng.chance(0.5) ? 'rx' : 'tx', family, src: addr(), dst: addr(), sport: rng.int(0, 3), dport: rng.int(0, 3) };
}

const text = (k: FlowKeyFields) => `${k.dir}|${k.family}|${k.src.join('.')}|${k.dst.join('.')}|${k.sport}|${k.dport}`;

test('table equals a Map reference under 60000 random adds, removes and lookups', (t) => {
  const rng = new Prng(7);
  const table = new FlowTable<string>(5000);
  const ref = new Map<string, { handle: number; key: FlowKeyFields }>();
  for (let op = 0; op < 60000; op++) {
    const k = randomKey(rng);
    const name = text(k);
    const r = rng.u32() % 3;
    if (r === 0) {
      if (ref.has(name)) {
        t.throws(() => table.add(k, name), { instanceOf: RangeError });
      } else {
        const h = table.add(k, name);
        if (ref.size >= 5000) t.is(h, -1);
        else {
          t.true(h >= 0);
          ref.set(name, { handle: h, key: k });
        }
      }
    } else if (r === 1 && ref.size > 0) {
      const victim = [...ref.values()][rng.u32() % ref.size]!;
      t.is(table.remove(victim.handle), text(victim.key));
      t.is(table.remove(victim.handle), undefined);
      ref.delete(text(victim.key));
    } else {
      const want = ref.get(name);
      const got = table.lookupKey(k);
      if (got !== (want ? want.handle : -1)) return t.fail(`op ${op}: lookup ${name} gave ${got}, want ${want?.handle ?? -1}`);
      // The same lookup from packet bytes, as the RX path does it.
      const pkt = new Uint8Array(40);
      pkt.set(k.src, 3);
      pkt.set(k.dst, 21);
      t.is(table.lookup(k.dir, pkt, 3, 21, k.src.length as 4 | 16, k.sport, k.dport), got);
      if (want) t.is(table.get(got), name);
    }
  }
  t.is(table.size, ref.size);
  t.is([...table.entries()].length, ref.size);
});

test('handles stay stable while other entries come and go', (t) => {
  const table = new FlowTable<number>(100000);
  const keys: FlowKeyFields[] = [];
  for (let i = 0; i < 50000; i++) {
    const src = Uint8Array.of(10, 0, i >> 8, i & 0xff);
    keys.push({ dir: 'rx', family: 4, src, dst: Uint8Array.of(10, 1, 0, 1), sport: 1000 + (i % 7), dport: 443 });
  }
  const handles = keys.map((k, i) => table.add(k, i));
  for (let i = 0; i < keys.length; i += 2) table.remove(handles[i]!); // grow/rehash and tombstones in between
  for (let i = 1; i < keys.length; i += 2) {
    t.is(table.lookupKey(keys[i]!), handles[i]!);
    t.is(table.get(handles[i]!), i);
  }
  for (let i = 0; i < keys.length; i += 2) t.is(table.lookupKey(keys[i]!), -1);
});

test('an IPv4 table keeps no copy of its keys; the first IPv6 entry adds them, and rehashes keep every entry findable', (t) => {
  const table = new FlowTable<number>(8000);
  const v4 = (i: number): FlowKeyFields => ({ dir: i % 2 ? 'tx' : 'rx', family: 4, src: Uint8Array.of(10, 0, i >> 8, i & 0xff), dst: Uint8Array.of(10, 1, 0, 1), sport: 1000 + (i % 5), dport: 443 });
  const v6 = (i: number): FlowKeyFields => ({ dir: i % 2 ? 'tx' : 'rx', family: 6, src: Uint8Array.from({ length: 16 }, (_, b) => (b === 15 ? i & 0xff : b === 14 ? i >> 8 : 0)), dst: new Uint8Array(16).fill(1), sport: 1000 + (i % 5), dport: 443 });
  const h4 = Array.from({ length: 3000 }, (_, i) => table.add(v4(i), i)); // past the first size: grown and rehashed
  const noKeys = table.typedBytes;
  t.is(noKeys, table.bucketBytes + 8000 * 4, 'buckets and one hash per entry of the capacity, no keys');
  const h6 = Array.from({ length: 3000 }, (_, i) => table.add(v6(i), 10000 + i));
  t.is(table.typedBytes, noKeys + 8000 * 40, 'ten key words per entry once an IPv6 entry is in');
  // Remove half of each, then fill the table: live cells and tombstones pass half the cells (16384 for 8000
  // entries), so the table rehashes in place with IPv4 and IPv6 cells in it.
  for (let i = 0; i < 3000; i += 2) {
    table.remove(h4[i]!);
    table.remove(h6[i]!);
  }
  const more = Array.from({ length: 5000 }, (_, i) => table.add(i % 2 ? v4(5000 + i) : v6(5000 + i), 20000 + i));
  t.true(more.every((h) => h >= 0));
  for (let i = 0; i < 3000; i++) {
    t.is(table.lookupKey(v4(i)), i % 2 ? h4[i]! : -1);
    t.is(table.lookupKey(v6(i)), i % 2 ? h6[i]! : -1);
  }
  more.forEach((h, i) => t.is(table.get(table.lookupKey(i % 2 ? v4(5000 + i) : v6(5000 + i))), 20000 + i, `entry ${i}`));
});

test('the NIC refuses a context beyond its capacity with -ENOSPC and takes one again after a removal', (t) => {
  const nic = new Nic({ backend: nodeBackend, profile: { maxContexts: 3 } });
  const rng = new Prng(1);
  const info = randomInfo({ version: TLS_1_2_VERSION, cipherType: TLS_CIPHER_AES_GCM_128, label: '' }, rng);
  const tuple = (port: number) => ({ family: 4 as const, saddr: '10.0.0.1', sport: port, daddr: '10.0.0.2', dport: 443 });
  const hs = [1, 2, 3].map((p) => nic.addContext('rx', { tuple: tuple(p), info, startSeq: 0 }));
  t.true(hs.every((h) => h >= 0));
  t.is(nic.addContext('rx', { tuple: tuple(4), info, startSeq: 0 }), -ENOSPC);
  t.true(nic.delContext(hs[1]!));
  t.true(nic.addContext('rx', { tuple: tuple(4), info, startSeq: 0 }) >= 0);
  t.is(nic.findContext('rx', tuple(1)), hs[0]!);
  t.is(nic.findContext('rx', tuple(2)), -1);
  t.is(nic.counters.rx_tls_ctx, 4);
  t.is(nic.counters.rx_tls_del, 1);
});

test('a NIC with no context memory (maxContexts 0) refuses every context with -ENOSPC', (t) => {
  const nic = new Nic({ backend: nodeBackend, profile: { maxContexts: 0 } });
  const info = randomInfo({ version: TLS_1_2_VERSION, cipherType: TLS_CIPHER_AES_GCM_128, label: 'aes128' }, new Prng(5), 0n);
  const tuple = { family: 4 as const, saddr: '10.0.0.1', sport: 443, daddr: '10.0.0.2', dport: 40000 };
  t.is(nic.addContext('tx', { tuple, info, startSeq: 1 }), -ENOSPC);
  t.is(nic.addContext('rx', { tuple, info, startSeq: 1 }), -ENOSPC);
  t.is(nic.contextCount, 0);
  t.throws(() => new FlowTable(-1), { instanceOf: RangeError });
});

/** Packed header records as lookupBurst() reads them, `stride` bytes apart from `off`: src, dst, sport, dport. */
function packHeaders(keys: FlowKeyFields[], off: number, stride: number): Uint8Array {
  const buf = new Uint8Array(off + keys.length * stride + 5).fill(0xee); // filler bytes around the records
  keys.forEach((k, i) => {
    const p = off + i * stride;
    buf.set(k.src, p);
    buf.set(k.dst, p + k.src.length);
    const q = p + 2 * k.src.length;
    buf.set([k.sport >> 8, k.sport & 0xff, k.dport >> 8, k.dport & 0xff], q);
  });
  return buf;
}

test('lookupBurst gives the handles of a Map reference and of lookup() one by one: IPv4 and IPv6, misses, tombstones, rehashes, bursts of 1..70', (t) => {
  const rng = new Prng(11);
  const table = new FlowTable<string>(6000);
  const ref = new Map<string, number>();
  const pool: FlowKeyFields[] = []; // keys added at some point, some removed since
  const keyOf = (family: 4 | 6): FlowKeyFields => {
    const n = family === 4 ? 4 : 16;
    const addr = () => Uint8Array.from({ length: n }, () => rng.int(0, 3));
    return { dir: rng.chance(0.5) ? 'rx' : 'tx', family, src: addr(), dst: addr(), sport: rng.int(0, 3) << 8 | rng.int(0, 255), dport: rng.int(0, 3) };
  };
  const addSome = (count: number) => {
    for (let i = 0; i < count; i++) {
      const k = keyOf(rng.chance(0.5) ? 4 : 6);
      if (ref.has(text(k))) continue;
      const h = table.add(k, text(k));
      t.true(h >= 0);
      ref.set(text(k), h);
      pool.push(k);
    }
  };
  const removeSome = (fraction: number) => {
    for (const [name, h] of [...ref]) {
      if (!rng.chance(fraction)) continue;
      t.is(table.remove(h), name);
      ref.delete(name);
    }
  };
  let hits = 0;
  let misses = 0;
  const check = (stage: string) => {
    for (const family of [4, 6] as const) {
      for (const dir of ['rx', 'tx'] as const) {
        // Added keys (live or removed) and fresh ones, looked up in this direction: hits and misses both.
        const added = pool.filter((k) => k.family === family && k.dir === dir);
        const keys = Array.from({ length: 300 }, () => (rng.chance(0.7) ? added[rng.u32() % added.length]! : { ...keyOf(family), dir }));
        const len = family === 4 ? 4 : 16;
        const stride = 2 * len + 4 + 3;
        const hdrs = packHeaders(keys, 5, stride);
        const want = keys.map((k) => ref.get(text(k)) ?? -1);
        for (const w of want) w < 0 ? misses++ : hits++;
        // lookup() one by one agrees with the reference (the burst must equal both).
        keys.forEach((k, i) => {
          const p = 5 + i * stride;
          const one = table.lookup(dir, hdrs, p, p + len, len, (hdrs[p + 2 * len]! << 8) | hdrs[p + 2 * len + 1]!, (hdrs[p + 2 * len + 2]! << 8) | hdrs[p + 2 * len + 3]!);
          if (one !== want[i]) t.fail(`${stage}: lookup of ${text(k)} gave ${one}, want ${want[i]}`);
        });
        const out = new Int32Array(keys.length + 4);
        for (let size = 1; size <= 70; size++) {
          const first = (size * 37) % (keys.length - size);
          out.fill(-7);
          table.lookupBurst(dir, len, hdrs, 5 + first * stride, stride, size, out, 2);
          const got = [...out];
          const exp = [-7, -7, ...want.slice(first, first + size), ...Array<number>(out.length - size - 2).fill(-7)];
          if (got.join() !== exp.join()) return t.fail(`${stage}: IPv${family} ${dir} burst of ${size} from packet ${first}: got ${got.join()}, want ${exp.join()}`);
        }
        // The whole list in one burst, far longer than the table's internal batch.
        const all = new Int32Array(keys.length);
        table.lookupBurst(dir, len, hdrs, 5, stride, keys.length, all);
        t.deepEqual([...all], want, `${stage}: IPv${family} ${dir} burst of ${keys.length}`);
      }
    }
  };
  const slotsOf = () => (table as unknown as { slots: Int32Array }).slots;
  addSome(900);
  check('small table');
  let before = slotsOf();
  addSome(3000); // past the first 1024 entries: grows to the full capacity
  t.not(slotsOf(), before, 'the table was rehashed (grown)');
  check('after growing');
  removeSome(0.4);
  check('with tombstones');
  before = slotsOf();
  const length = before.length;
  for (let round = 0; slotsOf() === before; round++) { // churn until a rehash cleans the tombstones up in place
    if (round > 100) return t.fail('no rehash after 100 rounds of churn');
    addSome(300);
    removeSome(0.15);
  }
  t.is(slotsOf().length, length, 'cleaned up in place, not grown');
  check('after a clean-up rehash');
  t.true(hits > 1000 && misses > 1000, `hits ${hits}, misses ${misses}`);
});

/** Every way the table finds a key: by fields, from packet bytes one by one, and in a burst. */
function lookupAllWays(table: FlowTable<string>, k: FlowKeyFields): number[] {
  const len = k.src.length as 4 | 16;
  const hdrs = packHeaders([k], 3, 2 * len + 4);
  const burst = new Int32Array(1);
  table.lookupBurst(k.dir, len, hdrs, 3, 2 * len + 4, 1, burst);
  return [table.lookupKey(k), table.lookup(k.dir, hdrs, 3, 3 + len, len, k.sport, k.dport), burst[0]!];
}

test('IPv6 keys with the same 32-bit hash and ports are told apart by their full key', (t) => {
  // IPv6 cells hold the key's hash, not the key: two keys with equal hashes must still get their own handles.
  // Birthday search: ~1.5e5 random keys give a pair with equal hashes with probability ~0.93; the seed is fixed.
  const rng = new Prng(3);
  const seen = new Map<number, FlowKeyFields>();
  let pair: [FlowKeyFields, FlowKeyFields] | undefined;
  for (let i = 0; i < 400_000 && !pair; i++) {
    const k: FlowKeyFields = { dir: 'rx', family: 6, src: Uint8Array.from({ length: 16 }, () => rng.int(0, 255)), dst: new Uint8Array(16), sport: 443, dport: 50000 };
    const h = flowKeyHash(k);
    const other = seen.get(h);
    if (other) pair = [other, k];
    else seen.set(h, k);
  }
  if (!pair) return t.fail('no two keys with equal hashes in 400000');
  const [a, b] = pair;
  t.is(flowKeyHash(a), flowKeyHash(b));
  const table = new FlowTable<string>(16);
  const ha = table.add(a, 'a');
  t.is(lookupAllWays(table, b).join(), '-1,-1,-1', 'a key with the same hash is not found before it is added');
  const hb = table.add(b, 'b');
  t.not(ha, hb);
  t.is(lookupAllWays(table, a).join(), [ha, ha, ha].join());
  t.is(lookupAllWays(table, b).join(), [hb, hb, hb].join());
  t.is(table.remove(ha), 'a');
  t.is(lookupAllWays(table, a).join(), '-1,-1,-1');
  t.is(lookupAllWays(table, b).join(), [hb, hb, hb].join());
});

test('keys sharing one home bucket spill into the next buckets and stay findable through removals', (t) => {
  const table = new FlowTable<string>(1000);
  const slots = () => (table as unknown as { slots: Int32Array }).slots;
  // The table starts with 2048 cells, four to a 64-byte bucket: 512 buckets, home bucket = hash & 511.
  t.is(slots().length, 2048 * 4);
  const rng = new Prng(5);
  const keys: FlowKeyFields[] = [];
  let home = -1;
  while (keys.length < 14) {
    const k: FlowKeyFields = { dir: rng.chance(0.5) ? 'rx' : 'tx', family: 4, src: Uint8Array.from({ length: 4 }, () => rng.int(0, 255)), dst: Uint8Array.of(10, 0, 0, 1), sport: rng.int(1, 65535), dport: 443 };
    const b = flowKeyHash(k) & 511;
    if (home < 0) home = b;
    if (b === home) keys.push(k);
  }
  const handles = keys.map((k) => table.add(k, text(k)));
  // 14 keys from one home bucket fill it and three more; every one found every way.
  keys.forEach((k, i) => t.is(lookupAllWays(table, k).join(), [handles[i], handles[i], handles[i]].join()));
  // Remove the first five (tombstones at the head of the probe run); the rest are still found.
  for (let i = 0; i < 5; i++) t.is(table.remove(handles[i]!), text(keys[i]!));
  keys.forEach((k, i) => {
    const want = i < 5 ? -1 : handles[i]!;
    t.is(lookupAllWays(table, k).join(), [want, want, want].join(), `key ${i}`);
  });
  // Added again, they reuse the tombstones and are found again; the others keep their handles.
  const again = keys.slice(0, 5).map((k) => table.add(k, text(k)));
  keys.forEach((k, i) => {
    const want = i < 5 ? again[i]! : handles[i]!;
    t.is(lookupAllWays(table, k).join(), [want, want, want].join(), `key ${i} after re-adding`);
  });
  t.is(slots().length, 2048 * 4, 'no rehash on the way');
});
