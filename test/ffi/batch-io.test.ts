import { afterEach, describe, expect, test } from "bun:test";
import {
  CmsgInfo, ECONNREFUSED, EINVAL, ENOSYS, EOPNOTSUPP, EBADF, RecvBatch, SendBatch, STAT, UdpCapabilities,
  flushSendBatch, libc, newStats, readErrorQueue, receiveBatch, receivedTtlTos, SO_EE_ORIGIN_ICMP,
  SO_EE_ORIGIN_ICMP6, UdpSocketState, type Syscalls,
} from "../../ffi/index.ts";
import { LOOPBACK4, LOOPBACK6, SocketScope, until, waitReadable } from "./helpers.ts";

const scope = new SocketScope();
afterEach(() => scope.closeAll());

function sendAll(batch: SendBatch, stats = newStats()) {
  flushSendBatch(batch, stats);
  return stats;
}

function fill(len: number, seed: number): Uint8Array {
  const a = new Uint8Array(len);
  for (let i = 0; i < len; i++) a[i] = (seed + i) & 0xff;
  return a;
}

describe("recvmmsg on loopback", () => {
  for (const family of [4, 6] as const) {
    test(`one call returns k queued IPv${family} datagrams with lengths, sources, TTL and TOS`, async () => {
      const rx = scope.open(family, { receiveTtlTos: true });
      const txA = scope.open(family);
      const txB = scope.open(family);
      const dst = family === 4 ? LOOPBACK4 : LOOPBACK6;
      const send = new SendBatch(8);
      const lengths = [1, 100, 1400, 7, 0];
      lengths.forEach((len, i) => send.push(i % 2 ? txB.udp : txA.udp, dst, rx.port, fill(len, i), 17 + i, 0x20 + 4 * i));
      const stats = sendAll(send);
      expect(stats[STAT.sendPackets]).toBe(5);

      const batch = new RecvBatch();
      const recvStats = newStats();
      expect(waitReadable(rx.fd)).toBe(true);
      const n = receiveBatch(rx.udp, batch, recvStats);
      expect(n).toBe(5);
      expect(recvStats[STAT.calls]).toBe(1);
      expect(recvStats[STAT.packets]).toBe(5);
      expect(recvStats[STAT.hist5to8]).toBe(1);
      const info = new CmsgInfo();
      for (let i = 0; i < n; i++) {
        expect(batch.length(i)).toBe(lengths[i]!);
        expect(Array.from(batch.datagram(i))).toEqual(Array.from(fill(lengths[i]!, i)));
        expect(batch.sourcePort(i)).toBe(i % 2 ? txB.port : txA.port);
        if (family === 4) expect(batch.sourceIpv4(i)).toBe(0x7f000001);
        else expect(Array.from(batch.sourceIpv6(i))).toEqual(Array.from(LOOPBACK6));
        receivedTtlTos(batch, i, info);
        expect(info.ttl).toBe(17 + i);
        expect(info.tos).toBe(0x20 + 4 * i);
      }
    });
  }

  test("a short batch returns what is queued; an empty socket returns 0 (EAGAIN) and counts wouldblock", async () => {
    const rx = scope.open(4);
    const tx = scope.open(4);
    const batch = new RecvBatch();
    const stats = newStats();
    expect(receiveBatch(rx.udp, batch, stats)).toBe(0);
    expect(stats[STAT.wouldblock]).toBe(1);
    const send = new SendBatch(4);
    for (let i = 0; i < 3; i++) send.push(tx.udp, LOOPBACK4, rx.port, fill(10 + i, i));
    sendAll(send);
    expect(waitReadable(rx.fd)).toBe(true);
    expect(receiveBatch(rx.udp, batch, stats)).toBe(3);
    expect(batch.length(2)).toBe(12);
    expect(receiveBatch(rx.udp, batch, stats)).toBe(0);
    expect(stats[STAT.calls]).toBe(3);
    expect(stats[STAT.wouldblock]).toBe(2);
    expect(stats[STAT.hist3to4]).toBe(1);
  });

  test("at most 16 per call: 20 queued datagrams come as 16 then 4", async () => {
    const rx = scope.open(4);
    const tx = scope.open(4);
    const send = new SendBatch(32);
    for (let i = 0; i < 20; i++) send.push(tx.udp, LOOPBACK4, rx.port, fill(50, i));
    sendAll(send);
    expect(waitReadable(rx.fd)).toBe(true);
    const batch = new RecvBatch();
    const stats = newStats();
    expect(receiveBatch(rx.udp, batch, stats)).toBe(16);
    expect(batch.datagram(15)[0]).toBe(15);
    expect(receiveBatch(rx.udp, batch, stats)).toBe(4);
    expect(batch.datagram(0)[0]).toBe(16);
    expect(stats[STAT.hist9to16]).toBe(1);
  });
});

describe("fallback when the kernel refuses recvmmsg", () => {
  for (const errno of [ENOSYS, EINVAL, EOPNOTSUPP]) {
    test(`errno ${errno} switches recvmmsg off once and the datagrams still arrive by recvmsg`, async () => {
      const caps = new UdpCapabilities({ recvmmsg: true, sendmmsg: true });
      const rx = scope.open(4, {}, caps);
      const tx = scope.open(4);
      const send = new SendBatch(4);
      for (let i = 0; i < 3; i++) send.push(tx.udp, LOOPBACK4, rx.port, fill(20, i));
      sendAll(send);
      expect(waitReadable(rx.fd)).toBe(true);
      let recvmmsgCalls = 0;
      let recvmsgCalls = 0;
      const refusing: Syscalls = {
        ...libc,
        recvmmsg: () => (recvmmsgCalls++, -errno),
        recvmsg: (fd, m, f) => (recvmsgCalls++, libc.recvmsg(fd, m, f)),
      };
      const downgrades: string[] = [];
      caps.onDowngrade = (feature, e) => downgrades.push(`${feature}:${e}`);
      const stats = newStats();
      const batch = new RecvBatch();
      expect(receiveBatch(rx.udp, batch, stats, refusing)).toBe(3);
      expect(caps.recvmmsg).toBe(false);
      expect(downgrades).toEqual([`recvmmsg:${errno}`]);
      expect(stats[STAT.unavailable]).toBe(1);
      expect(recvmsgCalls).toBe(4); // three datagrams, then EAGAIN
      expect(batch.datagram(1)[0]).toBe(1);
      // Later calls go straight to recvmsg.
      expect(receiveBatch(rx.udp, batch, stats, refusing)).toBe(0);
      expect(recvmmsgCalls).toBe(1);
    });
  }

  test("other errors are returned, not a reason to switch recvmmsg off", () => {
    const caps = new UdpCapabilities({ recvmmsg: true, sendmmsg: true });
    const failing: Syscalls = { ...libc, recvmmsg: () => -EBADF };
    expect(receiveBatch(new UdpSocketState(12345, 4, caps), new RecvBatch(), newStats(), failing)).toBe(-EBADF);
    expect(caps.recvmmsg).toBe(true);
  });

  test("a downgrade on shared cells is seen by every engine", () => {
    const cells = UdpCapabilities.sharedCells({ recvmmsg: true, sendmmsg: true });
    const a = new UdpCapabilities({ recvmmsg: true, sendmmsg: true }, cells);
    const b = new UdpCapabilities({ recvmmsg: true, sendmmsg: true }, cells);
    a.disable("recvmmsg", ENOSYS);
    expect(b.recvmmsg).toBe(false);
    expect(b.sendmmsg).toBe(true);
  });
});

describe("sendmmsg", () => {
  test("delivers one batch to several destinations, one call per run of the same socket", async () => {
    const rxs = [scope.open(4), scope.open(4), scope.open(4)];
    const tx = scope.open(4);
    const send = new SendBatch(8);
    rxs.forEach((rx, i) => send.push(tx.udp, LOOPBACK4, rx.port, fill(30 + i, i)));
    let calls = 0;
    const counting: Syscalls = { ...libc, sendmmsg: (fd, v, n, f) => (calls++, libc.sendmmsg(fd, v, n, f)) };
    const stats = newStats();
    flushSendBatch(send, stats, counting);
    expect(calls).toBe(1);
    expect(stats[STAT.sendPackets]).toBe(3);
    expect(send.count).toBe(0);
    const batch = new RecvBatch();
    for (const [i, rx] of rxs.entries()) {
      expect(waitReadable(rx.fd)).toBe(true);
      expect(receiveBatch(rx.udp, batch, newStats())).toBe(1);
      expect(batch.length(0)).toBe(30 + i);
      expect(batch.sourcePort(0)).toBe(tx.port);
    }
  });

  test("a payload that lives in the receive arena is sent in place, without a copy", async () => {
    const rx = scope.open(4);
    const tx = scope.open(4);
    const recv = new RecvBatch(2, 2048);
    recv.payload.set([9, 8, 7, 6, 5], 2048);
    const send = new SendBatch(2, 2048);
    send.borrowFrom(recv.payload, recv.payloadAddress);
    send.push(tx.udp, LOOPBACK4, rx.port, recv.payload.subarray(2049, 2052));
    recv.payload[2050] = 42; // changed after push: proves the kernel reads the arena, not a copy
    sendAll(send);
    expect(waitReadable(rx.fd)).toBe(true);
    const got = new RecvBatch();
    expect(receiveBatch(rx.udp, got, newStats())).toBe(1);
    expect(Array.from(got.datagram(0))).toEqual([8, 42, 6]);
  });

  test("a range of the whole arena view is sent in place (recognised by identity); other ranges are copied", async () => {
    const rx = scope.open(4);
    const tx = scope.open(4);
    const recv = new RecvBatch(2, 2048, 8);
    const send = new SendBatch(4, 2048);
    send.borrowFrom(recv.payload, recv.payloadAddress);
    recv.payload.set([1, 2, 3, 4, 5, 6], 100);
    send.pushRange(tx.udp, LOOPBACK4, rx.port, recv.payload, 101, 3);
    recv.payload[102] = 42; // after push: the kernel reads the arena
    const other = new Uint8Array([7, 8, 9, 10, 11]);
    send.pushRange(tx.udp, LOOPBACK4, rx.port, other, 1, 3);
    other[2] = 0; // after push: this one was copied
    sendAll(send);
    expect(waitReadable(rx.fd)).toBe(true);
    const got = new RecvBatch();
    expect(receiveBatch(rx.udp, got, newStats())).toBe(2);
    expect(Array.from(got.datagram(0))).toEqual([2, 42, 4]);
    expect(Array.from(got.datagram(1))).toEqual([8, 9, 10]);
  });

  test("headroom: the kernel writes each datagram after the room left before it, and the room stays untouched", async () => {
    const rx = scope.open(4);
    const tx = scope.open(4);
    const send = new SendBatch(4);
    send.push(tx.udp, LOOPBACK4, rx.port, fill(20, 1));
    send.push(tx.udp, LOOPBACK4, rx.port, fill(2048, 2)); // fills its slot exactly
    sendAll(send);
    const batch = new RecvBatch(4, 2048, 8);
    batch.payload.fill(0xee);
    expect(waitReadable(rx.fd)).toBe(true);
    expect(receiveBatch(rx.udp, batch, newStats())).toBe(2);
    expect([batch.datagramOffset(0), batch.datagramOffset(1)]).toEqual([8, 2056 + 8]);
    expect(Array.from(batch.datagram(0))).toEqual(Array.from(fill(20, 1)));
    expect(Array.from(batch.datagram(1))).toEqual(Array.from(fill(2048, 2)));
    expect(Array.from(batch.payload.subarray(0, 8))).toEqual(new Array(8).fill(0xee));
    expect(Array.from(batch.payload.subarray(2056, 2064))).toEqual(new Array(8).fill(0xee));
  });

  for (const errno of [ENOSYS, EOPNOTSUPP, EINVAL]) {
    test(`errno ${errno} on the call itself switches sendmmsg off, and every datagram still leaves by sendmsg`, async () => {
      const caps = new UdpCapabilities({ recvmmsg: true, sendmmsg: true });
      const rx = scope.open(4);
      const tx = scope.open(4, {}, caps);
      const send = new SendBatch(8);
      for (let i = 0; i < 4; i++) send.push(tx.udp, LOOPBACK4, rx.port, fill(10, i));
      const stats = newStats();
      flushSendBatch(send, stats, { ...libc, sendmmsg: () => -errno });
      expect(caps.sendmmsg).toBe(false);
      expect(stats[STAT.sendUnavailable]).toBe(1);
      expect(stats[STAT.sendPackets]).toBe(4);
      expect(stats[STAT.sendErrors]).toBe(0);
      expect(waitReadable(rx.fd)).toBe(true);
      expect(receiveBatch(rx.udp, new RecvBatch(), newStats())).toBe(4);
    });
  }

  // sendmmsg reports a failure of entry k as k sent (k > 0), then -errno for it on the next call; at k = 0
  // at once. Either way one refused datagram must not be taken for a kernel without sendmmsg.
  for (const at of [0, 2]) {
    test(`a datagram the kernel refuses (port 0, entry ${at} of 5) is dropped and counted; the others arrive and sendmmsg stays on`, async () => {
      const caps = new UdpCapabilities({ recvmmsg: true, sendmmsg: true });
      const rx = scope.open(4);
      const tx = scope.open(4, {}, caps);
      const send = new SendBatch(8);
      for (let i = 0; i < 5; i++) send.push(tx.udp, LOOPBACK4, i === at ? 0 : rx.port, fill(10, i));
      let batchCalls = 0;
      const counting: Syscalls = { ...libc, sendmmsg: (fd, v, n, f) => (batchCalls++, libc.sendmmsg(fd, v, n, f)) };
      const stats = newStats();
      flushSendBatch(send, stats, counting);
      expect(caps.sendmmsg).toBe(true);
      expect(stats[STAT.sendUnavailable]).toBe(0);
      expect(stats[STAT.sendRefused]).toBe(1);
      expect(stats[STAT.sendErrors]).toBe(1);
      expect(stats[STAT.sendPackets]).toBe(4);
      expect(waitReadable(rx.fd)).toBe(true);
      const got = new RecvBatch();
      expect(receiveBatch(rx.udp, got, newStats())).toBe(4);
      const expected = [0, 1, 2, 3, 4].filter((i) => i !== at);
      expect(Array.from({ length: 4 }, (_, i) => got.datagram(i)[0])).toEqual(expected);
      // The next batch still goes out in one sendmmsg.
      const callsBefore = batchCalls;
      for (let i = 0; i < 3; i++) send.push(tx.udp, LOOPBACK4, rx.port, fill(10, 10 + i));
      flushSendBatch(send, stats, counting);
      expect(batchCalls).toBe(callsBefore + 1);
      expect(waitReadable(rx.fd)).toBe(true);
      expect(receiveBatch(rx.udp, got, newStats())).toBe(3);
    });
  }

  test("a TTL/TOS control message the kernel refuses is dropped and the datagram sent once more without it", async () => {
    const rx = scope.open(4, { receiveTtlTos: true });
    const tx = scope.open(4);
    const send = new SendBatch(4);
    send.push(tx.udp, LOOPBACK4, rx.port, fill(10, 0), 33, 0x10);
    let refusals = 0;
    // A kernel that will not take the control message: EINVAL for the first attempt only.
    const refusingCmsg: Syscalls = { ...libc, sendmsg: (fd, m, f) => (refusals++ === 0 ? -EINVAL : libc.sendmsg(fd, m, f)) };
    const stats = newStats();
    flushSendBatch(send, stats, refusingCmsg);
    expect(stats[STAT.sendPackets]).toBe(1);
    expect(stats[STAT.sendErrors]).toBe(0);
    expect(tx.udp.cmsgRefused).toBe(true);
    expect(waitReadable(rx.fd)).toBe(true);
    const got = new RecvBatch();
    expect(receiveBatch(rx.udp, got, newStats())).toBe(1);
    const info = receivedTtlTos(got, 0, new CmsgInfo());
    expect(info.ttl).not.toBe(33); // the default: the TTL went with the refused control message
    // Later datagrams on that socket go without one, so the kernel is not asked again.
    send.push(tx.udp, LOOPBACK4, rx.port, fill(10, 1), 33, 0x10);
    expect(send.hasControl(0)).toBe(false);
    send.clear();
  });
});

describe("ICMP errors through IP_RECVERR", () => {
  for (const family of [4, 6] as const) {
    test(`port unreachable on IPv${family} surfaces as ECONNREFUSED from the error queue, not a crash`, async () => {
      const closed = scope.open(family);
      const closedPort = closed.port;
      scope.closeAll(); // nobody listens on closedPort now
      const tx = scope.open(family, { receiveErrors: true });
      const dst = family === 4 ? LOOPBACK4 : LOOPBACK6;
      const send = new SendBatch(1);
      send.push(tx.udp, dst, closedPort, fill(8, 0));
      sendAll(send);
      const batch = new RecvBatch();
      const r = await until(() => receiveBatch(tx.udp, batch, newStats()));
      expect(r).toBe(-ECONNREFUSED);
      const info = new CmsgInfo();
      expect(readErrorQueue(tx.udp, batch, info)).toBe(true);
      expect(info.errno).toBe(ECONNREFUSED);
      expect(info.errOrigin).toBe(family === 4 ? SO_EE_ORIGIN_ICMP : SO_EE_ORIGIN_ICMP6);
      expect(batch.sourcePort(0)).toBe(closedPort);
      expect(readErrorQueue(tx.udp, batch, info)).toBe(false);
      expect(tx.udp.caps.recvmmsg).toBe(true);
    });
  }
});

describe("batch reuse", () => {
  test("entries filled by one call are reset before the next: IPv6 sources after IPv4 ones are whole", () => {
    const rx4 = scope.open(4, { receiveTtlTos: true });
    const rx6 = scope.open(6, { receiveTtlTos: true });
    const tx4 = scope.open(4);
    const tx6 = scope.open(6);
    const send = new SendBatch(8);
    for (let i = 0; i < 3; i++) send.push(tx4.udp, LOOPBACK4, rx4.port, fill(10, i));
    for (let i = 0; i < 3; i++) send.push(tx6.udp, LOOPBACK6, rx6.port, fill(10, i));
    sendAll(send);
    const batch = new RecvBatch();
    expect(waitReadable(rx4.fd)).toBe(true);
    expect(receiveBatch(rx4.udp, batch, newStats())).toBe(3);
    // The kernel shrank namelen to 16 on those entries; a 28-byte IPv6 source must still fit.
    expect(waitReadable(rx6.fd)).toBe(true);
    expect(receiveBatch(rx6.udp, batch, newStats())).toBe(3);
    for (let i = 0; i < 3; i++) {
      expect(Array.from(batch.sourceIpv6(i))).toEqual(Array.from(LOOPBACK6));
      expect(batch.sourcePort(i)).toBe(tx6.port);
    }
  });
});
