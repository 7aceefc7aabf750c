import { afterEach, describe, expect, test } from "bun:test";
import {
  CmsgInfo, EINVAL, addressOf, EIO, GSO_REFUSALS_BEFORE_OFF, MMSGHDR, MSGHDR, RecvBatch, SendBatch, STAT, UDP_MAX_SEGMENTS, flushSendBatch,
  groSegmentCount, libc, newStats, receiveBatch, receivedTtlTos, type Syscalls,
} from "../../ffi/index.ts";
import { LOOPBACK4, LOOPBACK6, SocketScope, waitReadable, type TestSocket } from "./helpers.ts";

const scope = new SocketScope();
afterEach(() => scope.closeAll());

function fill(len: number, seed: number): Uint8Array {
  const a = new Uint8Array(len);
  for (let i = 0; i < len; i++) a[i] = (seed * 7 + i) & 0xff;
  return a;
}

/** Every datagram waiting on rx (without GRO: one per entry), as copies. */
function receiveAll(rx: TestSocket, expected: number): Uint8Array[] {
  const batch = new RecvBatch();
  const out: Uint8Array[] = [];
  while (out.length < expected && waitReadable(rx.fd, 1000)) {
    const n = receiveBatch(rx.udp, batch, newStats());
    for (let i = 0; i < n; i++) out.push(batch.datagram(i).slice());
  }
  return out;
}

/** The one message waiting on rx (with GRO: one buffer for a whole burst) and what its cmsgs say. */
function receiveOne(rx: TestSocket): { datagram: Uint8Array; info: CmsgInfo } {
  expect(waitReadable(rx.fd)).toBe(true);
  const batch = new RecvBatch();
  expect(receiveBatch(rx.udp, batch, newStats())).toBe(1);
  return { datagram: batch.datagram(0), info: receivedTtlTos(batch, 0, new CmsgInfo()) };
}

/** A Syscalls whose sendmsg refuses GSO messages (those not in `batch`'s own msghdrs) from `fd` with `errno`. */
function refusingGso(batch: SendBatch, fd: number, errno: number): Syscalls & { refused: number } {
  const sys = Object.create(libc) as Syscalls & { refused: number };
  sys.refused = 0;
  sys.sendmsg = (f, msg, flags) => {
    const address = msg as number;
    const isEntry = address >= batch.vecAddress && address < batch.vecAddress + batch.capacity * MMSGHDR.size;
    if (f === fd && !isEntry) {
      sys.refused++;
      return -errno;
    }
    return libc.sendmsg(f, msg, flags);
  };
  return sys;
}

describe("UDP_SEGMENT send and UDP_GRO receive on loopback", () => {
  // 1200: an RTP-sized video burst; 100: small datagrams, where the cut points are closest together.
  const bursts = [[4, 1200], [6, 1200], [4, 100]] as const;
  for (const [family, size] of bursts) test(`IPv${family}: a GSO burst of 16 x ${size} leaves in one call, arrives as one GRO buffer and is cut every ${size} bytes`, () => {
    const tx = scope.open(family, { gso: true });
    const rx = scope.open(family, { gro: true, receiveTtlTos: true });
    expect(tx.udp.maxGsoSegments).toBe(UDP_MAX_SEGMENTS);
    expect(rx.udp.groSegments).toBe(UDP_MAX_SEGMENTS);
    const send = new SendBatch(64);
    for (let i = 0; i < 16; i++) send.push(tx.udp, family === 4 ? LOOPBACK4 : LOOPBACK6, rx.port, fill(size, i), 33, 0x28);
    const stats = newStats();
    flushSendBatch(send, stats);
    expect(stats[STAT.sendCalls]).toBe(1);
    expect(stats[STAT.gsoSends]).toBe(1);
    expect(stats[STAT.gsoSegments]).toBe(16);
    expect(stats[STAT.sendPackets]).toBe(16);

    const { datagram: whole, info } = receiveOne(rx);
    expect(info.groSize).toBe(size);
    expect(info.ttl).toBe(33); // the run's TTL/TOS rode along with UDP_SEGMENT
    expect(info.tos).toBe(0x28);
    expect(whole.length).toBe(16 * size);
    expect(groSegmentCount(whole.length, info.groSize)).toBe(16);
    for (let k = 0; k < 16; k++) expect(whole.subarray(k * size, (k + 1) * size)).toEqual(fill(size, k));
  });

  test("one datagram on GSO and GRO sockets: its own msghdr without a control message, received without a UDP_GRO one", () => {
    const tx = scope.open(4, { gso: true });
    const rx = scope.open(4, { gro: true, receiveTtlTos: true });
    const send = new SendBatch(64);
    const sent: Array<{ entry: boolean; controlLength: number }> = [];
    const sys = Object.create(libc) as Syscalls;
    sys.sendmsg = (f, msg, flags) => {
      const address = msg as number;
      const entry = address >= send.vecAddress && address < send.vecAddress + send.capacity * MMSGHDR.size;
      sent.push({ entry, controlLength: entry ? send.u32[(address - send.vecAddress + MSGHDR.controllen) >>> 2]! : -1 });
      return libc.sendmsg(f, msg, flags);
    };
    send.push(tx.udp, LOOPBACK4, rx.port, fill(100, 1));
    const stats = newStats();
    flushSendBatch(send, stats, sys);
    expect(sent).toEqual([{ entry: true, controlLength: 0 }]);
    expect(stats[STAT.gsoSends]).toBe(0);
    expect(stats[STAT.sendPackets]).toBe(1);
    const { datagram, info } = receiveOne(rx);
    expect(info.groSize).toBe(0);
    expect(info.ttl).toBeGreaterThan(0); // the TTL/TOS messages still come
    expect(datagram).toEqual(fill(100, 1));
  });

  test("without UDP_GRO the receiver gets the burst as 16 datagrams (the kernel cut it)", () => {
    const tx = scope.open(4, { gso: true });
    const rx = scope.open(4);
    const send = new SendBatch(64);
    for (let i = 0; i < 16; i++) send.push(tx.udp, LOOPBACK4, rx.port, fill(1200, i));
    const stats = newStats();
    flushSendBatch(send, stats);
    expect(stats[STAT.gsoSends]).toBe(1);
    const got = receiveAll(rx, 16);
    expect(got.map((d) => d.length)).toEqual(Array(16).fill(1200));
    got.forEach((d, k) => expect(d).toEqual(fill(1200, k)));
  });

  test("header iovecs: a 4-byte ChannelData header in front of each payload arrives intact, payloads not copied", () => {
    const tx = scope.open(4, { gso: true });
    const rx = scope.open(4, { gro: true });
    // Payloads back to back in one arena, as segments in a GRO buffer: no room before any but the first.
    const arena = new Uint8Array(16 * 1000);
    for (let k = 0; k < 16; k++) arena.set(fill(1000, 100 + k), k * 1000);
    const send = new SendBatch(64);
    send.borrowFrom(arena, addressOf(arena.buffer as ArrayBuffer));
    const header = new Uint8Array(4);
    for (let k = 0; k < 16; k++) {
      header.set([0x40, k, 1000 >> 8, 1000 & 0xff]);
      send.pushWithHeader(tx.udp, LOOPBACK4, rx.port, header, 0, 4, arena, k * 1000, 1000);
    }
    arena.fill(0xee, 0, 4); // the header was copied when queued; the payload is read from the arena at send
    const stats = newStats();
    flushSendBatch(send, stats);
    expect(stats[STAT.gsoSends]).toBe(1);
    expect(stats[STAT.gsoSegments]).toBe(16);
    const { datagram: whole, info } = receiveOne(rx);
    expect(info.groSize).toBe(1004);
    expect(whole.length).toBe(16 * 1004);
    for (let k = 0; k < 16; k++) {
      const d = whole.subarray(k * 1004, (k + 1) * 1004);
      expect(Array.from(d.subarray(0, 4))).toEqual([0x40, k, 1000 >> 8, 1000 & 0xff]);
      const payload = fill(1000, 100 + k);
      if (k === 0) payload.fill(0xee, 0, 4);
      expect(d.subarray(4)).toEqual(payload);
    }
  });

  test("mixed sizes: runs split where the size grows or the destination changes; a shorter last segment ends a run", () => {
    const tx = scope.open(4, { gso: true });
    const rxA = scope.open(4);
    const rxB = scope.open(4);
    const plan: Array<[TestSocket, number]> = [
      ...Array(5).fill(1200).map((n): [TestSocket, number] => [rxA, n]), [rxA, 1000], // run 1: 5 x 1200 + 1000
      [rxA, 1200], [rxA, 1200], [rxA, 1200], [rxA, 800], // run 2: 3 x 1200 + 800
      [rxA, 100], [rxA, 100], // run 3: 2 x 100
      [rxA, 500], [rxA, 600], // 600 > 500: neither forms a run
      [rxB, 300], [rxA, 300], [rxB, 300], // destinations alternate: no run
    ];
    const send = new SendBatch(64);
    plan.forEach(([rx, len], k) => send.push(tx.udp, LOOPBACK4, rx.port, fill(len, k)));
    const stats = newStats();
    flushSendBatch(send, stats);
    expect(stats[STAT.gsoSends]).toBe(3);
    expect(stats[STAT.gsoSegments]).toBe(6 + 4 + 2);
    expect(stats[STAT.sendPackets]).toBe(plan.length);
    for (const rx of [rxA, rxB]) {
      const expected = plan.map(([r, len], k): [TestSocket, Uint8Array] => [r, fill(len, k)]).filter(([r]) => r === rx).map(([, d]) => d);
      const got = receiveAll(rx, expected.length);
      expect(got.map((d) => d.length)).toEqual(expected.map((d) => d.length));
      got.forEach((d, k) => expect(d).toEqual(expected[k]!));
    }
  });

  test("a run stays under 64 KiB: 64 x 1200 leaves as 54 + 10, all in order", () => {
    const tx = scope.open(4, { gso: true });
    const rx = scope.open(4);
    const send = new SendBatch(64);
    for (let k = 0; k < 64; k++) send.push(tx.udp, LOOPBACK4, rx.port, fill(1200, k));
    const stats = newStats();
    flushSendBatch(send, stats);
    expect(stats[STAT.gsoSends]).toBe(2);
    expect(stats[STAT.gsoSegments]).toBe(64);
    expect(stats[STAT.sendErrors]).toBe(0);
    const got = receiveAll(rx, 64);
    expect(got.length).toBe(64);
    got.forEach((d, k) => expect(d).toEqual(fill(1200, k)));
  });
});

describe("GSO refused by the kernel (per socket, never batching off)", () => {
  for (const errno of [EIO, EINVAL]) {
    test(`errno ${errno}: that run goes one by one; after repeated refusals GSO is off for that socket only`, () => {
      const txA = scope.open(4, { gso: true });
      const txB = scope.open(4, { gso: true });
      const rx = scope.open(4);
      const send = new SendBatch(64);
      const sys = refusingGso(send, txA.fd, errno);
      for (let round = 1; round <= GSO_REFUSALS_BEFORE_OFF + 1; round++) {
        for (let k = 0; k < 8; k++) send.push(txA.udp, LOOPBACK4, rx.port, fill(500, round * 100 + k));
        for (let k = 0; k < 8; k++) send.push(txB.udp, LOOPBACK4, rx.port, fill(500, round * 100 + 50 + k));
        const stats = newStats();
        flushSendBatch(send, stats, sys);
        // Every datagram left: A's one by one, B's as one GSO message.
        expect(stats[STAT.sendPackets]).toBe(16);
        expect(stats[STAT.sendErrors]).toBe(0);
        expect(stats[STAT.gsoSends]).toBe(1);
        expect(stats[STAT.gsoRefused]).toBe(round <= GSO_REFUSALS_BEFORE_OFF ? 1 : 0);
        expect(stats[STAT.gsoDisabled]).toBe(round === GSO_REFUSALS_BEFORE_OFF ? 1 : 0);
        expect(txA.udp.maxGsoSegments).toBe(round < GSO_REFUSALS_BEFORE_OFF ? UDP_MAX_SEGMENTS : 1);
        expect(txB.udp.maxGsoSegments).toBe(UDP_MAX_SEGMENTS);
        expect(txA.udp.caps.sendmmsg).toBe(true);
        const got = receiveAll(rx, 16);
        expect(got.length).toBe(16);
        for (let k = 0; k < 8; k++) expect(got).toContainEqual(fill(500, round * 100 + k));
        for (let k = 0; k < 8; k++) expect(got).toContainEqual(fill(500, round * 100 + 50 + k));
      }
      expect(sys.refused).toBe(GSO_REFUSALS_BEFORE_OFF);
    });
  }

  test("one refusal between accepted sends never adds up to switching GSO off", () => {
    const tx = scope.open(4, { gso: true });
    const rx = scope.open(4);
    const send = new SendBatch(64);
    const refusing = refusingGso(send, tx.fd, EIO);
    for (let round = 0; round < GSO_REFUSALS_BEFORE_OFF * 2; round++) {
      for (let k = 0; k < 4; k++) send.push(tx.udp, LOOPBACK4, rx.port, fill(200, k));
      flushSendBatch(send, newStats(), round % 2 === 0 ? refusing : libc);
      expect(receiveAll(rx, 4).length).toBe(4);
    }
    expect(tx.udp.maxGsoSegments).toBe(UDP_MAX_SEGMENTS);
  });
});
