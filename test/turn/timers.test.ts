import { describe, expect, test } from "bun:test";
import { parseEndpoint, type Endpoint } from "../../src/net/endpoint.ts";
import { Attr, StunMethod, encodeChannelData, writeChannelNumber, writeLifetime, writeXorAddress } from "../../src/stun/index.ts";
import { harness, T0, type TestClient } from "./harness.ts";

const PEER = parseEndpoint("198.51.100.20", 7000);
const bytes = (...b: number[]) => new Uint8Array(b);

function permit(c: TestClient, peer: Endpoint) {
  return c.request(StunMethod.CreatePermission, (w) => writeXorAddress(w, Attr.XorPeerAddress, peer));
}
function bind(c: TestClient, channel: number, peer: Endpoint) {
  return c.request(StunMethod.ChannelBind, (w) => {
    writeChannelNumber(w, channel);
    writeXorAddress(w, Attr.XorPeerAddress, peer);
  });
}

describe("timers (pollTimeout / handleTimeout with a fake clock)", () => {
  test("nothing pending → undefined; an allocation → its expiry; expiry closes the relay once", () => {
    const h = harness();
    expect(h.server.pollTimeout()).toBeUndefined();
    const c = h.client();
    c.allocate();
    expect(h.server.pollTimeout()).toBe(T0 + 600_000);
    h.server.handleTimeout(T0 + 599_999);
    expect(h.server.allocationCount).toBe(1);
    h.server.handleTimeout(T0 + 600_000);
    expect(h.server.allocationCount).toBe(0);
    expect(h.relays.closed.length).toBe(1);
    expect(h.server.counters.allocationsDeleted).toBe(1);
    expect(h.server.pollTimeout()).toBeUndefined();
    h.server.handleTimeout(T0 + 10_000_000);
    expect(h.relays.closed.length).toBe(1);
  });

  test("permissions expire after 300 s: peer data is then dropped", () => {
    const h = harness();
    const c = h.client();
    c.allocate();
    const relayId = h.relays.lastId;
    permit(c, PEER);
    expect(h.server.pollTimeout()).toBe(T0 + 300_000);
    h.advance(299_000);
    h.server.handlePeerDatagram(relayId, PEER, bytes(1), h.now);
    expect(h.sink.take().length).toBe(1);
    h.advance(1_000);
    h.server.handlePeerDatagram(relayId, PEER, bytes(1), h.now);
    expect(h.sink.take()).toEqual([]);
    expect(h.server.pollTimeout()).toBe(T0 + 600_000); // only the allocation is left
  });

  test("a refreshed permission lives on", () => {
    const h = harness();
    const c = h.client();
    c.allocate();
    const relayId = h.relays.lastId;
    permit(c, PEER);
    h.advance(200_000);
    permit(c, PEER);
    h.advance(200_000);
    h.server.handlePeerDatagram(relayId, PEER, bytes(1), h.now);
    expect(h.sink.take().length).toBe(1);
  });

  test("channel bindings last 600 s; their permission must be refreshed meanwhile (RFC 8656 §12)", () => {
    const h = harness({ maxLifetimeSeconds: 3600 });
    const c = h.client();
    c.allocate((w) => writeLifetime(w, 3600));
    bind(c, 0x4000, PEER);
    h.advance(301_000); // permission gone, channel still bound
    expect(c.sendRaw(encodeChannelData(0x4000, bytes(1)))).toEqual([]);
    permit(c, PEER);
    expect(c.sendRaw(encodeChannelData(0x4000, bytes(1))).length).toBe(1);
    h.advance(300_000); // 601 s: channel expired
    permit(c, PEER);
    expect(c.sendRaw(encodeChannelData(0x4000, bytes(1)))).toEqual([]);
    // The number is free again, even for another peer.
    expect(bind(c, 0x4000, parseEndpoint("198.51.100.21", 1)).ok).toBe(true);
  });

  test("rebinding refreshes the channel and the permission", () => {
    const h = harness({ maxLifetimeSeconds: 3600 });
    const c = h.client();
    c.allocate((w) => writeLifetime(w, 3600));
    bind(c, 0x4000, PEER);
    h.advance(290_000);
    bind(c, 0x4000, PEER);
    h.advance(290_000);
    expect(c.sendRaw(encodeChannelData(0x4000, bytes(1))).length).toBe(1);
    h.advance(290_000); // 870 s after the first bind, 580 after the refresh
    bind(c, 0x4000, PEER);
    expect(c.sendRaw(encodeChannelData(0x4000, bytes(1))).length).toBe(1);
  });

  test("many allocations expire in order; each relay closed exactly once", () => {
    const h = harness({ maxLifetimeSeconds: 3600 });
    for (let i = 0; i < 50; i++) {
      const lifetime = 600 + i * 10;
      h.client("192.0.2.1", 1000 + i).allocate((w) => writeLifetime(w, lifetime));
    }
    for (let step = 0; step < 60; step++) h.advance(10_000);
    // After 600 + 600 s the first 50 lifetimes (600..1090 s) have all passed.
    h.advance(600_000);
    expect(h.server.allocationCount).toBe(0);
    expect(h.relays.closed.length).toBe(50);
    expect(new Set(h.relays.closed.map((r) => r.id)).size).toBe(50);
  });

  test("closeAll releases every relay and every pending reservation", () => {
    const h = harness();
    h.client("192.0.2.1", 1).allocate();
    h.client("192.0.2.1", 2).allocate();
    h.client("192.0.2.1", 3).allocate((w) => {
      const at = w.reserve(Attr.EvenPort, 1);
      w.buffer[at] = 0x80;
    });
    h.server.closeAll();
    expect(h.server.allocationCount).toBe(0);
    expect(h.relays.live.size).toBe(0);
    expect(h.relays.closed.length).toBe(3);
    expect(h.relays.released.length).toBe(1);
    expect(h.server.pollTimeout()).toBeUndefined();
  });
});
