import { describe, expect, test } from "bun:test";
import { parseEndpoint } from "../../src/net/endpoint.ts";
import { PeerPolicy } from "../../src/turn/peer-policy.ts";

const allowed = (p: PeerPolicy, ip: string) => p.isAllowed(parseEndpoint(ip, 1234));

describe("PeerPolicy defaults", () => {
  const p = new PeerPolicy({});
  test.each([
    "127.0.0.1", "127.255.0.9", "0.0.0.0", "0.1.2.3", "::", "::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.127.255.255",
    "169.254.1.1", "fe80::1", "febf::1", "fc00::1", "fdff::1", "224.0.0.1", "239.255.255.250", "ff02::1",
    "255.255.255.255", "64:ff9b::10.0.0.1", "64:ff9b::127.0.0.1", "::10.0.0.1",
  ])("denies %s", (ip) => expect(allowed(p, ip)).toBe(false));
  test.each([
    "8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.0", "100.63.255.255", "100.128.0.0", "198.51.100.1",
    "2001:db8::1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "fec0::1",
  ])("allows %s", (ip) => expect(allowed(p, ip)).toBe(true));
});

describe("PeerPolicy switches and lists", () => {
  test("allowLoopback permits loopback only", () => {
    const p = new PeerPolicy({ allowLoopback: true });
    for (const ip of ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"]) expect(allowed(p, ip)).toBe(true);
    for (const ip of ["0.0.0.0", "::", "10.0.0.1", "169.254.0.1", "fe80::1"]) expect(allowed(p, ip)).toBe(false);
  });

  test("allowPrivate and allowMulticast", () => {
    const p = new PeerPolicy({ allowPrivate: true, allowMulticast: true });
    for (const ip of ["10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "224.0.0.1", "ff02::1"]) expect(allowed(p, ip)).toBe(true);
    for (const ip of ["127.0.0.1", "169.254.1.1", "fc00::1", "0.0.0.0", "255.255.255.255"]) expect(allowed(p, ip)).toBe(false);
  });

  test("allowed ranges override the defaults and are checked before denied (coturn)", () => {
    const p = new PeerPolicy({ allowed: ["10.0.0.5", "192.168.0.0/16", "172.16.0.1-172.16.0.9", "fc00::/7"], denied: ["192.168.1.1", "10.0.0.0/8"] });
    expect(allowed(p, "10.0.0.5")).toBe(true);
    expect(allowed(p, "10.0.0.6")).toBe(false);
    expect(allowed(p, "192.168.1.1")).toBe(true); // allowed wins over denied
    expect(allowed(p, "172.16.0.9")).toBe(true);
    expect(allowed(p, "172.16.0.10")).toBe(false);
    expect(allowed(p, "fd12::1")).toBe(true);
    expect(allowed(p, "::ffff:10.0.0.5")).toBe(true);
  });

  test("denied ranges block public addresses, including their IPv4-mapped form", () => {
    const p = new PeerPolicy({ denied: ["8.8.8.0/24", "2001:db8::/32", "1.1.1.1-1.1.1.3"] });
    expect(allowed(p, "8.8.8.8")).toBe(false);
    expect(allowed(p, "::ffff:8.8.8.8")).toBe(false);
    expect(allowed(p, "8.8.9.8")).toBe(true);
    expect(allowed(p, "2001:db8:ffff::1")).toBe(false);
    expect(allowed(p, "2001:db9::1")).toBe(true);
    expect(allowed(p, "1.1.1.2")).toBe(false);
    expect(allowed(p, "1.1.1.4")).toBe(true);
  });

  test("a list entry in ::ffff: form applies to the IPv4 address", () => {
    const p = new PeerPolicy({ allowed: ["::ffff:10.9.9.9"] });
    expect(allowed(p, "10.9.9.9")).toBe(true);
  });

  test("bad entries are rejected at construction", () => {
    expect(() => new PeerPolicy({ allowed: ["not-an-ip"] })).toThrow(RangeError);
    expect(() => new PeerPolicy({ denied: ["10.0.0.0/33"] })).toThrow(RangeError);
    expect(() => new PeerPolicy({ denied: ["10.0.0.1-::1"] })).toThrow(RangeError);
  });
});
