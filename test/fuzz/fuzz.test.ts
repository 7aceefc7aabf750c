/**
 * Issue 6, item 1: the running server (real engines over UDP on 127.0.0.1) takes 20,000 random and
 * mutated STUN/ChannelData datagrams from 256 loopback sources without a handler escaping, and a
 * well-behaved client keeps being relayed during and after. `bun bench/fuzz.ts --count 1000000` is the
 * same run at full size.
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
