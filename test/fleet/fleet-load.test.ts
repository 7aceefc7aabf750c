/**
 * Which peer a full or draining relay sends Allocates to (src/fleet/fleet-load.ts pickTargets): never a
 * draining or full one, the fewest allocations first, then the fewest bytes per second, per family.
 */
import { expect, test } from "bun:test";
import { pickTargets, type RelayLoad } from "../../src/fleet/fleet-load.ts";
import { formatIp } from "../../src/net/endpoint.ts";

const relay = (ip: string, allocations: number, more: Partial<RelayLoad> = {}): RelayLoad => ({
  allocations, bps: 0, capacity: 0, draining: false, addresses: [ip], port: 3478, ...more,
});
const ipOf = (loads: RelayLoad[], family: 4 | 6) => {
  const t = pickTargets(loads)[family];
  return t && formatIp(t.address);
};

test("fewest allocations, then fewest bytes per second; draining and full relays are skipped", () => {
  expect(ipOf([relay("10.0.0.1", 5), relay("10.0.0.2", 3), relay("10.0.0.3", 4)], 4)).toBe("10.0.0.2");
  expect(ipOf([relay("10.0.0.1", 3, { bps: 900 }), relay("10.0.0.2", 3, { bps: 100 })], 4)).toBe("10.0.0.2");
  expect(ipOf([relay("10.0.0.1", 0, { draining: true }), relay("10.0.0.2", 9)], 4)).toBe("10.0.0.2");
  expect(ipOf([relay("10.0.0.1", 2, { capacity: 2 }), relay("10.0.0.2", 9)], 4)).toBe("10.0.0.2");
  expect(ipOf([relay("10.0.0.1", 2, { capacity: 2 })], 4)).toBeUndefined();
});

test("per family: a client is sent to an address of its own family; ports as published", () => {
  const targets = pickTargets([relay("10.0.0.1", 1), { ...relay("2001:db8::7", 2), tlsPort: 5349, port: 3479 }]);
  expect(formatIp(targets[4]!.address)).toBe("10.0.0.1");
  expect(formatIp(targets[6]!.address)).toBe("2001:db8::7");
  expect(targets[6]!.port).toBe(3479);
  expect(targets[6]!.tlsPort).toBe(5349);
  expect(targets[4]!.tlsPort).toBeUndefined();
});
