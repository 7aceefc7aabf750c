/**
 * test/ports.ts: servers' listening ports and relay ranges lie outside the kernel's ephemeral range
 * (where the tests' own client sockets get their ports), and two processes never share one.
 */
import { expect, test } from "bun:test";
import { ephemeralRange, freePort, relayRange } from "./ports.ts";

const outsideEphemeral = (port: number) => {
  const [lo, hi] = ephemeralRange();
  return port < lo || port > hi;
};

/** In another process: its listening port and relay range, printed while this process holds its own. */
const CHILD = `import { freePort, relayRange } from ${JSON.stringify(`${import.meta.dir}/ports.ts`)};
console.log(JSON.stringify([freePort(), relayRange()]));`;

test("listening ports and relay ranges (small and bench-sized) are outside the ephemeral range", () => {
  const ports = Array.from({ length: 5 }, () => freePort());
  expect(new Set(ports).size).toBe(5);
  const ranges = [relayRange(), relayRange(10), relayRange(3300)];
  for (const port of [...ports, ...ranges.flat()]) expect(outsideEphemeral(port)).toBe(true);
  for (const [min, max] of ranges) for (const port of ports) expect(port < min || port > max).toBe(true);
});

test("another process beside this one gets ports and a relay range of its own", () => {
  const mine = { port: freePort(), range: relayRange() };
  const child = Bun.spawnSync(["bun", "-e", CHILD], { stdout: "pipe", stderr: "pipe" });
  expect(child.stderr.toString()).toBe("");
  const [port, [min, max]] = JSON.parse(child.stdout.toString()) as [number, [number, number]];
  expect(outsideEphemeral(port) && outsideEphemeral(min) && outsideEphemeral(max)).toBe(true);
  const overlap = (a: [number, number], b: [number, number]) => a[0] <= b[1] && b[0] <= a[1];
  expect(overlap([min, max], mine.range) || overlap([port, port], mine.range) || overlap([mine.port, mine.port], [min, max])).toBe(false);
  // Each process's listening ports open its own 2000-port slice: the two are a slice apart, not just different.
  expect(Math.abs(port - mine.port)).toBeGreaterThan(1900);
}, 15_000);
