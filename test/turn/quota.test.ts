/**
 * coturn's quotas and bandwidth limits at the core and in the engine's shared counters:
 * --user-quota / --total-quota (486, RFC 8656 §7.2 step 8), --max-bps (token buckets per session and
 * direction) and --bps-capacity (sessions reserve their --max-bps; 486 "Allocation Bandwidth Quota
 * Reached" when none is left).
 */
import { describe, expect, test } from "bun:test";
import { parseEndpoint } from "../../src/net/endpoint.ts";
import { Attr, StunMethod, encodeChannelData, readErrorCode, writeChannelNumber, writeLifetime, writeXorAddress } from "../../src/stun/index.ts";
import { SharedQuota, createQuotaShared, type QuotaLimits } from "../../src/engine/quota.ts";
import { harness, type Harness } from "./harness.ts";

const PEER = parseEndpoint("198.51.100.20", 7000);
const CLIENT = parseEndpoint("192.0.2.1", 1);

function quota(limits: Partial<QuotaLimits>, shared = createQuotaShared()): SharedQuota {
  return new SharedQuota(shared, { userQuota: 0, totalQuota: 0, bpsCapacity: 0, restUsernames: false, ...limits });
}

/** An allocation with channel 0x4000 bound to PEER; returns the client and its relay id. */
function boundClient(h: Harness, port: number) {
  const c = h.client("192.0.2.50", port);
  expect(c.allocate().ok).toBe(true);
  const relayId = h.relays.lastId;
  const r = c.request(StunMethod.ChannelBind, (w) => {
    writeChannelNumber(w, 0x4000);
    writeXorAddress(w, Attr.XorPeerAddress, PEER);
  });
  expect(r.ok).toBe(true);
  return { c, relayId };
}

describe("SharedQuota (the engines' shared counters)", () => {
  test("--user-quota: a user's third allocation is refused, other users are not, release frees a slot", () => {
    const q = quota({ userQuota: 2 });
    expect(q.acquire("alice", CLIENT)).toBe(true);
    expect(q.acquire("alice", CLIENT)).toBe(true);
    expect(q.acquire("alice", CLIENT)).toBe(false);
    expect(q.acquire("bob", CLIENT)).toBe(true);
    expect(q.total).toBe(3); // the refused one left no trace
    q.release("alice", CLIENT);
    expect(q.acquire("alice", CLIENT)).toBe(true);
  });

  test("--user-quota counts across engines: two SharedQuota over one shared block", () => {
    const shared = createQuotaShared();
    const engine0 = quota({ userQuota: 1 }, shared);
    const engine1 = quota({ userQuota: 1 }, shared);
    expect(engine0.acquire("alice", CLIENT)).toBe(true);
    expect(engine1.acquire("alice", CLIENT)).toBe(false);
  });

  test("--user-quota is exact for 20,000 distinct users, and the table empties when they leave", () => {
    const q = quota({ userQuota: 2 });
    const users = Array.from({ length: 20_000 }, (_, i) => `user${i}`);
    for (const u of users) expect(q.acquire(u, CLIENT) && q.acquire(u, CLIENT)).toBe(true);
    for (const u of users) expect(q.acquire(u, CLIENT)).toBe(false);
    expect(q.userCount).toBe(20_000);
    // Leaving in a different order than arriving exercises the table's deletion.
    for (const u of [...users].reverse()) q.release(u, CLIENT);
    for (let i = 0; i < users.length; i += 2) q.release(users[i]!, CLIENT);
    expect(q.userCount).toBe(10_000);
    // Odd users still hold one: one more fits, a third does not. Even users start again from zero.
    for (let i = 1; i < users.length; i += 2) expect([q.acquire(users[i]!, CLIENT), q.acquire(users[i]!, CLIENT)]).toEqual([true, false]);
    for (let i = 0; i < users.length; i += 2) expect([q.acquire(users[i]!, CLIENT), q.acquire(users[i]!, CLIENT), q.acquire(users[i]!, CLIENT)]).toEqual([true, true, false]);
    for (const u of users) { q.release(u, CLIENT); q.release(u, CLIENT); }
    expect(q.userCount).toBe(0);
    expect(q.total).toBe(0);
  });

  test("TURN REST usernames count the user, not the expiry (coturn's get_real_username)", () => {
    const q = quota({ userQuota: 1, restUsernames: true });
    expect(q.acquire("1700000000:alice", CLIENT)).toBe(true);
    expect(q.acquire("1700000600:alice", CLIENT)).toBe(false);
    expect(q.acquire("1700000600:bob", CLIENT)).toBe(true);
  });

  test("--total-quota: allocations without a username count too", () => {
    const q = quota({ totalQuota: 2 });
    expect(q.acquire(undefined, CLIENT)).toBe(true);
    expect(q.acquire("alice", CLIENT)).toBe(true);
    expect(q.acquire("bob", CLIENT)).toBe(false);
    q.release(undefined, CLIENT);
    expect(q.acquire("bob", CLIENT)).toBe(true);
  });

  test("--bps-capacity: full grants, then the remainder, then 0; release gives it back", () => {
    const q = quota({ bpsCapacity: 25_000 });
    expect(q.reserveBandwidth(10_000)).toBe(10_000);
    expect(q.reserveBandwidth(10_000)).toBe(10_000);
    expect(q.reserveBandwidth(10_000)).toBe(5_000);
    expect(q.reserveBandwidth(10_000)).toBe(0);
    q.releaseBandwidth(5_000);
    expect(q.reserveBandwidth(10_000)).toBe(5_000);
  });
});

describe("the core with the quota hook (RFC 8656 §7.2 step 8)", () => {
  test("--user-quota through Allocate: 486, and the slot returns after Refresh(0)", () => {
    const h = harness({ quota: quota({ userQuota: 1 }) });
    const first = h.client("192.0.2.1", 1);
    expect(first.allocate().ok).toBe(true);
    const second = h.client("192.0.2.1", 2);
    expect(second.allocate().errorCode).toBe(486);
    expect(h.client("192.0.2.1", 3, { username: "bob", password: "hunter2" }).allocate().ok).toBe(true);
    expect(first.request(StunMethod.Refresh, (w) => writeLifetime(w, 0)).ok).toBe(true);
    expect(second.allocate().ok).toBe(true);
  });

  test("--bps-capacity through Allocate: 486 'Allocation Bandwidth Quota Reached', freed when an allocation expires", () => {
    const h = harness({ quota: quota({ bpsCapacity: 20_000 }), maxBytesPerSecond: 10_000, defaultLifetimeSeconds: 60, maxLifetimeSeconds: 60 });
    expect(h.client("192.0.2.1", 1).allocate().ok).toBe(true);
    expect(h.client("192.0.2.1", 2).allocate().ok).toBe(true);
    const r = h.client("192.0.2.1", 3).allocate();
    expect(r.errorCode).toBe(486);
    const v = r.attr(Attr.ErrorCode)!;
    expect(readErrorCode(v, 0, v.length)!.reason).toBe("Allocation Bandwidth Quota Reached");
    h.advance(61_000);
    expect(h.server.allocationCount).toBe(0);
    expect(h.client("192.0.2.1", 4).allocate().ok).toBe(true);
  });

  test("a relay that cannot be opened (508) gives its quota and bandwidth back", () => {
    const q = quota({ totalQuota: 1, bpsCapacity: 10_000 });
    const h = harness({ quota: q, maxBytesPerSecond: 10_000 });
    h.relays.capacity = 0;
    expect(h.client("192.0.2.1", 1).allocate().errorCode).toBe(508);
    expect(q.total).toBe(0);
    expect(q.reserveBandwidth(10_000)).toBe(10_000);
  });
});

describe("--max-bps: per session, per direction, excess dropped", () => {
  test("client->peer: a second's worth passes, the rest is dropped until the bucket refills", () => {
    const h = harness({ maxBytesPerSecond: 10_000 });
    const { c } = boundClient(h, 40000);
    const datagram = encodeChannelData(0x4000, new Uint8Array(1000));
    let relayed = 0;
    for (let i = 0; i < 30; i++) relayed += c.sendRaw(datagram).filter((s) => s.kind === "toPeer").length;
    expect(relayed).toBe(10); // 10,000 bytes: ten 1000-byte payloads, then drops
    h.now += 500; // half a second refills half the bucket
    relayed = 0;
    for (let i = 0; i < 30; i++) relayed += c.sendRaw(datagram).filter((s) => s.kind === "toPeer").length;
    expect(relayed).toBe(5);
  });

  test("peer->client has its own bucket: a saturated uplink does not starve the downlink", () => {
    const h = harness({ maxBytesPerSecond: 4_000 });
    const { c, relayId } = boundClient(h, 40001);
    const datagram = encodeChannelData(0x4000, new Uint8Array(1000));
    for (let i = 0; i < 10; i++) c.sendRaw(datagram);
    h.sink.take();
    for (let i = 0; i < 10; i++) h.server.handlePeerDatagram(relayId, PEER, new Uint8Array(1000), h.now);
    expect(h.sink.take().filter((s) => s.kind === "toClient").length).toBe(4);
  });

  test("without --max-bps nothing is dropped", () => {
    const h = harness();
    const { c } = boundClient(h, 40002);
    const datagram = encodeChannelData(0x4000, new Uint8Array(1000));
    let relayed = 0;
    for (let i = 0; i < 100; i++) relayed += c.sendRaw(datagram).filter((s) => s.kind === "toPeer").length;
    expect(relayed).toBe(100);
  });
});
