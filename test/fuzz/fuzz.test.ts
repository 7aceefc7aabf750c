/**
 * Issue 6, item 1: the running server (real engines over UDP on 127.0.0.1) takes 20,000 random and
 * mutated STUN/ChannelData datagrams from 256 loopback sources without a handler escaping, and a
 * well-behaved client keeps being relayed during and after. `bun bench/fuzz.ts --count 1000000` is the
 * same run at full size; the second test is `bun bench/fuzz.ts --auth` in small (test/fuzz/signed.ts).
 */
import { expect, test } from "bun:test";
import { MUTATIONS } from "./mutate.ts";
import { runFuzz } from "./run.ts";

test("fuzz: 20,000 hostile datagrams through the real engines; nothing escapes, the client is still served", async () => {
  const r = await runFuzz({ count: 20_000, seed: 0x5eed, window: 256 });
  expect(r.sent).toBe(20_000);
  expect(r.sendErrors).toBe(0);
  // The windows keep the listeners' queues short: (nearly) every datagram reached an engine.
  expect(r.serverReceived).toBeGreaterThanOrEqual(r.sent * 0.99);
  for (const kind of MUTATIONS) expect(r.mutations[kind]).toBeGreaterThan(0);
  // Nothing escaped: the engines count every exception a handler throws, and log "handler failed".
  expect(r.after.crashes).toBe(0);
  expect(r.handlerFailedLines).toBe(0);
  // The input went deep: answered, dropped, allocated and relayed.
  const p = r.after.protocol;
  expect(p.errorsSent!).toBeGreaterThan(100);
  expect(p.dropped!).toBeGreaterThan(10_000);
  expect(r.after.allocations).toBeGreaterThan(10);
  expect(p.clientToPeerPackets!).toBeGreaterThan(0);
  // Served throughout: every Binding probe after every window, relayed round trips during and after.
  expect(r.probesAnswered).toBe(16 * Math.ceil(20_000 / 256));
  expect(r.echoDuring[0]).toBe(r.echoDuring[1]);
  expect(r.echoAfter).toEqual([20, 20]);
}, 30_000);

test("fuzz --auth: 10,000 datagrams, mostly validly signed mutated requests against --lt-cred-mech", async () => {
  const r = await runFuzz({ count: 10_000, seed: 0xa17, window: 256, auth: true, releaseWaitMs: 1000 });
  const a = r.auth!;
  expect(r.sent).toBe(10_000);
  expect(r.sendErrors).toBe(0);
  expect(r.serverReceived).toBeGreaterThanOrEqual(r.sent * 0.99);
  // Nothing escaped.
  expect(r.after.crashes).toBe(0);
  expect(r.handlerFailedLines).toBe(0);
  // Signed mutations of every kind went past authentication: allocations, relaying.
  for (const n of Object.values(a.signedMutations)) expect(n).toBeGreaterThan(100);
  expect(a.maxAllocations).toBeGreaterThan(10);
  expect(r.after.protocol.clientToPeerPackets!).toBeGreaterThan(0);
  // Corrupted after signing: 401 every time (RFC 8489 §9.2.4), and (nearly) every answer was seen.
  expect(a.afterSigningWrong).toBe(0);
  expect(a.afterSigningAnswered).toBeGreaterThanOrEqual(a.afterSigning * 0.98);
  // Bounded (one allocation per 5-tuple, RFC 8656 §7.2) and all released by Refresh(0): allocations,
  // relay sockets and fds at once; ports still held are EVEN-PORT reservations, which last 30 s
  // (`bun bench/fuzz.ts --auth` waits for them to come back).
  expect(a.maxAllocations).toBeLessThanOrEqual(r.sources + 1);
  expect(a.released.allocations).toBe(0);
  expect(a.released.relaySockets).toBe(0);
  expect(a.released.fdsAfter).toBe(a.released.fdsBefore);
  expect(a.released.relayPorts).toBeLessThanOrEqual(a.maxAllocations);
  // Served throughout.
  expect(r.probesAnswered).toBe(16 * Math.ceil(10_000 / 256));
  expect(r.echoDuring[0]).toBe(r.echoDuring[1]);
  expect(r.echoAfter).toEqual([20, 20]);
}, 30_000);
