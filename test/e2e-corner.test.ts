// SPEC section 8 through the full path (two hosts, NICs, reference drivers, TLS stacks, link): one test per
// corner case, each asserting exact application bytes, the wire against software TLS (no placeholder leaks),
// and the counters and driver calls the case is about.
import test, { type ExecutionContext } from 'ava';
import { EBADMSG, ENOSPC } from '../driver-api/ops.ts';
import { concatBytes } from '../emulator/bytes.ts';
import { Rng } from '../driver-api/host/rng.ts';
import { seqAdd, seqDiff } from '../emulator/wire/seq.ts';
import { TcpSegmentView } from '../emulator/wire/packet.ts';
import {
  assertDelivery, assertWire, byOffset, callSummary, closeBoth, connectTls, expectedStream, fallbackBytesFrom, makeWorld,
  placeholderHits, randomWrites, recordOffsets, resyncAfterDel, runIdle, sha256, totalLength, type ConnOptions, type DriverName, type E2eConn,
  type E2eOptions, type E2eWorld,
} from './helpers/e2e.ts';

const DRIVERS: readonly DriverName[] = ['mlx5', 'nfp'];

/** Writes both ways, built before the world so scripted impairments can find record offsets in them. */
function writes(seed: number, a = 200_000, b = 120_000) {
  const rng = new Rng(seed).fork('writes');
  return { writesA: randomWrites(rng, a), writesB: randomWrites(rng, b) };
}

function run(opts: E2eOptions, conn: ConnOptions): { w: E2eWorld; c: E2eConn } {
  const w = makeWorld(opts);
  const c = connectTls(w, conn);
  runIdle(w);
  return { w, c };
}

/** Exact bytes both ways, the wire equals software TLS, no placeholder, no decrypt errors. */
function assertExact(t: ExecutionContext, w: E2eWorld, c: E2eConn): void {
  assertDelivery(t, c);
  assertWire(t, w, c.ab);
  assertWire(t, w, c.ba);
  for (const h of [w.a, w.b]) t.is(h.stack.tlsStat.TlsDecryptError, 0, `${h.side}: TlsDecryptError`);
}

for (const driver of DRIVERS) {
  test(`${driver}: device down mid-stream -> TX continues in SW, RX degraded, tls_dev_del once per direction, no resync after it`, (t) => {
    const wr = writes(1, 400_000, 300_000);
    const w = makeWorld({ driver, keyBits: 128, seed: 5, loss: 0.02 });
    let encAtDown = -1;
    let wireAtDown = -1;
    const c = connectTls(w, {
      ...wr,
      onInstalled: () => {
        w.sim.schedule(800, () => {
          // NETDEV_DOWN on A: the link drops, the stack tears offload down, the link comes back later.
          w.a.nic.setLink(false);
          w.a.stack.netdevDown(w.a.netdev);
          encAtDown = w.a.nic.counters.tx_tls_encrypted_bytes;
          wireAtDown = w.link.log.length;
          w.sim.schedule(3000, () => w.a.nic.setLink(true));
        });
      },
    });
    runIdle(w);
    assertExact(t, w, c);
    t.true(encAtDown > 0, 'the device encrypted before going down');
    t.true(w.link.log.slice(wireAtDown).some((e) => e.dir === 'a>b' && e.len > 200), 'A sent data after the device went down');
    t.is(w.a.nic.counters.tx_tls_encrypted_bytes, encAtDown, 'no device encryption after NETDEV_DOWN');
    t.true(c.client.rxDegraded);
    t.is(c.client.txMode, 'hw', 'tx_conf stays TLS_HW (kernel: gauges unchanged)');
    const a0 = callSummary(w.a).filter((s) => s.startsWith('del'));
    t.deepEqual(a0, ['del tx', 'del rx']);
    t.is(w.a.nic.contextCount, 0, 'both contexts released');
    closeBoth(w, c);
    t.deepEqual(callSummary(w.a).filter((s) => s.startsWith('del')), ['del tx', 'del rx'], 'close does not delete again');
    t.is(resyncAfterDel(w.a), 0);
    const downAt = w.a.stack.callLog.findIndex((x) => x.op === 'tls_dev_del');
    t.is(w.a.stack.callLog.slice(downAt).filter((x) => x.op === 'tls_dev_resync').length, 0);
    // B was unaffected: its offload stayed up until close.
    t.deepEqual(callSummary(w.b).filter((s) => !s.startsWith('resync')), ['add rx 0', 'add tx 0', 'del rx', 'del tx']);
  });

  test(`${driver}: retransmit of pre-offload handshake bytes leaves untouched and the peer reads it right`, (t) => {
    const wr = writes(2);
    // Drop B's first handshake segment once: B installs TLS_TX right after queueing its flight, so TCP
    // retransmits those bytes with offload on, from before start_offload_tcp_sn.
    const { w, c } = run({ driver, keyBits: 256, seed: 6, impair: byOffset('b>a', (off, _len, copy) => (off === 0 && copy === 0 ? 'drop' : 'pass')) }, { ...wr, hsB: 4000 });
    assertExact(t, w, c);
    const n = w.b.nic.counters;
    t.true(w.b.host.counters.RetransSegs >= 1);
    t.true(n.tx_tls_ooo >= 1, 'the retransmit reached the driver out of order');
    if (driver === 'mlx5') {
      t.true(n.tx_tls_skip_no_sync_data >= 1, 'mlx5: sent as is (tx_tls_skip_no_sync_data)');
    } else {
      // nfp: the SW fallback copied the pre-offload bytes as they are; none of it counts as TLS.
      t.true(w.b.fallback.length >= 1);
      t.is(fallbackBytesFrom(w.b, c.ba, 0) - fallbackBytesFrom(w.b, c.ba, c.ba.handshake.length) > 0, true);
    }
    t.is(n.tx_tls_drop_no_sync_data, 0);
    t.is(n.tx_tls_drop_bypass_req, 0);
  });

  test(`${driver}: retransmit of a record already ACKed when it reaches the driver is dropped (tx_tls_drop_no_sync_data)`, (t) => {
    const wr = writes(3);
    const rec = recordOffsets(517, wr.writesA);
    const target = rec[4]! + 3000; // a segment in the middle of record 4
    let targetSeq = -1;
    let held = 0;
    const v = new TcpSegmentView();
    const w = makeWorld({
      driver, keyBits: 128, seed: 7,
      // The original is late (reordered): later segments make B send dup ACKs, A fast-retransmits.
      impair: byOffset('a>b', (off, len, copy) => (copy === 0 && off <= target && target < off + len ? { delayUs: 2000 } : 'pass')),
      // The retransmit waits in the qdisc until the late original has been ACKed and the record cleaned.
      xmitHook: {
        a: (skb, send) => {
          if (v.parse(skb.data) === 'tcp' && v.seq === targetSeq && held++ === 1) {
            w.sim.schedule(6000, () => send(skb));
            return;
          }
          send(skb);
        },
      },
    });
    const c = connectTls(w, wr);
    // ISN is known once the SYN left: find the target segment's seq from it.
    w.sim.schedule(1, () => {
      const syn = w.link.log.find((e) => e.dir === 'a>b');
      v.parse(syn!.frame!);
      const isn1 = seqAdd(v.seq, 1);
      // Segments are MSS-sized from the fenced TLS start: the target is the one holding `target`.
      const mss = 1460;
      const firstTls = 517;
      targetSeq = seqAdd(isn1, firstTls + Math.floor((target - firstTls) / mss) * mss);
    });
    runIdle(w);
    assertExact(t, w, c);
    t.true(held >= 2, 'the target segment was retransmitted');
    t.true(w.a.nic.counters.tx_tls_drop_no_sync_data >= 1, 'the stale retransmit was dropped, never sent in plaintext');
    t.true(w.a.nic.counters.tx_tls_ooo >= 1);
  });
}

test('mlx5: async resync answered late (GET_PSV after more headers were logged): resync names the matched record', (t) => {
  const wr = writes(4, 400_000, 100_000);
  const rec = recordOffsets(517, wr.writesA);
  const lose = rec[3]!;
  const { w, c } = run({
    // GET_PSV takes 600 µs: the device asks again about later headers meanwhile, and the stack keeps parsing.
    driver: 'mlx5', keyBits: 128, seed: 8, driverOpts: { b: { psvDelayUs: 600 } },
    impair: byOffset('a>b', (off, len, copy) => (copy === 0 && off <= lose && lose < off + len ? 'drop' : 'pass')),
  }, wr);
  assertExact(t, w, c);
  const n = w.b.nic.counters;
  t.true(n.rx_tls_resync_req_start >= 1, 'device asked for a resync');
  t.true(n.rx_tls_resync_req_end >= 1, 'GET_PSV answered');
  t.true(n.rx_tls_resync_req_skip >= 1, 'a later GET_PSV found the device in sync');
  t.true(n.rx_tls_resync_req_start >= 2, 'the answer came late: the device had asked again meanwhile');
  // Each request queued the resync work again and so posted its own GET_PSV (nothing limits those in flight);
  // each completion is an end, or a skip once the device is no longer tracking (6.18: with a cancel). Here the
  // first answer resyncs the device; the GET_PSVs posted meanwhile find it in sync.
  t.is(n.rx_tls_resync_req_end + n.rx_tls_resync_req_skip, n.rx_tls_resync_req_start);
  const exp = expectedStream(c.ab);
  const rs = w.b.stack.callLog.filter((x) => x.op === 'tls_dev_resync' && x.dir === 'rx');
  t.true(rs.length >= 1);
  for (const r of rs) {
    const i = exp.starts.findIndex(([off]) => seqAdd(c.ab.isn1, off) === r.seq);
    t.true(i >= 0, `resync seq ${r.seq} is a record start`);
    t.is(r.rcdSn, exp.starts[i]![1], 'record number of the matched record');
  }
  t.true(n.rx_tls_resync_res_ok >= 1);
  t.true(n.rx_tls_decrypted_packets > 0);
});

test('mlx5: device never answers the async resync: cancelled, RX continues in SW, data exact', (t) => {
  const wr = writes(5, 400_000, 100_000);
  const rec = recordOffsets(517, wr.writesA);
  const lose = rec[3]!;
  const { w, c } = run({
    driver: 'mlx5', keyBits: 256, seed: 9, driverOpts: { b: { psvNeverAnswers: true, psvTimeoutUs: 500 } },
    impair: byOffset('a>b', (off, len, copy) => (copy === 0 && off <= lose && lose < off + len ? 'drop' : 'pass')),
  }, wr);
  assertExact(t, w, c);
  const n = w.b.nic.counters;
  t.true(n.rx_tls_resync_req_start >= 1);
  t.true(n.rx_tls_resync_req_skip >= 1, 'request cancelled');
  t.is(n.rx_tls_resync_req_end, 0);
  t.is(w.b.stack.callLog.filter((x) => x.op === 'tls_dev_resync').length, 0, 'no tls_dev_resync without an answer');
  closeBoth(w, c);
  t.is(resyncAfterDel(w.b), 0);
});

for (const driver of DRIVERS) {
  test(`${driver}: a bad TCP checksum -> the device does no TLS on it, TCP drops it, the retransmit fixes it`, (t) => {
    const wr = writes(6);
    const rec = recordOffsets(517, wr.writesA);
    const at = rec[2]! + 5000;
    const { w, c } = run({
      driver, keyBits: 128, seed: 10,
      impair: byOffset('a>b', (off, len, copy) => (copy === 0 && off <= at && at < off + len
        ? { corrupt: (f: Uint8Array) => { f[f.length - 100] = f[f.length - 100]! ^ 0x10; } }
        : 'pass')),
    }, wr);
    assertExact(t, w, c);
    t.is(w.b.nic.stats.rxBadChecksum, 1, 'the NIC saw the bad checksum');
    t.is(w.b.host.counters.InCsumErrors, 1, 'TCP dropped it');
    t.is(w.b.nic.counters.rx_tls_err, 0, 'no TLS processing on it (no auth failure)');
    t.true(w.a.host.counters.RetransSegs >= 1);
  });

  test(`${driver}: table full -> tls_dev_add -ENOSPC, that direction in SW with the reason, data exact`, (t) => {
    const wr = writes(7);
    const { w, c } = run({ driver, keyBits: 128, seed: 11, nicProfile: { maxContexts: 1 } }, wr);
    assertExact(t, w, c);
    t.deepEqual(callSummary(w.a).slice(0, 2), ['add tx 0', `add rx ${-ENOSPC}`]);
    t.deepEqual(callSummary(w.b).slice(0, 2), ['add rx 0', `add tx ${-ENOSPC}`]);
    t.is(c.client.rxMode, 'sw');
    t.is(c.server.txMode, 'sw');
    t.regex(c.client.rxReason ?? '', /ENOSPC/);
    t.regex(c.server.txReason ?? '', /ENOSPC/);
    t.is(w.a.stack.tlsStat.TlsRxSw, 1);
    t.is(w.b.stack.tlsStat.TlsTxSw, 1);
    t.is(w.b.nic.counters.tx_tls_encrypted_packets, 0);
    t.true(w.a.nic.counters.tx_tls_encrypted_packets > 0);
    closeBoth(w, c);
    t.deepEqual(callSummary(w.a).filter((s) => s.startsWith('del')), ['del tx'], 'only the added direction is deleted');
  });

  test(`${driver}: TX checksum offload off -> TLS TX offload off for new connections only`, (t) => {
    const w = makeWorld({ driver, keyBits: 128, seed: 12 });
    const wr1 = writes(8, 100_000, 50_000);
    const c1 = connectTls(w, wr1);
    runIdle(w);
    t.is(c1.client.txMode, 'hw');
    // ethtool -K tx off on A: netdev_fix_features drops tls-hw-tx-offload for what comes next.
    w.a.netdev.features.txChecksumOffload = false;
    const wr2 = writes(9, 100_000, 50_000);
    const c2 = connectTls(w, { ...wr2, port: 4434 });
    // The old connection keeps sending through the device.
    const encBefore = w.a.nic.counters.tx_tls_encrypted_bytes;
    c1.write('a', new Rng(99).bytes(40_000));
    runIdle(w);
    assertExact(t, w, c1);
    assertExact(t, w, c2);
    t.is(c1.client.txMode, 'hw');
    t.is(c2.client.txMode, 'sw');
    t.regex(c2.client.txReason ?? '', /checksum/);
    t.is(c2.client.rxMode, 'hw', 'RX offload does not depend on TX checksum offload');
    t.true(w.a.nic.counters.tx_tls_encrypted_bytes > encBefore, 'the old connection still offloads');
    t.is(w.a.stack.tlsStat.TlsTxDevice, 1);
    t.is(w.a.stack.tlsStat.TlsTxSw, 1);
  });
}

test('tag placeholder never leaks: heavy loss and reorder, both drivers, every record tag on the wire is the SW tag', (t) => {
  for (const driver of DRIVERS) {
    for (const seed of [21, 22, 23]) {
      const wr = writes(seed, 150_000, 150_000);
      const { w, c } = run({ driver, keyBits: seed % 2 ? 128 : 256, seed, loss: 0.08, reorder: 0.05 }, wr);
      assertExact(t, w, c); // includes every tag = software tag, and a scan of every frame for the placeholder
      t.is(placeholderHits(w, 'a>b') + placeholderHits(w, 'b>a'), 0);
      t.true(w.link.log.every((e) => e.frame !== undefined));
    }
  }
});

// ---- mixed records, a bad tag, zero-copy data mutated before a retransmit ----

for (const driver of DRIVERS) {
  test(`${driver}: a lost non-header segment mid-record -> that record arrives mixed, is re-encrypted and opened in software, no resync`, (t) => {
    // 100 kB writes make 16 KiB records: record 4's bytes span about 12 segments. Lose the first copy of one
    // in its middle (no header in it): the device keeps sync, decrypts the segments around it, and the
    // retransmit arrives behind the device's position, undecrypted.
    const wr = { writesA: [new Rng(50).bytes(100_000), new Rng(51).bytes(100_000)], writesB: [new Rng(52).bytes(5000)] };
    const rec = recordOffsets(517, wr.writesA);
    const mid = rec[4]! + 8000;
    const headers = new Set(rec);
    let lostAt = -1;
    const { w, c } = run({
      driver, keyBits: 128, seed: 50,
      impair: byOffset('a>b', (off, len, copy) => {
        if (copy > 0 || !(off <= mid && mid < off + len)) return 'pass';
        for (let k = off; k < off + len; k++) if (headers.has(k)) return 'pass';
        lostAt = off;
        return 'drop';
      }),
    }, wr);
    assertExact(t, w, c);
    t.true(lostAt > 0, 'a non-header segment was lost');
    const mixed = w.b.events.filter((e) => e.kind === 'device-decrypted' && e.encrypted && e.decrypted);
    // Record 4 (the gap: its tag cannot be checked by the device, so the packet holding its tag goes up
    // undecrypted, all or nothing) and, when that packet also holds record 5's head, record 5.
    const mixedAt = mixed.map((e) => (e.kind === 'device-decrypted' ? seqDiff(e.seq, c.ab.isn1) : -1));
    t.is(mixedAt[0], rec[4]!, 'record 4 arrived part decrypted, part encrypted');
    t.true(mixedAt.length === 1 || (mixedAt.length === 2 && mixedAt[1] === rec[5]), `mixed records at ${mixedAt.join(', ')}`);
    t.is(w.b.stack.callLog.filter((x) => x.op === 'tls_dev_resync').length, 0, 'a lost non-header segment needs no resync');
    t.is(w.b.nic.counters.rx_tls_resync_req_pkt + w.b.nic.counters.rx_tls_resync_req_start, 0);
    t.is(w.b.nic.counters.rx_tls_err, 0);
    const whole = w.b.events.filter((e) => e.kind === 'device-decrypted' && !e.encrypted).length;
    t.is(whole, rec.length - mixed.length, 'every other record fully device-decrypted');
  });

  test(`${driver}: a ciphertext byte flipped on the wire (TCP checksum fixed) -> bad tag: TlsDecryptError, EBADMSG, nothing of that record delivered`, (t) => {
    const wr = writes(60, 150_000, 20_000);
    const rec = recordOffsets(517, wr.writesA);
    const target = rec[3]! + 2000; // inside record 3's ciphertext
    const v = new TcpSegmentView();
    const { w, c } = run({
      driver, keyBits: 256, seed: 60,
      impair: byOffset('a>b', (off, len, copy) => (copy === 0 && off <= target && target < off + len
        ? {
            corrupt: (frame) => {
              v.parse(frame);
              frame[v.payloadOffset + (target - off)]! ^= 0x40;
              v.updateTcpChecksum();
            },
          }
        : 'pass')),
    }, wr);
    const n = w.b.nic.counters;
    t.is(w.b.stack.tlsStat.TlsDecryptError, 1);
    t.is(c.server.error, EBADMSG);
    t.regex(c.server.errorDetail!.message, /failed authentication/);
    // Records 0..2 arrived whole; nothing of record 3 or later reached the application.
    const before = (rec[3]! - 517) - 3 * (5 + 8 + 16);
    t.is(totalLength(c.ab.received), before);
    t.is(sha256(c.ab.received), sha256([concatBytes(wr.writesA).subarray(0, before)]));
    // The device could not authenticate record 3: it handed those bytes up as they arrived, never flagged.
    // What A sent was right (the flip happened on the link), so the wire log equals software TLS.
    assertWire(t, w, c.ab);
    // The device could not authenticate record 3: the packet with the flipped byte went up as it arrived
    // (all or nothing per packet), so software saw record 3 partly encrypted and failed its tag.
    const bad = w.b.events.find((e) => e.kind === 'device-decrypted' && e.seq === seqAdd(c.ab.isn1, rec[3]!));
    t.truthy(bad);
    t.true(bad!.kind === 'device-decrypted' && bad!.encrypted);
    t.is(n.rx_tls_err, 1, 'the device counted one failed authentication');
    t.deepEqual(callSummary(w.b), ['add rx 0', 'add tx 0'], 'a bad tag is not a sync problem: no resync');
    t.true(n.rx_tls_decrypted_packets > 0);
    // The other direction is unaffected.
    t.is(sha256(c.ba.received), sha256(c.ba.writes));
    t.is(w.a.stack.tlsStat.TlsDecryptError, 0);
  });

  test(`${driver}: sendfile with TLS_TX_ZEROCOPY_RO, file changed before a retransmit -> the peer sees a bad tag`, (t) => {
    // One 16 KiB record sent zero-copy. Its segment at +6000 loses its first copy; before the retransmit
    // the application rewrites those bytes in the page. The retransmit encrypts what the page holds now,
    // under a tag the device computed over the old bytes: the peer must fail the record, not deliver it.
    const file = new Rng(70).bytes(16384);
    const original = file.slice();
    let pages: Uint8Array[] = [];
    const target = 517 + 5 + 8 + 6000;
    let dropped = 0;
    const w = makeWorld({
      driver, keyBits: 128, seed: 70,
      impair: byOffset('a>b', (off, len, copy) => {
        if (copy === 0 && off <= target && target < off + len) {
          dropped++;
          // The segment left the host; now the file changes under it (before any retransmit).
          w.sim.schedule(1, () => pages[0]!.fill(0x5a, 6000 - 100, 6000 + 100));
          return 'drop';
        }
        return 'pass';
      }),
    });
    const c = connectTls(w, {
      onInstalled: () => w.sim.schedule(100, () => {
        pages = c.client.sendfile(file);
      }),
    });
    runIdle(w);
    t.is(dropped, 1);
    t.is(pages.length, 1);
    t.is(c.client.txMode, 'hw');
    t.notDeepEqual(pages[0], original, 'the page changed');
    t.is(w.b.stack.tlsStat.TlsDecryptError, 1, 'the peer failed the record');
    t.is(c.server.error, EBADMSG);
    t.is(totalLength(c.ab.received), 0, 'not a byte of the mutated record was delivered');
    t.deepEqual(callSummary(w.a), ['add tx 0', 'add rx 0'], 'the sender made no resync: its device did what it was told');
    t.true(w.a.nic.counters.tx_tls_ooo >= 1, 'the retransmit went through the out-of-order path');
    // Without zero-copy the same mutation is harmless: the record was copied at send time.
    const copyOfFile = original.slice();
    const w2 = makeWorld({
      driver, keyBits: 128, seed: 70,
      impair: byOffset('a>b', (off, len, copy) => {
        if (copy === 0 && off <= target && target < off + len) {
          w2.sim.schedule(1, () => copyOfFile.fill(0x5a, 6000 - 100, 6000 + 100));
          return 'drop';
        }
        return 'pass';
      }),
    });
    const c2 = connectTls(w2, { onInstalled: () => w2.sim.schedule(100, () => c2.write('a', copyOfFile)) });
    runIdle(w2);
    t.is(c2.server.error, null);
    t.is(sha256(c2.ab.received), sha256([original]));
  });
}

// tls_sk_proto_close() releases RX at close; the TX context goes at sk_destruct (tls_device_sk_destruct() ->
// tls_device_tx_del_task()), once the socket's FIN is acknowledged: what close() left queued, and its
// retransmissions, still leave through the device, not the software fallback.
for (const driver of DRIVERS) {
  test(`${driver}: close() right after a 200 KB write: the device encrypts all of it; TX tls_dev_del after the FIN is acked`, (t) => {
    const w = makeWorld({ driver, keyBits: 128, seed: 41 });
    const data = new Rng(41).fork('close').bytes(200_000);
    let sndUnaAtClose = 0;
    let writeSeqAtClose = 0;
    const c: E2eConn = connectTls(w, {
      writesA: [data],
      onInstalled: () => w.sim.schedule(0, () => {
        const tcp = c.client.tcp;
        sndUnaAtClose = tcp.sndUna;
        writeSeqAtClose = tcp.writeSeq;
        c.client.close();
      }),
    });
    runIdle(w);
    t.true(seqDiff(writeSeqAtClose, sndUnaAtClose) > 100_000, 'most of the data was still unacknowledged at close()');
    t.is(sha256(c.ab.received), sha256([data]));
    const dels = w.a.stack.callLog.filter((x) => x.op === 'tls_dev_del').map((x) => x.dir);
    t.deepEqual(dels, ['rx', 'tx'], 'RX at close, TX at destruct');
    const { expect, wire } = assertWire(t, w, c.ab);
    t.is(w.a.nic.counters.tx_tls_encrypted_bytes, wire.bytesFrom(expect.tlsStart), 'every TLS byte on the wire encrypted by the device');
    t.is(fallbackBytesFrom(w.a, c.ab, expect.tlsStart), 0);
    t.is(w.a.stack.tlsStat.TlsCurrTxDevice, 0, 'the gauge drops at close');
    t.is(w.a.nic.dumpTable().includes('tx'), false, 'no TX context left');
  });
}
