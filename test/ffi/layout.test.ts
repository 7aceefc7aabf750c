import { describe, expect, test } from "bun:test";
import { ptr } from "bun:ffi";
import {
  CMSGHDR, EPOLL_EVENT, IOVEC, MMSGHDR, MSGHDR, RECV_CONTROL_SPACE, SOCKADDR_IN, SOCKADDR_IN6, SOCKADDR_SLOT,
  RecvBatch, SendBatch, cmsgSpace, readPointer, writePointer, libc, check, boundPort, closeSocket,
  sockaddrFamily, sockaddrInAddress, sockaddrIn6Address, sockaddrPort, writeSockaddr, openUdpSocket,
  AF_INET, AF_INET6,
} from "../../ffi/index.ts";
import { LOOPBACK4, LOOPBACK6 } from "./helpers.ts";

describe("struct layouts (Linux x86_64, glibc)", () => {
  test("sizes and offsets match the C ABI", () => {
    expect(SOCKADDR_IN.size).toBe(16);
    expect(SOCKADDR_IN6.size).toBe(28);
    expect(SOCKADDR_IN6.addr).toBe(8);
    expect(IOVEC.size).toBe(16);
    expect([MSGHDR.size, MSGHDR.name, MSGHDR.namelen, MSGHDR.iov, MSGHDR.iovlen, MSGHDR.control, MSGHDR.controllen, MSGHDR.flags])
      .toEqual([56, 0, 8, 16, 24, 32, 40, 48]);
    expect([MMSGHDR.size, MMSGHDR.len]).toEqual([64, 56]);
    expect([CMSGHDR.size, CMSGHDR.data]).toEqual([16, 16]);
    expect(cmsgSpace(4)).toBe(24);
    expect(cmsgSpace(12)).toBe(32); // in_pktinfo
    expect(cmsgSpace(20)).toBe(40); // in6_pktinfo
    expect([EPOLL_EVENT.size, EPOLL_EVENT.data]).toEqual([12, 4]);
    expect(RECV_CONTROL_SPACE).toBe(72);
    expect(SOCKADDR_SLOT).toBeGreaterThanOrEqual(SOCKADDR_IN6.size);
  });

  test("pointers round-trip through u32 halves, above 2^32", () => {
    const u32 = new Uint32Array(4);
    writePointer(u32, 8, 0x7fff_1234_5678);
    expect(readPointer(u32, 8)).toBe(0x7fff_1234_5678);
    expect(u32[2]).toBe(0x1234_5678);
    expect(u32[3]).toBe(0x7fff);
  });

  test("sockaddr_in written by us is what bind(2) and getsockname(2) understand", () => {
    const fd = openUdpSocket({ family: 4, address: LOOPBACK4, port: 0 });
    try {
      const port = boundPort(fd);
      expect(port).toBeGreaterThan(0);
      const name = new Uint8Array(new ArrayBuffer(32));
      const len = new Uint32Array([32]);
      check("getsockname", libc.getsockname(fd, name, len));
      expect(len[0]).toBe(16);
      expect(sockaddrFamily(name, 0)).toBe(AF_INET);
      expect(sockaddrPort(name, 0)).toBe(port);
      expect(sockaddrInAddress(name, 0)).toBe(0x7f000001);
    } finally {
      closeSocket(fd);
    }
  });

  test("sockaddr_in6 written by us is what bind(2) and getsockname(2) understand", () => {
    const fd = openUdpSocket({ family: 6, address: LOOPBACK6, port: 0 });
    try {
      const name = new Uint8Array(new ArrayBuffer(32));
      const len = new Uint32Array([32]);
      check("getsockname", libc.getsockname(fd, name, len));
      expect(len[0]).toBe(28);
      expect(sockaddrFamily(name, 0)).toBe(AF_INET6);
      expect(Array.from(sockaddrIn6Address(name, 0))).toEqual(Array.from(LOOPBACK6));
      expect(sockaddrPort(name, 0)).toBe(boundPort(fd));
    } finally {
      closeSocket(fd);
    }
  });

  test("writeSockaddr encodes port big-endian and family little-endian", () => {
    const b = new Uint8Array(32);
    expect(writeSockaddr(b, 0, new Uint8Array([10, 1, 2, 3]), 0x1234)).toBe(16);
    expect(Array.from(b.subarray(0, 8))).toEqual([2, 0, 0x12, 0x34, 10, 1, 2, 3]);
  });
});

describe("batch buffers never move", () => {
  test("the addresses written into iovecs and msghdrs stay the buffers' addresses after GC", () => {
    const batch = new RecvBatch(16, 2048);
    const payloadBefore = ptr(batch.payloadBuffer);
    // Touching .buffer and collecting garbage is what moves small typed arrays' storage in Bun.
    void batch.payload.buffer;
    void batch.names.buffer;
    Bun.gc(true);
    expect(ptr(batch.payloadBuffer)).toBe(payloadBefore);
    expect(batch.payloadAddress).toBe(payloadBefore);
    const send = new SendBatch(4, 2048);
    const vec = send.vecAddress;
    Bun.gc(true);
    expect(send.msghdrAddress(0)).toBe(vec);
  });

  test("iovec i points at payload slot i, msghdr i at iovec i", () => {
    const batch = new RecvBatch(16, 2048);
    const structs = new Uint32Array(batch.structBuffer);
    const iovOffset = 16 * MMSGHDR.size;
    for (let i = 0; i < 16; i++) {
      expect(readPointer(structs, i * MMSGHDR.size + MSGHDR.iov)).toBe(batch.vecAddress + iovOffset + i * IOVEC.size);
      expect(readPointer(structs, iovOffset + i * IOVEC.size + IOVEC.base)).toBe(batch.payloadAddress + i * 2048);
      expect(readPointer(structs, iovOffset + i * IOVEC.size + IOVEC.len)).toBe(2048);
    }
  });
});
