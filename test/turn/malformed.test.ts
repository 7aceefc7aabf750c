import { describe, expect, test } from "bun:test";
import { parseEndpoint } from "../../src/net/endpoint.ts";
import {
  Attr, StunClass, StunMethod, StunWriter, encodeChannelData, writeChannelNumber, writeLifetime,
  writeMessageIntegrity, writeRequestedTransport, writeText, writeXorAddress,
} from "../../src/stun/index.ts";
import { harness, randomTid, Response, REALM } from "./harness.ts";
import { listenerId, relayId } from "../../src/turn/api.ts";

function lcg(seed: number) {
  return () => ((seed = (seed * 1664525 + 1013904223) >>> 0) >>> 8) / 0x1000000;
}

function mutate(base: Uint8Array, rand: () => number): Uint8Array {
  const choice = rand();
  if (choice < 0.15) return base.subarray(0, Math.floor(rand() * base.length));
  if (choice < 0.25) {
    const longer = new Uint8Array(base.length + 1 + Math.floor(rand() * 12));
    longer.set(base);
    return longer;
  }
  const b = base.slice();
  const flips = 1 + Math.floor(rand() * 4);
  for (let i = 0; i < flips; i++) {
    const at = Math.floor(rand() * b.length);
    if (rand() < 0.5) b[at]! ^= 1 << Math.floor(rand() * 8);
    else b[at] = Math.floor(rand() * 256);
  }
  return b;
}

describe("malformed requests get the RFC answer or a silent drop", () => {
  test("bad cookie, bad length, bad fingerprint: silently dropped", () => {
    const h = harness();
    const c = h.client();
    const good = c.build(StunMethod.Binding, undefined, { auth: false, fingerprint: true });
    const badCookie = good.slice();
    badCookie[5] ^= 0xff;
    const badFingerprint = good.slice();
    badFingerprint[good.length - 1] ^= 1;
    const truncated = good.subarray(0, good.length - 4);
    for (const b of [badCookie, badFingerprint, truncated, good.subarray(0, 10), new Uint8Array(0)]) {
      expect(c.sendRaw(b)).toEqual([]);
    }
    expect(h.server.counters.dropped).toBe(5);
    expect(c.sendRaw(good).length).toBe(1);
  });

  test("malformed attribute values → 400", () => {
    const h = harness();
    const c = h.client();
    c.allocate();
    // LIFETIME of 3 bytes
    expect(c.request(StunMethod.Refresh, (w) => w.addBytes(Attr.Lifetime, new Uint8Array(3))).errorCode).toBe(400);
    // XOR-PEER-ADDRESS with an IPv4 family and IPv6 length
    const badPeer = (w: StunWriter) => {
      const at = w.reserve(Attr.XorPeerAddress, 20);
      w.buffer[at + 1] = 0x01;
    };
    expect(c.request(StunMethod.CreatePermission, badPeer).errorCode).toBe(400);
    expect(c.request(StunMethod.ChannelBind, (w) => { writeChannelNumber(w, 0x4000); badPeer(w); }).errorCode).toBe(400);
    // REQUESTED-TRANSPORT of the wrong size (on a fresh 5-tuple)
    const d = h.client("192.0.2.200", 2);
    d.learnNonce();
    expect(d.request(StunMethod.Allocate, (w) => w.addBytes(Attr.RequestedTransport, new Uint8Array([17]))).errorCode).toBe(400);
    // a USERNAME that is not UTF-8
    const w = new StunWriter(StunMethod.Allocate, StunClass.Request, randomTid());
    writeRequestedTransport(w, 17);
    w.addBytes(Attr.Username, new Uint8Array([0xff, 0xfe]));
    writeText(w, Attr.Realm, REALM);
    writeText(w, Attr.Nonce, d.nonce!);
    writeMessageIntegrity(w, d.key());
    expect(new Response(d.sendRaw(w.finish())[0]!.data).errorCode).toBe(400);
  });

  test("thousands of mutated requests never throw and never create an allocation", () => {
    const h = harness();
    const rand = lcg(42);
    // Signed with a nonce issued to another source: every variant must fail auth (400/401/438) or be dropped.
    const victim = h.client("192.0.2.1", 1111);
    victim.learnNonce();
    const attacker = h.client("192.0.2.2", 2222);
    attacker.nonce = victim.nonce;
    attacker.realm = REALM;
    const seeds = [
      attacker.build(StunMethod.Allocate, (w) => { writeRequestedTransport(w, 17); writeLifetime(w, 900); }, { fingerprint: true }),
      attacker.build(StunMethod.Allocate, (w) => writeRequestedTransport(w, 17), { sha256: true }),
      attacker.build(StunMethod.Allocate, (w) => writeRequestedTransport(w, 17), { auth: false }),
      attacker.build(StunMethod.Binding, undefined, { auth: false, fingerprint: true }),
      attacker.build(StunMethod.ChannelBind, (w) => { writeChannelNumber(w, 0x4000); writeXorAddress(w, Attr.XorPeerAddress, parseEndpoint("198.51.100.1", 1)); }),
      encodeChannelData(0x4000, new Uint8Array(16)),
    ];
    for (let i = 0; i < 4000; i++) {
      const seed = seeds[i % seeds.length]!;
      const data = i % 7 === 6
        ? Uint8Array.from({ length: Math.floor(rand() * 100) }, () => Math.floor(rand() * 256))
        : mutate(seed, rand);
      const from = parseEndpoint(`192.0.2.${2 + (i % 3)}`, 2222);
      expect(() => h.server.handleClientDatagram(listenerId(0), from, data, h.now)).not.toThrow();
      for (const out of h.sink.take()) {
        expect(out.kind).toBe("reply");
        const r = new Response(out.data); // every answer is itself well formed
        if (r.cls === StunClass.ErrorResponse) expect([400, 401, 420, 437, 438]).toContain(r.errorCode!);
        else expect(r.method).toBe(StunMethod.Binding);
      }
    }
    expect(h.server.allocationCount).toBe(0);
    expect(h.relays.opened.length).toBe(0);
  });

  test("mutated traffic on a live allocation and random peer datagrams never throw", () => {
    const h = harness();
    const c = h.client();
    c.allocate();
    const relay = h.relays.lastId;
    const unknownRelay = relayId(999);
    const peer = parseEndpoint("198.51.100.1", 1);
    c.request(StunMethod.ChannelBind, (w) => { writeChannelNumber(w, 0x4000); writeXorAddress(w, Attr.XorPeerAddress, peer); });
    const send = new StunWriter(StunMethod.Send, StunClass.Indication, randomTid());
    writeXorAddress(send, Attr.XorPeerAddress, peer);
    send.addBytes(Attr.Data, new Uint8Array(33));
    const seeds = [encodeChannelData(0x4000, new Uint8Array(40)), send.finish(), c.build(StunMethod.Refresh, (w) => writeLifetime(w, 600))];
    const rand = lcg(7);
    for (let i = 0; i < 3000; i++) {
      const data = mutate(seeds[i % seeds.length]!, rand);
      expect(() => h.server.handleClientDatagram(listenerId(0), c.endpoint, data, h.now)).not.toThrow();
      const junk = Uint8Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256));
      expect(() => h.server.handlePeerDatagram(i % 3 === 0 ? unknownRelay : relay, peer, junk, h.now)).not.toThrow();
    }
    h.sink.take();
    expect(h.server.allocationCount).toBe(1);
  });
});
