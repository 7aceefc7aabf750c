import { afterEach, describe, expect, test } from "bun:test";
import {
  CMSGHDR, CmsgInfo, EPOLLIN, Epoll, EventFd, IPPROTO_IP, IPPROTO_IPV6, IP_TOS, IP_TTL, IPV6_HOPLIMIT,
  IPV6_TCLASS, SendBatch, SyscallError, EBADF, check, libc, parseCmsgs, writeTtlTos, openUdpSocket,
  EADDRINUSE, flushSendBatch, newStats, setDontFragment, getIntOption, IP_MTU_DISCOVER,
  IP_PMTUDISC_DO, IP_PMTUDISC_DONT, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO,
} from "../../ffi/index.ts";
import { LOOPBACK4, SocketScope } from "./helpers.ts";

const scope = new SocketScope();
afterEach(() => scope.closeAll());

describe("epoll and eventfd", () => {
  test("epoll_wait times out when idle, reports the ready socket's token, and eventfd wakes it", () => {
    const ep = new Epoll(8);
    const wake = new EventFd();
    try {
      const rx = scope.open(4);
      const tx = scope.open(4);
      ep.add(rx.fd, EPOLLIN, 1000 + rx.fd);
      ep.add(wake.fd, EPOLLIN, 7);
      const t0 = performance.now();
      expect(ep.wait(20)).toBe(0);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(15);

      const send = new SendBatch(1);
      send.push(tx.udp, LOOPBACK4, rx.port, new Uint8Array([1]));
      flushSendBatch(send, newStats());
      expect(ep.wait(1000)).toBe(1);
      expect(ep.eventToken(0)).toBe(1000 + rx.fd);
      expect(ep.eventMask(0) & EPOLLIN).toBe(EPOLLIN);

      ep.remove(rx.fd);
      EventFd.signal(wake.fd);
      EventFd.signal(wake.fd);
      expect(ep.wait(1000)).toBe(1);
      expect(ep.eventToken(0)).toBe(7);
      expect(wake.drain()).toBe(2);
      expect(wake.drain()).toBe(0);
      expect(ep.wait(0)).toBe(0);
    } finally {
      ep.close();
      wake.close();
    }
  });
});

describe("system-call errors", () => {
  test("a failed call becomes a SyscallError with errno and its name", () => {
    let caught: unknown;
    try {
      check("close", libc.close(999_999));
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(SyscallError);
    expect((caught as SyscallError).errno).toBe(EBADF);
    expect((caught as SyscallError).code).toBe("EBADF");
    expect((caught as SyscallError).message).toContain("close");
  });

  test("binding a port in use throws EADDRINUSE and leaks no fd", () => {
    const { port } = scope.open(4);
    const before = fdCount();
    let code = "";
    try {
      openUdpSocket({ family: 4, address: LOOPBACK4, port });
    } catch (e) {
      code = (e as SyscallError).code;
    }
    expect(code).toBe("EADDRINUSE");
    expect(fdCount()).toBe(before);
    expect(EADDRINUSE).toBe(98);
  });
});

function fdCount(): number {
  return [...new Bun.Glob("*").scanSync("/proc/self/fd")].length;
}

describe("cmsg", () => {
  test("writeTtlTos and parseCmsgs agree for both families", () => {
    const buf = new Uint8Array(64);
    const info = new CmsgInfo();
    let len = writeTtlTos(buf, 0, false, 63, 0xb8);
    expect(len).toBe(48);
    parseCmsgs(buf, 0, len, info);
    expect([info.ttl, info.tos]).toEqual([63, 0xb8]);
    len = writeTtlTos(buf, 0, true, 5, -1);
    expect(len).toBe(24);
    parseCmsgs(buf, 0, len, info);
    expect([info.ttl, info.tos]).toEqual([5, -1]);
  });

  test("the kernel's IPv4 TOS is one byte; IPv6 traffic class is an int", () => {
    const b = new Uint8Array(48);
    const put = (at: number, level: number, type: number, dataLen: number, value: number) => {
      b[at] = CMSGHDR.size + dataLen;
      b[at + 8] = level;
      b[at + 12] = type;
      b[at + 16] = value;
    };
    put(0, IPPROTO_IP, IP_TOS, 1, 0x10);
    put(24, IPPROTO_IP, IP_TTL, 4, 9);
    const info = parseCmsgs(b, 0, 48, new CmsgInfo());
    expect([info.ttl, info.tos]).toEqual([9, 0x10]);
    b.fill(0);
    put(0, IPPROTO_IPV6, IPV6_TCLASS, 4, 0x2e);
    put(24, IPPROTO_IPV6, IPV6_HOPLIMIT, 4, 3);
    parseCmsgs(b, 0, 48, info);
    expect([info.ttl, info.tos]).toEqual([3, 0x2e]);
  });

  test("malformed lengths stop the walk instead of reading past the buffer", () => {
    const info = new CmsgInfo();
    const b = new Uint8Array(48);
    b[0] = 200; // claims more than is there
    b[8] = IPPROTO_IP;
    b[12] = IP_TTL;
    b[16] = 5;
    expect(parseCmsgs(b, 0, 48, info).ttl).toBe(-1);
    b[0] = 3; // shorter than a header: would loop forever if not rejected
    expect(parseCmsgs(b, 0, 48, info).ttl).toBe(-1);
    expect(parseCmsgs(b, 0, 0, info).ttl).toBe(-1);
  });
});

describe("DONT-FRAGMENT", () => {
  test("setDontFragment turns path MTU discovery (the DF bit) on and back off, per family", () => {
    const v4 = scope.open(4);
    const v6 = scope.open(6);
    expect(setDontFragment(v4.fd, 4, true)).toBe(0);
    expect(getIntOption(v4.fd, IPPROTO_IP, IP_MTU_DISCOVER)).toBe(IP_PMTUDISC_DO);
    expect(setDontFragment(v4.fd, 4, false)).toBe(0);
    expect(getIntOption(v4.fd, IPPROTO_IP, IP_MTU_DISCOVER)).toBe(IP_PMTUDISC_DONT);
    expect(setDontFragment(v6.fd, 6, true)).toBe(0);
    expect(getIntOption(v6.fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER)).toBe(IPV6_PMTUDISC_DO);
  });
});
