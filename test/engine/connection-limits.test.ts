/**
 * The shared connection caps (src/engine/connection-limits.ts): a total, and a count per source that
 * is an IPv4 address or an IPv6 /64 (an IPv4-mapped address counts as its IPv4 address); exact under
 * many sources coming and going (backward-shift deletion keeps every probe run intact).
 */
import { expect, test } from "bun:test";
import { ConnectionLimits, createConnectionTable } from "../../src/engine/connection-limits.ts";
import { parseIp } from "../../src/net/endpoint.ts";

const ip = (text: string) => parseIp(text)!;

test("per source: an IPv4 address, or an IPv6 /64; an IPv4-mapped address is its IPv4 address", () => {
  const limits = new ConnectionLimits(createConnectionTable(), { total: 0, perSource: 2 });
  expect(limits.admit(ip("192.0.2.1"))).toBe(true);
  expect(limits.admit(ip("::ffff:192.0.2.1"))).toBe(true);
  expect(limits.admit(ip("192.0.2.1"))).toBe(false); // the third from 192.0.2.1
  expect(limits.admit(ip("192.0.2.2"))).toBe(true); // a neighbour is another source
  expect(limits.admit(ip("2001:db8:1:2::1"))).toBe(true);
  expect(limits.admit(ip("2001:db8:1:2:ffff::9"))).toBe(true);
  expect(limits.admit(ip("2001:db8:1:2::77"))).toBe(false); // the same /64
  expect(limits.admit(ip("2001:db8:1:3::1"))).toBe(true); // the next /64
  expect(limits.countFrom(ip("192.0.2.1"))).toBe(2);
  expect(limits.countFrom(ip("2001:db8:1:2::5"))).toBe(2);
  limits.release(ip("192.0.2.1"));
  expect(limits.admit(ip("192.0.2.1"))).toBe(true); // a place freed
  expect(limits.total).toBe(6);
});

test("the total: the (N+1)th connection is refused whatever its source, and counted back on release", () => {
  const limits = new ConnectionLimits(createConnectionTable(), { total: 3, perSource: 0 });
  for (const a of ["10.0.0.1", "10.0.0.2", "10.0.0.3"]) expect(limits.admit(ip(a))).toBe(true);
  expect(limits.admit(ip("10.0.0.4"))).toBe(false);
  expect(limits.total).toBe(3);
  limits.release(ip("10.0.0.2"));
  expect(limits.admit(ip("10.0.0.4"))).toBe(true);
});

test("exact with 50,000 sources coming and going in random order", () => {
  const limits = new ConnectionLimits(createConnectionTable(), { total: 0, perSource: 3 });
  const sources = Array.from({ length: 50_000 }, (_, i) => new Uint8Array([10, (i >> 16) & 255, (i >> 8) & 255, i & 255]));
  const held = new Map<number, number>();
  let seed = 7;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let step = 0; step < 200_000; step++) {
    const i = Math.floor(random() * sources.length);
    const n = held.get(i) ?? 0;
    if (n > 0 && random() < 0.5) {
      limits.release(sources[i]!);
      held.set(i, n - 1);
    } else {
      expect(limits.admit(sources[i]!)).toBe(n < 3);
      if (n < 3) held.set(i, n + 1);
    }
  }
  let total = 0;
  for (const [i, n] of held) {
    expect(limits.countFrom(sources[i]!)).toBe(n);
    total += n;
  }
  expect(limits.total).toBe(total);
});
