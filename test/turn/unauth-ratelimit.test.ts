/**
 * The per-source rate limit on error responses to unauthenticated requests (coturn's
 * --unauthorized-ratelimit, src/turn/source-rate-limit.ts), through TurnServer with a fake clock: a spoofed
 * flood from one address gets a bounded number of 401s, other sources and authenticated clients are
 * unaffected, and 100,000 spoofed sources cost the table no memory.
 */
import { describe, expect, test } from "bun:test";
import { parseEndpoint, type Endpoint } from "../../src/net/endpoint.ts";
import { Attr, StunClass, StunMethod, StunWriter, writeLifetime, writeRequestedTransport } from "../../src/stun/index.ts";
import { SourceRateLimit } from "../../src/turn/source-rate-limit.ts";
import { harness, randomTid, type Harness } from "./harness.ts";
import { listenerId } from "../../src/turn/api.ts";

/** The smallest Allocate: 20 bytes, no attributes, no credentials. */
function bareAllocate(): Uint8Array {
  return new StunWriter(StunMethod.Allocate, StunClass.Request, randomTid()).finish();
}

/** Sends a bare Allocate from `source`; returns the replies' sizes. */
function unauthenticated(h: Harness, source: Endpoint): number[] {
  h.server.handleClientDatagram(listenerId(0), source, bareAllocate(), h.now);
  return h.sink.take().filter((s) => s.kind === "reply").map((s) => s.data.length);
}

function flood(h: Harness, ip: string, count: number): number {
  let answered = 0;
  // A new port each time: rotating ports must not buy a fresh budget.
  for (let i = 0; i < count; i++) answered += unauthenticated(h, parseEndpoint(ip, 1024 + i)).length;
  return answered;
}

describe("--unauthorized-ratelimit-rps (per source IP address)", () => {
  test("1,000 unauthenticated Allocates from one address in a second get 10 answers; a second later, 10 more", () => {
    const h = harness({ unauthenticatedRateLimit: 10 });
    expect(flood(h, "203.0.113.66", 1000)).toBe(10);
    expect(h.server.counters.unauthenticatedRateLimited).toBe(990);
    expect(h.server.counters.unauthorized).toBe(10); // counted as sent: only what went out
    h.now += 1000;
    expect(flood(h, "203.0.113.66", 1000)).toBe(10);
  });

  test("while one address floods, another address and an IPv6 source are still answered", () => {
    const h = harness({ unauthenticatedRateLimit: 10 });
    flood(h, "203.0.113.66", 500);
    expect(flood(h, "203.0.113.67", 5)).toBe(5);
    expect(flood(h, "2001:db8::66", 20)).toBe(10);
    expect(flood(h, "2001:db8::67", 5)).toBe(5);
  });

  test("an authenticated client is unaffected, even one on the flooded address", () => {
    const h = harness({ unauthenticatedRateLimit: 10, nonceLifetimeSeconds: 60 });
    const elsewhere = h.client("192.0.2.80", 5000);
    const sameAddress = h.client("203.0.113.66", 5000);
    sameAddress.learnNonce(); // its 401 came before the flood
    flood(h, "203.0.113.66", 500);
    expect(elsewhere.allocate().ok).toBe(true);
    expect(sameAddress.allocate().ok).toBe(true);
    // Its nonce goes stale during the flood: the 438 is still answered (it comes only after
    // MESSAGE-INTEGRITY checked out), and the retry with the new nonce succeeds.
    h.advance(61_000);
    flood(h, "203.0.113.66", 500);
    const stale = sameAddress.request(StunMethod.Refresh, (w) => writeLifetime(w, 600), { retryStale: false });
    expect(stale.errorCode).toBe(438);
    sameAddress.nonce = stale.text(Attr.Nonce);
    expect(sameAddress.request(StunMethod.Refresh, (w) => writeLifetime(w, 600)).ok).toBe(true);
  });

  test("the 400 to other methods and the 420 to Binding count against the same budget", () => {
    const h = harness({ unauthenticatedRateLimit: 3 });
    const source = parseEndpoint("203.0.113.70", 4000);
    const unknownMethod = new StunWriter(0x00b, StunClass.Request, randomTid()).finish();
    const binding420 = new StunWriter(StunMethod.Binding, StunClass.Request, randomTid());
    binding420.reserve(0x7fff & 0x0fff, 4); // comprehension-required, unknown
    const bindingBytes = binding420.finish();
    let answered = 0;
    for (let i = 0; i < 10; i++) {
      for (const m of [unknownMethod, bindingBytes]) {
        h.server.handleClientDatagram(listenerId(0), source, m, h.now);
        answered += h.sink.take().length;
      }
    }
    expect(answered).toBe(3);
    // A plain Binding request is not an error: always answered.
    const binding = new StunWriter(StunMethod.Binding, StunClass.Request, randomTid()).finish();
    h.server.handleClientDatagram(listenerId(0), source, binding, h.now);
    expect(h.sink.take().length).toBe(1);
  });

  test("without the option (the core's default) every request is answered", () => {
    const h = harness();
    expect(flood(h, "203.0.113.66", 1000)).toBe(1000);
  });

  test("the 401 is small: no reason phrase, a 28-character nonce: 20-byte Allocate -> 88-byte 401 with a 12-byte realm", () => {
    const h = harness({ unauthenticatedRateLimit: 10 });
    const sizes = unauthenticated(h, parseEndpoint("192.0.2.1", 1));
    // 20 header + ERROR-CODE 8 + REALM 16 + NONCE 32 + PASSWORD-ALGORITHMS 12 (SHA-256, MD5).
    expect(sizes).toEqual([88]);
    const c = h.client("192.0.2.2", 2);
    const r = c.request(StunMethod.Allocate, (w) => writeRequestedTransport(w, 17), { auth: false });
    expect(r.errorCode).toBe(401);
    expect(r.attr(Attr.ErrorCode)!.length).toBe(4);
  });
});

describe("bounded memory under spoofed sources", () => {
  test("100,000 spoofed addresses: the table stays its fixed size, and a flooding victim stays limited", () => {
    const limit = new SourceRateLimit(10, new Uint8Array(32).fill(7));
    const victim = parseEndpoint("198.51.100.9", 53);
    let now = 1_700_000_000_000;
    let victimAnswers = 0;
    for (let i = 0; i < 100_000; i++) {
      const spoofed = parseEndpoint(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 1024 + (i % 50_000));
      limit.allow(spoofed, now);
      if (limit.allow(victim, now)) victimAnswers++;
      now += 0.1; // 10 s in all: the spoofed churn runs at 10,000 new sources a second
    }
    // The victim's bucket is never taken from it: a burst of 10, then 10 a second for 10 s.
    expect(victimAnswers).toBeLessThanOrEqual(10 + 10 * 10 + 1);
    expect(victimAnswers).toBeGreaterThanOrEqual(100);
    expect(limit.busySlots(now)).toBeLessThanOrEqual(SourceRateLimit.byteLength / 24);
  });

  test("through TurnServer, 100,000 spoofed sources grow the heap by no per-source state", () => {
    const h = harness({ unauthenticatedRateLimit: 100 });
    const spoof = (from: number, count: number) => {
      for (let i = from; i < from + count; i++) {
        h.server.handleClientDatagram(listenerId(0), parseEndpoint(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 4000), bareAllocate(), h.now);
        h.sink.take();
        h.now += 0.05;
      }
    };
    spoof(0, 20_000); // warm-up: JIT and the table's pages
    Bun.gc(true);
    const before = process.memoryUsage().heapUsed;
    spoof(20_000, 100_000);
    Bun.gc(true);
    const grown = process.memoryUsage().heapUsed - before;
    // A map entry per source would be several MB for 100,000 of them.
    expect(grown).toBeLessThan(1024 * 1024);
  });
});
