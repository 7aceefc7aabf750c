/**
 * EVEN-PORT reservations (RFC 8656 §7.2, R bit) count against --user-quota while their token lives: the
 * reserved port is held for 30 s whatever becomes of the allocation that asked, so Allocate(R) then
 * Refresh(0) in a loop must not pin ports beyond the user's quota. Redeeming the token (on this core or on
 * another engine's) takes the unit over; expiry gives it back.
 */
import { describe, expect, test } from "bun:test";
import { readReservationToken, Attr, StunMethod, writeEvenPort, writeLifetime, writeReservationToken } from "../../src/stun/index.ts";
import { SharedQuota, createQuotaShared, type QuotaShared } from "../../src/engine/quota.ts";
import { parseEndpoint } from "../../src/net/endpoint.ts";
import { harness, type Harness, type Response, type TestClient } from "./harness.ts";

function quota(userQuota: number, shared: QuotaShared = createQuotaShared()): SharedQuota {
  return new SharedQuota(shared, { userQuota, totalQuota: 0, bpsCapacity: 0, restUsernames: false });
}

const withReservation = (w: Parameters<typeof writeEvenPort>[0]) => writeEvenPort(w, true);
const refreshZero = (c: TestClient) => c.request(StunMethod.Refresh, (w) => writeLifetime(w, 0));
const tokenOf = (r: Response) => {
  const v = r.attr(Attr.ReservationToken)!;
  return readReservationToken(v, 0, v.length)!;
};

/** Allocate(R) then Refresh(0), `rounds` times from fresh 5-tuples: how many succeeded. */
function pinLoop(h: Harness, rounds: number): number {
  let reserved = 0;
  for (let i = 0; i < rounds; i++) {
    const c = h.client("192.0.2.9", 30_000 + i);
    const r = c.allocate(withReservation);
    if (!r.ok) continue;
    reserved++;
    expect(refreshZero(c).ok).toBe(true);
  }
  return reserved;
}

describe("EVEN-PORT reservations count against --user-quota (RFC 8656 §7.2 step 8)", () => {
  test("--user-quota 1: 50 rounds of Allocate(R) + Refresh(0) pin no port (an R bit needs room for two)", () => {
    const h = harness({ quota: quota(1) });
    expect(pinLoop(h, 50)).toBe(0);
    expect(h.relays.tokens.size).toBe(0);
    expect(h.client("192.0.2.9", 20_000).allocate().ok).toBe(true); // a plain Allocate still fits
  });

  test("--user-quota 2: 50 rounds pin one port at a time; it comes back after 30 s", () => {
    const q = quota(2);
    const h = harness({ quota: q });
    expect(pinLoop(h, 50)).toBe(1);
    expect(h.relays.tokens.size).toBe(1);
    expect(q.total).toBe(1); // the reservation, alone
    h.advance(30_000);
    expect(h.relays.tokens.size).toBe(0);
    expect(q.total).toBe(0);
    expect(pinLoop(h, 50)).toBe(1);
  });

  test("redeeming the token on the same core takes the reservation's unit over", () => {
    const q = quota(2);
    const h = harness({ quota: q });
    const rtp = h.client("192.0.2.9", 40_000);
    const token = tokenOf(rtp.allocate(withReservation));
    expect(q.total).toBe(2);
    const rtcp = h.client("192.0.2.9", 40_001);
    expect(rtcp.allocate((w) => writeReservationToken(w, token)).ok).toBe(true);
    expect(q.total).toBe(2); // no third unit: the reservation's became the allocation's
    h.advance(31_000);
    expect(q.total).toBe(2); // the redeemed token's timer gives nothing back twice
    expect(refreshZero(rtp).ok && refreshZero(rtcp).ok).toBe(true);
    expect([q.total, q.userCount]).toEqual([0, 0]);
  });

  test("another user redeeming the token needs room of its own; the holder gets its unit back", () => {
    const alice = quota(2);
    const server = harness({ quota: alice });
    const a = server.client("192.0.2.9", 40_000);
    const token = tokenOf(a.allocate(withReservation));
    expect(refreshZero(a).ok).toBe(true); // alice now holds only the reservation
    const bobUser = { username: "bob", password: "hunter2" };
    const bobsOwn = [1, 2].map((i) => server.client("192.0.2.10", 41_000 + i, bobUser));
    for (const c of bobsOwn) expect(c.allocate().ok).toBe(true);
    const bob = server.client("192.0.2.10", 40_000, bobUser);
    expect(bob.allocate((w) => writeReservationToken(w, token)).errorCode).toBe(486); // bob is full
    expect(refreshZero(bobsOwn[0]!).ok && refreshZero(bobsOwn[1]!).ok).toBe(true);
    expect(bob.allocate((w) => writeReservationToken(w, token)).ok).toBe(true);
    expect(alice.total).toBe(1); // bob's allocation; alice's reservation unit moved to it
    // alice holds nothing now: two allocations fit again.
    expect(server.client("192.0.2.9", 40_001).allocate().ok).toBe(true);
    expect(server.client("192.0.2.9", 40_002).allocate().ok).toBe(true);
  });

  test("a token redeemed on another engine: the issuing engine's expiry releases nothing twice", () => {
    const shared = createQuotaShared();
    const engine0 = harness({ quota: quota(2, shared) });
    const engine1 = harness({ quota: quota(2, shared), relays: engine0.relays });
    const q = quota(2, shared);
    const rtp = engine0.client("192.0.2.9", 40_000);
    const token = tokenOf(rtp.allocate(withReservation));
    const rtcp = engine1.client("192.0.2.9", 40_001);
    expect(rtcp.allocate((w) => writeReservationToken(w, token)).ok).toBe(true);
    expect(q.total).toBe(2);
    engine0.advance(31_000); // engine 0's timer for the token fires
    expect(q.total).toBe(2);
    expect(engine1.client("192.0.2.9", 40_002).allocate().errorCode).toBe(486);
  });
});

describe("SharedQuota's reservation entries", () => {
  const client = parseEndpoint("192.0.2.9", 1);
  const token = (random: bigint, port: number) => (random << 20n) | BigInt(port);

  test("3,072 reservations recorded at once at most (the shared table stays short); a freed entry is reused", () => {
    const q = quota(0);
    const hold = (t: bigint) => q.acquire(undefined, client) && (q.holdReservation(undefined, client, t) || (q.release(undefined, client), false));
    for (let i = 0; i < 3072; i++) expect(hold(token(BigInt(i), 50_001 + 2 * (i % 5000)))).toBe(true);
    expect(q.reservationCount).toBe(3072);
    expect(hold(token(99_999n, 50_001))).toBe(false);
    q.releaseReservation(token(7n, 50_015));
    expect(hold(token(99_999n, 50_001))).toBe(true);
    for (let i = 0; i < 3072; i++) q.releaseReservation(token(BigInt(i), 50_001 + 2 * (i % 5000)));
    q.releaseReservation(token(99_999n, 50_001));
    expect([q.reservationCount, q.total]).toEqual([0, 0]);
  });

  test("an unknown token is an ordinary acquire; a released one is not released twice", () => {
    const q = quota(1);
    expect(q.acquireReserved("alice", client, token(9n, 50_003))).toBe(true);
    expect(q.acquireReserved("alice", client, token(9n, 50_003))).toBe(false);
    q.release("alice", client);
    expect(q.acquire("alice", client)).toBe(true);
    expect(q.holdReservation("alice", client, token(3n, 50_005))).toBe(true);
    q.releaseReservation(token(3n, 50_005));
    q.releaseReservation(token(3n, 50_005));
    expect(q.total).toBe(0);
  });
});
