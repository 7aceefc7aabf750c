/**
 * In-process fuzzing behind authentication: validly signed, mutated requests (test/fuzz/signed.ts) from
 * 24 sources, each holding a nonce the server issued to it, straight into TurnServer with a fake clock.
 * Deterministic (seeded) and cheap. The oracle per datagram: nothing throws; at most one reply, well
 * formed, same transaction id and method; error codes only from the RFC 8656/8489 set; every success
 * response signed with the key the request used (RFC 8489 §9.2.4); a request corrupted after signing
 * gets exactly 401. At the end, Refresh(0) and expiry release every allocation, relay and reservation.
 */
import { describe, expect, test } from "bun:test";
import { parseEndpoint, type Endpoint } from "../../src/net/endpoint.ts";
import { Attr, StunClass, StunMethod, verifyMessageIntegrity } from "../../src/stun/index.ts";
import { Rng } from "../fuzz/mutate.ts";
import { SignedMutator, nonceFrom, type SourceNonce } from "../fuzz/signed.ts";
import { listenerId, type AllocationQuota } from "../../src/turn/api.ts";
import type { TurnServerOptions } from "../../src/turn/server.ts";
import { harness, REALM, Response } from "./harness.ts";

const ALLOWED_ERRORS = [400, 401, 403, 420, 437, 438, 440, 441, 442, 443, 446, 486, 508];

/** Whether `raw` carries MESSAGE-INTEGRITY or -SHA256 that verifies with one of `keys`. */
function signedWith(raw: Uint8Array, keys: Uint8Array[]): boolean {
  let at = 20;
  while (at + 4 <= raw.length) {
    const type = (raw[at]! << 8) | raw[at + 1]!;
    const len = (raw[at + 2]! << 8) | raw[at + 3]!;
    if (type === Attr.MessageIntegrity || type === Attr.MessageIntegritySha256) {
      const sha = type === Attr.MessageIntegritySha256;
      return keys.some((k) => verifyMessageIntegrity(raw, at + 4, len, k, sha));
    }
    at += 4 + ((len + 3) & ~3);
  }
  return false;
}

/** A quota that checks its own books: never over the limits, nothing released twice or never taken. */
class CheckedQuota implements AllocationQuota {
  live = 0;
  maxLive = 0;
  bandwidth = 0;
  refused = 0;
  constructor(private readonly limit: number, private readonly capacity: number) {}
  acquire(): boolean {
    if (this.live >= this.limit) {
      this.refused++;
      return false;
    }
    this.maxLive = Math.max(this.maxLive, ++this.live);
    return true;
  }
  release(): void {
    if (--this.live < 0) throw new Error("quota released more than acquired");
  }
  reserveBandwidth(bps: number): number {
    const granted = Math.min(bps, this.capacity - this.bandwidth);
    this.bandwidth += granted;
    return granted;
  }
  releaseBandwidth(bps: number): void {
    this.bandwidth -= bps;
    if (this.bandwidth < 0) throw new Error("bandwidth released more than reserved");
  }
}

function run(seed: number, count: number, overrides: Partial<TurnServerOptions> = {}) {
  const h = harness({ users: { alice: "secret" }, ...overrides });
  const rng = new Rng(seed);
  const peers = [parseEndpoint("127.0.0.1", 5000), parseEndpoint("::1", 5001), parseEndpoint("198.51.100.7", 7)];
  const fuzz = new SignedMutator(rng, { username: "alice", password: "secret", realm: REALM }, peers);
  const sources: { from: Endpoint; nonce: SourceNonce }[] = [];
  for (let i = 0; i < 24; i++) {
    const from = i % 4 === 3 ? parseEndpoint(`2001:db8::${i}`, 40000 + i) : parseEndpoint(`192.0.2.${10 + i}`, 40000 + i);
    h.server.handleClientDatagram(listenerId(0), from, SignedMutator.challenge(rng), h.now);
    const nonce = nonceFrom(h.sink.take()[0]!.data);
    if (!nonce) throw new Error("no nonce in the 401");
    sources.push({ from, nonce });
  }
  const codes = new Map<number, number>();
  let successes = 0;
  let maxAllocations = 0;
  let afterSigning401 = 0;
  for (let i = 0; i < count; i++) {
    if (i % 250 === 0) h.advance(1000); // 10,000 requests span 40 s: permissions and short allocations expire
    const s = sources[rng.below(sources.length)]!;
    const { bytes, kind } = fuzz.next(s.nonce);
    try {
      h.server.handleClientDatagram(listenerId(0), s.from, bytes, h.now);
    } catch (error) {
      throw new Error(`seed ${seed} datagram ${i} (${kind}) threw: ${error}\n${Buffer.from(bytes).toString("hex")}`);
    }
    const out = h.sink.take();
    const replies = out.filter((o) => o.kind === "reply");
    expect(replies.length).toBeLessThanOrEqual(1);
    for (const o of out) if (o.kind !== "reply") expect(o.kind).toBe("toPeer");
    if (kind === "after-signing") {
      expect(replies.length).toBe(1);
      const r = new Response(replies[0]!.data);
      if (r.errorCode !== 401) throw new Error(`seed ${seed} datagram ${i}: corrupted after signing got ${r.cls}/${r.errorCode}\n${Buffer.from(bytes).toString("hex")}`);
      afterSigning401++;
    }
    if (replies.length === 0) continue;
    const raw = replies[0]!.data;
    const r = new Response(raw); // throws if undecodable
    expect(Buffer.from(raw.subarray(8, 20)).equals(Buffer.from(bytes.subarray(8, 20)))).toBe(true);
    expect(r.method).toBe(((bytes[0]! << 8 | bytes[1]!) & 0x000f) | (((bytes[0]! << 8 | bytes[1]!) & 0x00e0) >> 1) | (((bytes[0]! << 8 | bytes[1]!) & 0x3e00) >> 2));
    if (r.cls === StunClass.SuccessResponse) {
      successes++;
      if (r.method !== StunMethod.Binding && !signedWith(raw, [fuzz.md5Key, fuzz.sha256Key])) {
        throw new Error(`seed ${seed} datagram ${i}: unsigned success response\n${Buffer.from(bytes).toString("hex")}`);
      }
    } else {
      expect(r.cls).toBe(StunClass.ErrorResponse);
      const code = r.errorCode!;
      if (!ALLOWED_ERRORS.includes(code)) throw new Error(`seed ${seed} datagram ${i}: error ${code}\n${Buffer.from(bytes).toString("hex")}`);
      codes.set(code, (codes.get(code) ?? 0) + 1);
      if (code === 438) s.nonce = nonceFrom(raw) ?? s.nonce;
    }
    maxAllocations = Math.max(maxAllocations, h.server.allocationCount);
  }
  return { h, fuzz, sources, codes, successes, maxAllocations, afterSigning401 };
}

describe("signed mutated requests through TurnServer (fake clock)", () => {
  // SIGNED_FUZZ_SEEDS=N runs seeds 1..N (a longer hunt); three by default.
  const seeds = Number(process.env.SIGNED_FUZZ_SEEDS ?? 3);
  for (let seed = 1; seed <= seeds; seed++) {
    test(`seed ${seed}: 10,000 signed mutations, RFC answers only, everything released at the end`, () => {
      const r = run(seed, 10_000);
      // Deep: the mutations got past authentication and made state.
      expect(r.successes).toBeGreaterThan(500);
      expect(r.maxAllocations).toBeGreaterThan(5);
      expect(r.maxAllocations).toBeLessThanOrEqual(r.sources.length); // one per 5-tuple (RFC 8656 §7.2)
      expect(r.afterSigning401).toBe(r.fuzz.afterSigning);
      expect(r.fuzz.afterSigning).toBeGreaterThan(300);
      for (const kind of Object.keys(r.fuzz.counts)) expect(r.fuzz.counts[kind as never]).toBeGreaterThan(0);
      // Released: a valid Refresh(0) from every source, then every timer (reservations included) runs out.
      for (const s of r.sources) {
        r.h.server.handleClientDatagram(listenerId(0), s.from, r.fuzz.refreshZero(s.nonce), r.h.now);
        const reply = new Response(r.h.sink.take()[0]!.data);
        expect(reply.ok || reply.errorCode === 437).toBe(true);
      }
      expect(r.h.server.allocationCount).toBe(0);
      r.h.advance(3_600_000);
      expect(r.h.relays.live.size).toBe(0);
      expect(r.h.relays.tokens.size).toBe(0);
      expect(r.h.server.pollTimeout()).toBeUndefined();
    });
  }

  for (let seed = 100; seed < 100 + Math.max(1, Math.ceil(seeds / 3)); seed++) test(`seed ${seed}: with a user quota, bandwidth capacity, short nonces and few permissions: the books balance`, () => {
    const quota = new CheckedQuota(6, 110_000);
    const r = run(seed, 20_000, {
      quota, maxBytesPerSecond: 20_000, nonceLifetimeSeconds: 20, maxPermissionsPerAllocation: 2, channelLifetimeSeconds: 30,
      permissionLifetimeSeconds: 15, maxLifetimeSeconds: 60, defaultLifetimeSeconds: 30,
    });
    expect(quota.maxLive).toBeGreaterThanOrEqual(5); // 6 by count, or 5 when the bandwidth ran out first
    expect(quota.maxLive).toBeLessThanOrEqual(6);
    expect(quota.refused).toBeGreaterThan(0);
    expect(r.codes.get(486) ?? 0).toBeGreaterThan(0);
    expect(r.codes.get(438) ?? 0).toBeGreaterThan(0);
    expect(r.afterSigning401).toBe(r.fuzz.afterSigning);
    for (const s of r.sources) {
      r.h.server.handleClientDatagram(listenerId(0), s.from, r.fuzz.refreshZero(s.nonce), r.h.now);
      r.h.sink.take();
    }
    r.h.advance(3_600_000);
    expect(r.h.server.allocationCount).toBe(0);
    expect(quota.live).toBe(0);
    expect(quota.bandwidth).toBe(0);
    expect(r.h.relays.live.size).toBe(0);
    expect(r.h.relays.tokens.size).toBe(0);
  });
});
