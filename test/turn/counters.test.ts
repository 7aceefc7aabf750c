/**
 * The counters the core keeps for the Prometheus endpoint: every datagram in and out on both sides,
 * Binding responses and errors, and the relay addresses open now by family.
 */
import { describe, expect, test } from "bun:test";
import { parseEndpoint } from "../../src/net/endpoint.ts";
import { Attr, StunMethod, encodeChannelData, writeAddressFamily, writeChannelNumber, writeXorAddress } from "../../src/stun/index.ts";
import { BLOCK_SLOTS, SLOT, sharedProtocolCounters } from "../../src/engine/counters.ts";
import { harness } from "./harness.ts";

const PEER = parseEndpoint("198.51.100.20", 7000);

describe("ProtocolCounters for metrics", () => {
  test("Binding: requests, responses and errors; client traffic both ways counts every datagram and byte", () => {
    const h = harness();
    const c = h.client();
    const request = c.build(StunMethod.Binding, undefined, { auth: false });
    const out = c.sendRaw(request);
    expect(out.length).toBe(1);
    // A comprehension-required attribute we do not know: 420.
    const bad = c.build(StunMethod.Binding, (w) => w.addUint32(0x7abc, 0), { auth: false });
    const err = c.sendRaw(bad);
    expect(err.length).toBe(1);
    const k = h.server.counters;
    expect(k.bindingRequests).toBe(2);
    expect(k.bindingResponses).toBe(1);
    expect(k.bindingErrors).toBe(1);
    expect(k.clientPacketsIn).toBe(2);
    expect(k.clientBytesIn).toBe(request.length + bad.length);
    expect(k.clientPacketsOut).toBe(2);
    expect(k.clientBytesOut).toBe(out[0]!.data.length + err[0]!.data.length);
  });

  test("relayed traffic: peer datagrams in (relayed or not), client datagrams out include the ChannelData header", () => {
    const h = harness();
    const c = h.client();
    expect(c.allocate().ok).toBe(true);
    const relayId = h.relays.lastId;
    const before = { ...h.server.counters };
    // Without a permission the peer's datagram is counted as received, and dropped.
    h.server.handlePeerDatagram(relayId, PEER, new Uint8Array(10), h.now);
    expect(h.sink.take()).toEqual([]);
    expect(c.request(StunMethod.ChannelBind, (w) => {
      writeChannelNumber(w, 0x4000);
      writeXorAddress(w, Attr.XorPeerAddress, PEER);
    }).ok).toBe(true);
    h.server.handlePeerDatagram(relayId, PEER, new Uint8Array(100), h.now);
    const toClient = h.sink.take();
    expect(toClient.length).toBe(1);
    const k = h.server.counters;
    expect(k.peerPacketsIn - before.peerPacketsIn).toBe(2);
    expect(k.peerBytesIn - before.peerBytesIn).toBe(110);
    expect(k.peerToClientPackets - before.peerToClientPackets).toBe(1);
    expect(k.dropped - before.dropped).toBe(1);
    // ChannelBind request + its response, then the 104-byte ChannelData to the client.
    expect(k.clientPacketsIn - before.clientPacketsIn).toBe(1);
    expect(k.clientPacketsOut - before.clientPacketsOut).toBe(2);
    const responseBytes = k.clientBytesOut - before.clientBytesOut - 104;
    expect(responseBytes).toBeGreaterThan(20);
    // Client to peer over the channel: 4-byte header in, payload out.
    c.sendRaw(encodeChannelData(0x4000, new Uint8Array(50)));
    expect(k.clientPacketsIn - before.clientPacketsIn).toBe(2);
    expect(k.clientToPeerBytes - before.clientToPeerBytes).toBe(50);
  });

  test("relays by family: a gauge that follows allocations, dual ones count in both", () => {
    const h = harness();
    const a = h.client("192.0.2.1", 1000);
    const b = h.client("192.0.2.2", 1000);
    expect(a.allocate().ok).toBe(true);
    expect(b.allocate((w) => writeAddressFamily(w, Attr.AdditionalAddressFamily, 6)).ok).toBe(true);
    const k = h.server.counters;
    expect([k.relays4, k.relays6, k.allocations]).toEqual([2, 1, 2]);
    expect(a.request(StunMethod.Refresh, (w) => w.addUint32(Attr.Lifetime, 0)).ok).toBe(true);
    expect([k.relays4, k.relays6, k.allocations]).toEqual([1, 1, 1]);
    h.advance(3600_000 + 1000);
    expect([k.relays4, k.relays6, k.allocations]).toEqual([0, 0, 0]);
  });

  test("in an engine's shared block the allocation is counted before its success response is handed out", () => {
    const block = new Float64Array(BLOCK_SLOTS);
    const h = harness({ counters: sharedProtocolCounters(block) });
    const seenByReply: number[] = [];
    const record = h.sink.reply.bind(h.sink);
    h.sink.reply = (listener, client, data) => {
      seenByReply.push(block[SLOT.allocations]!);
      record(listener, client, data);
    };
    const c = h.client();
    expect(c.allocate().ok).toBe(true);
    // The 401 that asks for credentials, then the success: the metrics reader sees 1 as soon as the client can.
    expect(seenByReply).toEqual([0, 1]);
    expect(c.request(StunMethod.Refresh, (w) => w.addUint32(Attr.Lifetime, 0)).ok).toBe(true);
    expect(seenByReply[2]).toBe(0);
  });
});
