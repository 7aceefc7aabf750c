import { describe, expect, test } from "bun:test";
import { PortPool, RESERVATION_SECONDS } from "../../src/engine/port-pool.ts";

describe("shared relay port pool", () => {
  test("hands out every port once, then 0; released ports come back", () => {
    const pool = new PortPool(PortPool.createShared(50000, 50009));
    const ports = new Set<number>();
    for (let i = 0; i < 10; i++) ports.add(pool.claim(false, false, 0));
    expect(ports.size).toBe(10);
    expect([...ports].every((p) => p >= 50000 && p <= 50009)).toBe(true);
    expect(pool.claim(false, false, 0)).toBe(0);
    expect(pool.countTaken()).toBe(10);
    pool.release(50003);
    expect(pool.claim(false, false, 0)).toBe(50003);
  });

  test("two engines sharing the memory never get the same port", () => {
    const shared = PortPool.createShared(50000, 50099);
    const a = new PortPool(shared);
    const b = new PortPool(shared);
    const got: number[] = [];
    for (let i = 0; i < 50; i++) got.push(a.claim(false, false, 0), b.claim(false, false, 0));
    expect(new Set(got).size).toBe(100);
    expect(a.claim(false, false, 0)).toBe(0);
  });

  test("a port the kernel refuses is skipped and not left taken", () => {
    const pool = new PortPool(PortPool.createShared(50000, 50003));
    const port = pool.claim(false, false, 0, (p) => p === 50002);
    expect(port).toBe(50002);
    expect(pool.countTaken()).toBe(1);
  });

  test("EVEN-PORT with R: an even port, port+1 held under a token that any engine can redeem once", () => {
    const shared = PortPool.createShared(50001, 50010);
    const a = new PortPool(shared);
    const port = a.claim(true, true, 1000);
    expect(port % 2).toBe(0);
    const token = a.newToken(port + 1, 6);
    expect(Number(token & 0xffffn)).toBe(port + 1);
    // The family travels in the token: the engine that redeems it may never have seen the first Allocate.
    expect(PortPool.tokenFamily(token)).toBe(6);
    const b = new PortPool(shared);
    expect(b.redeem(token ^ 0x10000n, 2000)).toBe(0); // wrong token
    expect(b.redeem(token, 2000)).toBe(port + 1);
    expect(b.redeem(token, 2000)).toBe(0); // only once
  });

  test("an IPv4 reservation's token says IPv4", () => {
    const pool = new PortPool(PortPool.createShared(50000, 50001));
    expect(PortPool.tokenFamily(pool.newToken(pool.claim(true, true, 0) + 1, 4))).toBe(4);
  });

  test("an unredeemed reservation expires after 30 s and its port is free again", () => {
    const pool = new PortPool(PortPool.createShared(50000, 50001));
    const port = pool.claim(true, true, 0);
    expect(port).toBe(50000);
    const token = pool.newToken(50001);
    expect(pool.claim(false, false, 1000)).toBe(0); // 50001 is reserved
    const later = RESERVATION_SECONDS * 1000 + 1;
    expect(pool.redeem(token, later)).toBe(0);
    expect(pool.claim(false, false, later)).toBe(50001);
  });
});
