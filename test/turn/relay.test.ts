import { describe, expect, test } from "bun:test";
import { formatEndpoint, parseEndpoint, type Endpoint } from "../../src/net/endpoint.ts";
import {
  Attr, StunClass, StunMethod, StunWriter, decodeStun, encodeChannelData, getAttribute, readXorAddress,
  writeAddressFamily, writeChannelNumber, writeDontFragment, writeXorAddress, writeLifetime,
} from "../../src/stun/index.ts";
import { harness, randomTid, Response, type Harness, type TestClient } from "./harness.ts";
import { relayId as relayIdOf, type RelayId } from "../../src/turn/api.ts";

const PEER = parseEndpoint("198.51.100.20", 7000);
const PEER_OTHER_PORT = parseEndpoint("198.51.100.20", 7001);
const PEER2 = parseEndpoint("198.51.100.21", 7000);

function allocated(h: Harness, ip = "192.0.2.50", port = 40000): { c: TestClient; relayId: RelayId } {
  const c = h.client(ip, port);
  expect(c.allocate().ok).toBe(true);
  return { c, relayId: h.relays.lastId };
}

function permit(c: TestClient, ...peers: Endpoint[]): Response {
  return c.request(StunMethod.CreatePermission, (w) => {
    for (const p of peers) writeXorAddress(w, Attr.XorPeerAddress, p);
  });
}

function bind(c: TestClient, channel: number, peer: Endpoint): Response {
  return c.request(StunMethod.ChannelBind, (w) => {
    writeChannelNumber(w, channel);
    writeXorAddress(w, Attr.XorPeerAddress, peer);
  });
}

function sendIndication(peer: Endpoint | null, payload: Uint8Array | null, extra?: (w: StunWriter) => void): Uint8Array {
  const w = new StunWriter(StunMethod.Send, StunClass.Indication, randomTid());
  if (peer) writeXorAddress(w, Attr.XorPeerAddress, peer);
  if (payload) w.addBytes(Attr.Data, payload);
  extra?.(w);
  return w.finish();
}

const bytes = (...b: number[]) => new Uint8Array(b);

describe("CreatePermission (RFC 8656 §9)", () => {
  test("installs permissions for every XOR-PEER-ADDRESS", () => {
    const h = harness();
    const { c, relayId } = allocated(h);
    expect(permit(c, PEER, PEER2).ok).toBe(true);
    for (const p of [PEER, PEER2]) {
      h.server.handlePeerDatagram(relayId, p, bytes(1, 2, 3), h.now);
      expect(h.sink.take().length).toBe(1);
    }
  });

  test("no XOR-PEER-ADDRESS → 400; no allocation → 437", () => {
    const h = harness();
    const { c } = allocated(h);
    expect(c.request(StunMethod.CreatePermission).errorCode).toBe(400);
    const stranger = h.client("192.0.2.99", 1);
    stranger.learnNonce();
    expect(permit(stranger, PEER).errorCode).toBe(437);
  });

  test("all or nothing: one denied peer → 403 and no permission at all", () => {
    const h = harness();
    const { c, relayId } = allocated(h);
    expect(permit(c, PEER, parseEndpoint("10.0.0.1", 1)).errorCode).toBe(403);
    h.server.handlePeerDatagram(relayId, PEER, bytes(1), h.now);
    expect(h.sink.take()).toEqual([]);
  });

  test("a peer of a family the allocation has no relay for → 443", () => {
    const h = harness();
    const { c } = allocated(h);
    expect(permit(c, parseEndpoint("2001:db8::5", 9)).errorCode).toBe(443);
  });

  test("permissions ignore the peer's port (RFC 8656 §9)", () => {
    const h = harness();
    const { c, relayId } = allocated(h);
    permit(c, PEER);
    h.server.handlePeerDatagram(relayId, PEER_OTHER_PORT, bytes(9), h.now);
    expect(h.sink.take().length).toBe(1);
  });

  test("beyond maxPermissionsPerAllocation → 508", () => {
    const h = harness({ maxPermissionsPerAllocation: 2 });
    const { c } = allocated(h);
    expect(permit(c, PEER, PEER2).ok).toBe(true);
    expect(permit(c, PEER).ok).toBe(true); // refreshing is not adding
    expect(permit(c, parseEndpoint("198.51.100.22", 1)).errorCode).toBe(508);
  });
});

describe("Send and Data indications (RFC 8656 §10)", () => {
  test("Send with permission relays DATA to the peer from the allocation's relay", () => {
    const h = harness();
    const { c, relayId } = allocated(h);
    permit(c, PEER);
    const out = c.sendRaw(sendIndication(PEER, bytes(1, 2, 3, 4, 5)));
    expect(out.length).toBe(1);
    expect(out[0]!.kind).toBe("toPeer");
    expect(formatEndpoint(out[0]!.to)).toBe("198.51.100.20:7000");
    expect(out[0]!.relay!.id).toBe(relayId);
    expect(out[0]!.data).toEqual(bytes(1, 2, 3, 4, 5));
    expect(out[0]!.dontFragment).toBe(false);
    expect(h.server.counters.clientToPeerPackets).toBe(1);
    expect(h.server.counters.clientToPeerBytes).toBe(5);
  });

  test("DONT-FRAGMENT passes through as the dontFragment flag", () => {
    const h = harness();
    const { c } = allocated(h);
    permit(c, PEER);
    const out = c.sendRaw(sendIndication(PEER, bytes(1), (w) => writeDontFragment(w)));
    expect(out[0]!.dontFragment).toBe(true);
  });

  test("Send is silently dropped without permission, without DATA, without peer, without allocation", () => {
    const h = harness();
    const { c } = allocated(h);
    expect(c.sendRaw(sendIndication(PEER, bytes(1)))).toEqual([]);
    permit(c, PEER);
    expect(c.sendRaw(sendIndication(PEER, null))).toEqual([]);
    expect(c.sendRaw(sendIndication(null, bytes(1)))).toEqual([]);
    expect(h.client("192.0.2.77", 1).sendRaw(sendIndication(PEER, bytes(1)))).toEqual([]);
    expect(c.sendRaw(sendIndication(PEER, bytes(1), (w) => w.addUint32(0x7abc, 0)))).toEqual([]);
    expect(h.server.counters.clientToPeerPackets).toBe(0);
  });

  test("Send to a denied peer (no permission possible) is dropped silently", () => {
    const h = harness();
    const { c } = allocated(h);
    expect(c.sendRaw(sendIndication(parseEndpoint("10.1.2.3", 53), bytes(1)))).toEqual([]);
  });

  test("peer data with permission and no channel → Data indication with XOR-PEER-ADDRESS and DATA", () => {
    const h = harness();
    const { c, relayId } = allocated(h);
    permit(c, PEER);
    h.server.handlePeerDatagram(relayId, PEER, bytes(0xaa, 0xbb, 0xcc), h.now);
    const out = h.sink.take();
    expect(out.length).toBe(1);
    expect(out[0]!.kind).toBe("toClient");
    expect(out[0]!.to).toBe(c.endpoint);
    const r = decodeStun(out[0]!.data);
    if (!r.ok) throw new Error(r.reason);
    expect(r.message.cls).toBe(StunClass.Indication);
    expect(r.message.method).toBe(StunMethod.Data);
    expect(getAttribute(r.message, Attr.Data)).toEqual(bytes(0xaa, 0xbb, 0xcc));
    expect(readXorAddress(r.message.raw, 24, 8)!.key).toBe(PEER.key);
    expect(out[0]!.data.length % 4).toBe(0);
    expect(h.server.counters.peerToClientPackets).toBe(1);
  });

  test("Data indications for IPv6 peers, with distinct transaction ids", () => {
    const h = harness();
    const c = h.client();
    c.allocate((w) => writeAddressFamily(w, Attr.RequestedAddressFamily, 6));
    const relayId = h.relays.lastId;
    const peer6 = parseEndpoint("2001:db8:1::9", 9999);
    expect(permit(c, peer6).ok).toBe(true);
    h.server.handlePeerDatagram(relayId, peer6, bytes(1, 2), h.now);
    h.server.handlePeerDatagram(relayId, peer6, bytes(1, 2), h.now);
    const [a, b] = h.sink.take();
    const ra = decodeStun(a!.data);
    const rb = decodeStun(b!.data);
    if (!ra.ok || !rb.ok) throw new Error("undecodable");
    expect(readXorAddress(ra.message.raw, 24, 20)!.key).toBe(peer6.key);
    expect(ra.message.transactionId).not.toEqual(rb.message.transactionId);
  });

  test("peer data without permission, or for an unknown relay, is dropped", () => {
    const h = harness();
    const { relayId } = allocated(h);
    h.server.handlePeerDatagram(relayId, PEER, bytes(1), h.now);
    h.server.handlePeerDatagram(relayIdOf(9999), PEER, bytes(1), h.now);
    expect(h.sink.take()).toEqual([]);
    expect(h.server.counters.dropped).toBe(2);
  });
});

describe("ChannelBind and ChannelData (RFC 8656 §11, §12)", () => {
  test("bind, then ChannelData both ways; the binding also installs the permission", () => {
    const h = harness();
    const { c, relayId } = allocated(h);
    expect(bind(c, 0x4001, PEER).ok).toBe(true);
    const out = c.sendRaw(encodeChannelData(0x4001, bytes(5, 6, 7)));
    expect(out.length).toBe(1);
    expect(out[0]!.kind).toBe("toPeer");
    expect(out[0]!.to.key).toBe(PEER.key);
    expect(out[0]!.data).toEqual(bytes(5, 6, 7));
    expect(out[0]!.dontFragment).toBe(false);

    h.server.handlePeerDatagram(relayId, PEER, bytes(8, 9, 10), h.now);
    const back = h.sink.take();
    // Over UDP: header + payload, no padding.
    expect(back[0]!.data).toEqual(bytes(0x40, 0x01, 0x00, 0x03, 8, 9, 10));
    expect(back[0]!.to).toBe(c.endpoint);
  });

  test("datagrams given as a range of a larger buffer (as the engine passes its receive arena) relay as if alone", () => {
    const h = harness();
    const { c, relayId } = allocated(h);
    expect(bind(c, 0x4001, PEER).ok).toBe(true);
    // ChannelData at offset 100 of an arena full of other bytes; the range ends before the junk after it.
    const arena = new Uint8Array(300).fill(0xee);
    arena.set(encodeChannelData(0x4001, bytes(5, 6, 7)), 100);
    const sent: { bytes: Uint8Array; offset: number; length: number }[] = [];
    const record = h.sink.relayToPeer.bind(h.sink);
    h.sink.relayToPeer = (relay, peer, b, offset, length, df) => {
      sent.push({ bytes: b, offset, length });
      record(relay, peer, b, offset, length, df);
    };
    h.server.handleClientDatagram(c.listener, c.endpoint, arena, h.now, 100, 7);
    expect(h.sink.take().map((x) => Array.from(x.data))).toEqual([[5, 6, 7]]);
    // Zero copy: the sink gets the arena itself and the payload's range in it.
    expect(sent[0]!.bytes).toBe(arena);
    expect([sent[0]!.offset, sent[0]!.length]).toEqual([104, 3]);
    // A ChannelData whose length field overruns the range is dropped, even if the arena has more bytes.
    arena.set(encodeChannelData(0x4001, bytes(1, 2, 3, 4)), 200);
    h.server.handleClientDatagram(c.listener, c.endpoint, arena, h.now, 200, 7);
    expect(h.sink.take()).toEqual([]);
    // STUN in a range is decoded from that range (a Binding request gets its answer).
    const w = new StunWriter(StunMethod.Binding, StunClass.Request, randomTid());
    const binding = w.finish();
    arena.set(binding, 10);
    h.server.handleClientDatagram(c.listener, c.endpoint, arena, h.now, 10, binding.length);
    expect(h.sink.take().map((x) => x.kind)).toEqual(["reply"]);
  });

  test("peer data with room before it becomes ChannelData in place (no copy); without room, it is copied", () => {
    const h = harness();
    const { c, relayId } = allocated(h);
    expect(bind(c, 0x4001, PEER).ok).toBe(true);
    const got: { bytes: Uint8Array; offset: number; length: number }[] = [];
    const record = h.sink.relayToClient.bind(h.sink);
    h.sink.relayToClient = (listener, client, b, offset, length) => {
      got.push({ bytes: b, offset, length });
      record(listener, client, b, offset, length);
    };
    const arena = new Uint8Array(64).fill(0xee);
    arena.set(bytes(8, 9, 10), 8);
    h.server.handlePeerDatagram(relayId, PEER, arena, h.now, 8, 3);
    expect(got[0]!.bytes).toBe(arena);
    expect([got[0]!.offset, got[0]!.length]).toEqual([4, 7]);
    expect(Array.from(arena.subarray(4, 11))).toEqual([0x40, 0x01, 0x00, 0x03, 8, 9, 10]);
    expect(arena[3]).toBe(0xee); // nothing before the 4 bytes of room is touched
    // Offset 2: no room for the header, so the payload is copied out and the caller's bytes stay as they were.
    const tight = bytes(0xaa, 0xbb, 8, 9, 10);
    h.server.handlePeerDatagram(relayId, PEER, tight, h.now, 2, 3);
    expect(got[1]!.bytes).not.toBe(tight);
    expect(Array.from(tight)).toEqual([0xaa, 0xbb, 8, 9, 10]);
    expect(h.sink.take().map((x) => Array.from(x.data))).toEqual([
      [0x40, 0x01, 0x00, 0x03, 8, 9, 10],
      [0x40, 0x01, 0x00, 0x03, 8, 9, 10],
    ]);
    // Without a channel the range goes out as a Data indication carrying just the range.
    const other = parseEndpoint("198.51.100.20", 7009);
    h.server.handlePeerDatagram(relayId, other, arena.fill(0xee), h.now, 20, 2);
    const indication = decodeStun(h.sink.take()[0]!.data);
    if (!indication.ok) throw new Error(indication.reason);
    expect(Array.from(getAttribute(indication.message, Attr.Data)!)).toEqual([0xee, 0xee]);
  });

  test("ChannelData input with padding is accepted; padding is not relayed", () => {
    const h = harness();
    const { c } = allocated(h);
    bind(c, 0x4002, PEER);
    const padded = bytes(0x40, 0x02, 0x00, 0x01, 0xee, 0, 0, 0);
    expect(c.sendRaw(padded)[0]!.data).toEqual(bytes(0xee));
  });

  test("ChannelData that is truncated, unbound, reserved or from a stranger is dropped", () => {
    const h = harness();
    const { c } = allocated(h);
    bind(c, 0x4003, PEER);
    expect(c.sendRaw(bytes(0x40, 0x03, 0x00, 0x05, 1, 2))).toEqual([]); // length overruns
    expect(c.sendRaw(encodeChannelData(0x4004, bytes(1)))).toEqual([]); // not bound
    expect(c.sendRaw(encodeChannelData(0x8000, bytes(1)))).toEqual([]); // reserved range (first byte 0x80: not ChannelData)
    expect(c.sendRaw(bytes(0x40, 0x03))).toEqual([]); // shorter than a header
    expect(h.client("192.0.2.77", 2).sendRaw(encodeChannelData(0x4003, bytes(1)))).toEqual([]);
  });

  test("channel numbers: 0x4000-0x7FFF by default (RFC 5766, coturn), 0x4000-0x4FFF when strict (RFC 8656)", () => {
    const h = harness();
    const { c } = allocated(h);
    expect(bind(c, 0x3fff, PEER).errorCode).toBe(400);
    expect(bind(c, 0x8000, PEER).errorCode).toBe(400);
    expect(bind(c, 0x7fff, PEER).ok).toBe(true);
    expect(c.sendRaw(encodeChannelData(0x7fff, bytes(1))).length).toBe(1);
    const strict = harness({ channelRange: "rfc8656" });
    const s = allocated(strict).c;
    expect(bind(s, 0x5000, PEER).errorCode).toBe(400);
    expect(bind(s, 0x4fff, PEER).ok).toBe(true);
  });

  test("missing CHANNEL-NUMBER or XOR-PEER-ADDRESS → 400", () => {
    const h = harness();
    const { c } = allocated(h);
    expect(c.request(StunMethod.ChannelBind, (w) => writeChannelNumber(w, 0x4000)).errorCode).toBe(400);
    expect(c.request(StunMethod.ChannelBind, (w) => writeXorAddress(w, Attr.XorPeerAddress, PEER)).errorCode).toBe(400);
  });

  test("a channel bound to another peer, or a peer bound to another channel → 400", () => {
    const h = harness();
    const { c } = allocated(h);
    expect(bind(c, 0x4000, PEER).ok).toBe(true);
    expect(bind(c, 0x4000, PEER2).errorCode).toBe(400);
    expect(bind(c, 0x4001, PEER).errorCode).toBe(400);
    expect(bind(c, 0x4000, PEER).ok).toBe(true); // rebinding the same pair is a refresh
  });

  test("denied peer → 403; family mismatch → 443; no allocation → 437", () => {
    const h = harness();
    const { c } = allocated(h);
    expect(bind(c, 0x4000, parseEndpoint("192.168.1.1", 1)).errorCode).toBe(403);
    expect(bind(c, 0x4000, parseEndpoint("2001:db8::1", 1)).errorCode).toBe(443);
    const stranger = h.client("192.0.2.98", 1);
    stranger.learnNonce();
    expect(bind(stranger, 0x4000, PEER).errorCode).toBe(437);
  });

  test("peer traffic from another port of a permitted host goes as a Data indication, not on the channel", () => {
    const h = harness();
    const { c, relayId } = allocated(h);
    bind(c, 0x4000, PEER);
    h.server.handlePeerDatagram(relayId, PEER_OTHER_PORT, bytes(1), h.now);
    const out = h.sink.take();
    expect(out[0]!.data[0]).toBe(0x00); // STUN, not ChannelData (0x40)
    expect(c.endpoint).toBe(out[0]!.to);
  });
});

describe("Refresh (RFC 8656 §7.4-7.5)", () => {
  test("LIFETIME 0 deletes the allocation and closes its relay exactly once", () => {
    const h = harness();
    const { c, relayId } = allocated(h);
    const r = c.request(StunMethod.Refresh, (w) => writeLifetime(w, 0));
    expect(r.ok).toBe(true);
    expect(r.lifetime()).toBe(0);
    expect(h.server.allocationCount).toBe(0);
    expect(h.relays.closed.map((x) => x.id)).toEqual([relayId]);
    expect(h.server.counters.allocationsDeleted).toBe(1);
    expect(c.request(StunMethod.Refresh).errorCode).toBe(437);
    h.advance(4_000_000);
    expect(h.relays.closed.length).toBe(1);
  });

  test("LIFETIME 0: quota and bandwidth go back before the relay closes and before the answer is sent", () => {
    // The engine flushes queued datagrams when a relay closes; a client that saw the answer must find its
    // quota free, even when its next Allocate lands on another engine a microsecond later.
    const events: string[] = [];
    const h = harness({
      maxBytesPerSecond: 1000,
      quota: {
        acquire: () => true,
        release: () => void events.push("release"),
        reserveBandwidth: (bps: number) => bps,
        releaseBandwidth: () => void events.push("releaseBandwidth"),
      },
    });
    const { c } = allocated(h);
    const close = h.relays.close.bind(h.relays);
    h.relays.close = (relay) => {
      events.push("close");
      close(relay);
    };
    const reply = h.sink.reply.bind(h.sink);
    h.sink.reply = (listener, client, data) => {
      events.push("reply");
      reply(listener, client, data);
    };
    expect(c.request(StunMethod.Refresh, (w) => writeLifetime(w, 0)).ok).toBe(true);
    expect(events).toEqual(["release", "releaseBandwidth", "close", "reply"]);
  });

  test("a retransmitted delete gets the same success again", () => {
    const h = harness();
    const { c } = allocated(h);
    const request = c.build(StunMethod.Refresh, (w) => writeLifetime(w, 0));
    const first = c.sendRaw(request)[0]!.data;
    // The allocation is gone; RFC 8656 §7.5 expects clients to take the 437 as success.
    expect(new Response(c.sendRaw(request)[0]!.data).errorCode).toBe(437);
    expect(new Response(first).ok).toBe(true);
  });

  test("a new lifetime moves the expiry", () => {
    const h = harness();
    const { c } = allocated(h);
    h.advance(500_000);
    expect(c.request(StunMethod.Refresh, (w) => writeLifetime(w, 600)).lifetime()).toBe(600);
    h.advance(500_000);
    expect(h.server.allocationCount).toBe(1);
    h.advance(101_000);
    expect(h.server.allocationCount).toBe(0);
  });

  test("dual allocation: LIFETIME 0 with REQUESTED-ADDRESS-FAMILY drops one family; wrong family → 443", () => {
    const h = harness();
    const c = h.client();
    c.allocate((w) => writeAddressFamily(w, Attr.AdditionalAddressFamily, 6));
    const r = c.request(StunMethod.Refresh, (w) => {
      writeLifetime(w, 0);
      writeAddressFamily(w, Attr.RequestedAddressFamily, 6);
    });
    expect(r.ok).toBe(true);
    expect(h.server.allocationCount).toBe(1);
    expect(h.relays.closed.map((x) => x.address.family)).toEqual([6]);
    const again = c.request(StunMethod.Refresh, (w) => writeAddressFamily(w, Attr.RequestedAddressFamily, 6));
    expect(again.errorCode).toBe(443);
  });

  test("420 for unknown comprehension-required attributes in an authenticated request", () => {
    const h = harness();
    const { c } = allocated(h);
    const r = c.request(StunMethod.Refresh, (w) => w.addUint32(0x0ffe, 0));
    expect(r.errorCode).toBe(420);
    expect(r.has(Attr.UnknownAttributes)).toBe(true);
    expect(r.has(Attr.MessageIntegrity)).toBe(true);
  });
});

describe("more data-path cases", () => {
  test("a retransmitted Refresh is answered from the cache without extending the lifetime again", () => {
    const h = harness({ maxLifetimeSeconds: 3600 });
    const { c } = allocated(h);
    h.advance(100_000);
    const refresh = c.build(StunMethod.Refresh, (w) => writeLifetime(w, 700));
    const first = c.sendRaw(refresh)[0]!.data; // expires at 100 + 700 = 800 s
    h.advance(30_000);
    expect(c.sendRaw(refresh)[0]!.data).toEqual(first); // re-applying it would move expiry to 830 s
    h.advance(669_000);
    expect(h.server.allocationCount).toBe(1);
    h.advance(1_000);
    expect(h.server.allocationCount).toBe(0);
  });

  test("the listener is part of the 5-tuple on the data path too", () => {
    const h = harness();
    const { c } = allocated(h);
    bind(c, 0x4000, PEER);
    const elsewhere = h.client(c.endpoint.address.join("."), c.endpoint.port, undefined, 1);
    expect(elsewhere.sendRaw(encodeChannelData(0x4000, bytes(1)))).toEqual([]);
    expect(c.sendRaw(encodeChannelData(0x4000, bytes(1))).length).toBe(1);
  });

  test("Send indications to many ports of one permitted host reach the right ports", () => {
    const h = harness();
    const { c } = allocated(h);
    permit(c, PEER);
    for (let port = 1000; port < 1200; port++) {
      const out = c.sendRaw(sendIndication(parseEndpoint("198.51.100.20", port), bytes(port & 0xff)));
      expect(out.length).toBe(1);
      expect(out[0]!.to.port).toBe(port);
      expect(out[0]!.data).toEqual(bytes(port & 0xff));
    }
  });

  test("IPv6 Send indication and dual allocation: each family uses its own relay", () => {
    const h = harness();
    const c = h.client();
    c.allocate((w) => writeAddressFamily(w, Attr.AdditionalAddressFamily, 6));
    const [relay4, relay6] = [relayIdOf(h.relays.lastId - 1), h.relays.lastId];
    const peer6 = parseEndpoint("2001:db8:2::1", 4000);
    expect(permit(c, PEER, peer6).ok).toBe(true);
    const out6 = c.sendRaw(sendIndication(peer6, bytes(6)));
    expect(out6[0]!.relay!.id).toBe(relay6);
    expect(out6[0]!.to.key).toBe(peer6.key);
    expect(c.sendRaw(sendIndication(PEER, bytes(4)))[0]!.relay!.id).toBe(relay4);
    h.server.handlePeerDatagram(relay6, peer6, bytes(1), h.now);
    expect(h.sink.take()[0]!.to).toBe(c.endpoint);
  });

  test("errorsSent counts error responses", () => {
    const h = harness();
    const { c } = allocated(h);
    const before = h.server.counters.errorsSent;
    c.request(StunMethod.CreatePermission);
    expect(h.server.counters.errorsSent).toBe(before + 1);
  });
});
