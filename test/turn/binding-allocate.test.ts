import { describe, expect, test } from "bun:test";
import { formatEndpoint, parseEndpoint } from "../../src/net/endpoint.ts";
import {
  Attr, StunClass, StunMethod, StunWriter, readAddressErrorCode, readReservationToken, readUnknownAttributes,
  writeAddressFamily, writeEvenPort, writeLifetime, writeRequestedTransport, writeReservationToken, writeDontFragment,
  writeChannelNumber, writeXorAddress,
} from "../../src/stun/index.ts";
import { harness, Response, randomTid } from "./harness.ts";

describe("Binding (RFC 8489 §6.3.1)", () => {
  test("answers with XOR-MAPPED-ADDRESS and SOFTWARE, no authentication needed", () => {
    const h = harness();
    const c = h.client("198.51.100.7", 5555);
    const r = c.request(StunMethod.Binding, undefined, { auth: false });
    expect(r.ok).toBe(true);
    expect(r.method).toBe(StunMethod.Binding);
    expect(formatEndpoint(r.addresses(Attr.XorMappedAddress)[0]!)).toBe("198.51.100.7:5555");
    expect(r.text(Attr.Software)).toBe("bunturn-test");
    expect(r.has(Attr.MessageIntegrity)).toBe(false);
    expect(r.has(Attr.Fingerprint)).toBe(false);
    expect(Buffer.from(r.message.transactionId)).toEqual(Buffer.from(c.lastTid));
    expect(h.server.counters.bindingRequests).toBe(1);
  });

  test("IPv6 client, and FINGERPRINT echoed when the request had one", () => {
    const h = harness();
    const c = h.client("2001:db8::77", 6000);
    const r = c.request(StunMethod.Binding, undefined, { auth: false, fingerprint: true });
    expect(formatEndpoint(r.addresses(Attr.XorMappedAddress)[0]!)).toBe("[2001:db8::77]:6000");
    expect(r.has(Attr.Fingerprint)).toBe(true); // Response() decoding verified the CRC
  });

  test("Binding indications are ignored", () => {
    const h = harness();
    const w = new StunWriter(StunMethod.Binding, StunClass.Indication, randomTid());
    expect(h.client().sendRaw(w.finish())).toEqual([]);
  });

  test("unknown comprehension-required attribute → 420 with UNKNOWN-ATTRIBUTES; optional ones are ignored", () => {
    const h = harness();
    const c = h.client();
    const r = c.request(StunMethod.Binding, (w) => {
      w.addUint32(0x7ffe, 1);
      w.addUint32(0xfffe, 1);
    }, { auth: false });
    expect(r.errorCode).toBe(420);
    const u = r.attr(Attr.UnknownAttributes)!;
    expect(readUnknownAttributes(u, 0, u.length)).toEqual([0x7ffe]);
    const ok = c.request(StunMethod.Binding, (w) => w.addUint32(0xfffe, 1), { auth: false });
    expect(ok.ok).toBe(true);
  });

  test("unknown request method → 400; responses sent to the server are dropped", () => {
    const h = harness();
    const c = h.client();
    expect(c.request(0x0fe, undefined, { auth: false }).errorCode).toBe(400);
    const response = new StunWriter(StunMethod.Binding, StunClass.SuccessResponse, randomTid()).finish();
    expect(c.sendRaw(response)).toEqual([]);
  });
});

describe("Allocate (RFC 8656 §7.2)", () => {
  test("401 first, then success with relayed + mapped address, lifetime, integrity", () => {
    const h = harness();
    const c = h.client("198.51.100.1", 40001);
    const challenge = c.learnNonce();
    expect(challenge.cls).toBe(StunClass.ErrorResponse);
    expect(challenge.text(Attr.Realm)).toBe("bunturn.test");
    expect(h.server.allocationCount).toBe(0);
    const r = c.allocate();
    expect(r.ok).toBe(true);
    expect(formatEndpoint(r.addresses(Attr.XorRelayedAddress)[0]!)).toMatch(/^203\.0\.113\.10:/);
    expect(formatEndpoint(r.addresses(Attr.XorMappedAddress)[0]!)).toBe("198.51.100.1:40001");
    expect(r.lifetime()).toBe(600);
    expect(r.has(Attr.MessageIntegrity)).toBe(true);
    expect(r.text(Attr.Software)).toBe("bunturn-test");
    expect(h.server.allocationCount).toBe(1);
    expect(h.server.counters.allocationsCreated).toBe(1);
    expect(h.relays.opened).toEqual([{ kind: "fresh", family: 4, evenPort: false, reserveNext: false }]);
  });

  test("the response's MESSAGE-INTEGRITY verifies with the client's key", async () => {
    const { verifyMessageIntegrity } = await import("../../src/stun/index.ts");
    const h = harness();
    const c = h.client();
    const r = c.allocate();
    const m = r.message;
    expect(verifyMessageIntegrity(m.raw, m.integrityOffset + 4, 20, c.key(), false)).toBe(true);
  });

  test("second Allocate on the same 5-tuple → 437; another port or listener is another 5-tuple", () => {
    const h = harness();
    const c = h.client("198.51.100.1", 40001);
    expect(c.allocate().ok).toBe(true);
    expect(c.allocate().errorCode).toBe(437);
    expect(h.client("198.51.100.1", 40002).allocate().ok).toBe(true);
    expect(h.client("198.51.100.1", 40001, undefined, 1).allocate().ok).toBe(true);
    expect(h.server.allocationCount).toBe(3);
  });

  test("REQUESTED-TRANSPORT missing → 400, TCP → 442", () => {
    const h = harness();
    const c = h.client();
    c.learnNonce();
    expect(c.request(StunMethod.Allocate).errorCode).toBe(400);
    expect(c.request(StunMethod.Allocate, (w) => writeRequestedTransport(w, 6)).errorCode).toBe(442);
    expect(h.server.allocationCount).toBe(0);
    expect(h.relays.opened.length).toBe(0);
  });

  test("lifetime follows coturn: absent → default, below default → default, above max → max", () => {
    const h = harness({ maxLifetimeSeconds: 3600 });
    expect(h.client("192.0.2.1", 1).allocate().lifetime()).toBe(600);
    expect(h.client("192.0.2.1", 2).allocate((w) => writeLifetime(w, 30)).lifetime()).toBe(600);
    expect(h.client("192.0.2.1", 3).allocate((w) => writeLifetime(w, 1800)).lifetime()).toBe(1800);
    expect(h.client("192.0.2.1", 4).allocate((w) => writeLifetime(w, 100000)).lifetime()).toBe(3600);
  });

  test("allocator out of ports → 508; unsupported family → 440", () => {
    const h = harness();
    h.relays.capacity = 0;
    expect(h.client().allocate().errorCode).toBe(508);
    const h2 = harness();
    h2.relays.families = new Set([4]);
    expect(h2.client().allocate((w) => writeAddressFamily(w, Attr.RequestedAddressFamily, 6)).errorCode).toBe(440);
    expect(h2.server.allocationCount).toBe(0);
  });

  test("REQUESTED-ADDRESS-FAMILY IPv6 gives an IPv6 relay; an unknown family value → 440", () => {
    const h = harness();
    const r = h.client().allocate((w) => writeAddressFamily(w, Attr.RequestedAddressFamily, 6));
    expect(r.addresses(Attr.XorRelayedAddress)[0]!.family).toBe(6);
    const bad = h.client("192.0.2.9", 9).allocate((w) => {
      const at = w.reserve(Attr.RequestedAddressFamily, 4);
      w.buffer[at] = 0x03;
    });
    expect(bad.errorCode).toBe(440);
  });

  test("dual allocation (ADDITIONAL-ADDRESS-FAMILY): two relayed addresses", () => {
    const h = harness();
    const r = h.client().allocate((w) => writeAddressFamily(w, Attr.AdditionalAddressFamily, 6));
    expect(r.ok).toBe(true);
    expect(r.addresses(Attr.XorRelayedAddress).map((e) => e.family)).toEqual([4, 6]);
  });

  test("dual allocation where IPv6 is unavailable: IPv4 relay plus ADDRESS-ERROR-CODE 440", () => {
    const h = harness();
    h.relays.families = new Set([4]);
    const r = h.client().allocate((w) => writeAddressFamily(w, Attr.AdditionalAddressFamily, 6));
    expect(r.ok).toBe(true);
    expect(r.addresses(Attr.XorRelayedAddress).map((e) => e.family)).toEqual([4]);
    const aec = r.attr(Attr.AddressErrorCode)!;
    expect(readAddressErrorCode(aec, 0, aec.length)).toEqual({ family: 6, code: 440 });
  });

  test("family attribute conflicts → 400", () => {
    const h = harness();
    const both = h.client("192.0.2.1", 1).allocate((w) => {
      writeAddressFamily(w, Attr.RequestedAddressFamily, 4);
      writeAddressFamily(w, Attr.AdditionalAddressFamily, 6);
    });
    expect(both.errorCode).toBe(400);
    const additionalV4 = h.client("192.0.2.1", 2).allocate((w) => writeAddressFamily(w, Attr.AdditionalAddressFamily, 4));
    expect(additionalV4.errorCode).toBe(400);
    expect(h.relays.opened.length).toBe(0);
  });

  test("EVEN-PORT with R: even port, RESERVATION-TOKEN returned; the token opens the reserved port", () => {
    const h = harness();
    const r = h.client("192.0.2.1", 1).allocate((w) => writeEvenPort(w, true));
    expect(r.ok).toBe(true);
    expect(r.addresses(Attr.XorRelayedAddress)[0]!.port % 2).toBe(0);
    const tv = r.attr(Attr.ReservationToken)!;
    const token = readReservationToken(tv, 0, tv.length)!;
    expect(h.relays.opened[0]).toEqual({ kind: "fresh", family: 4, evenPort: true, reserveNext: true });
    const second = h.client("192.0.2.1", 2).allocate((w) => writeReservationToken(w, token));
    expect(second.ok).toBe(true);
    expect(h.relays.opened[1]).toEqual({ kind: "token", reservationToken: token });
    // Claimed, so it must not be released when the 30 s pass.
    h.advance(31_000);
    expect(h.relays.released).toEqual([]);
  });

  test("a token from another engine: the allocation takes the family of the relay actually opened", () => {
    const h = harness();
    // This core never saw the token (another engine reserved it); the allocator knows it means IPv6.
    const foreignToken = 0x0102030405060708n;
    h.relays.tokens.set(foreignToken, 6);
    const c = h.client("192.0.2.1", 2);
    const allocated = c.allocate((w) => writeReservationToken(w, foreignToken));
    expect(allocated.ok).toBe(true);
    expect(allocated.addresses(Attr.XorRelayedAddress)[0]!.family).toBe(6);
    // Without it, ChannelBind to an IPv6 peer got 443 Peer Address Family Mismatch (seen with uclient -x).
    const bound = c.request(StunMethod.ChannelBind, (w) => {
      writeChannelNumber(w, 0x4001);
      writeXorAddress(w, Attr.XorPeerAddress, parseEndpoint("2001:db8::99", 4000));
    });
    expect(bound.ok).toBe(true);
  });

  test("a token reserved by an IPv6 allocation opens an IPv6 relay (turnutils_uclient -x does this)", () => {
    const h = harness();
    const first = h.client("192.0.2.1", 1).allocate((w) => {
      writeAddressFamily(w, Attr.RequestedAddressFamily, 6);
      writeEvenPort(w, true);
    });
    const tv = first.attr(Attr.ReservationToken)!;
    const token = readReservationToken(tv, 0, tv.length)!;
    const second = h.client("192.0.2.1", 2).allocate((w) => writeReservationToken(w, token));
    expect(second.ok).toBe(true);
    expect(h.relays.opened[1]).toEqual({ kind: "token", reservationToken: token });
    expect(second.addresses(Attr.XorRelayedAddress)[0]!.family).toBe(6);
  });

  test("an unclaimed reservation is released after 30 s, exactly once", () => {
    const h = harness();
    const r = h.client().allocate((w) => writeEvenPort(w, true));
    const tv = r.attr(Attr.ReservationToken)!;
    h.advance(29_000);
    expect(h.relays.released).toEqual([]);
    h.advance(2_000);
    expect(h.relays.released).toEqual([readReservationToken(tv, 0, tv.length)!]);
    h.advance(600_000);
    expect(h.relays.released.length).toBe(1);
  });

  test("EVEN-PORT together with RESERVATION-TOKEN → 400; an unknown token → 508", () => {
    const h = harness();
    const both = h.client("192.0.2.1", 1).allocate((w) => {
      writeEvenPort(w, false);
      writeReservationToken(w, 42n);
    });
    expect(both.errorCode).toBe(400);
    expect(h.client("192.0.2.1", 2).allocate((w) => writeReservationToken(w, 42n)).errorCode).toBe(508);
  });

  test("DONT-FRAGMENT in Allocate is accepted", () => {
    const h = harness();
    expect(h.client().allocate((w) => writeDontFragment(w)).ok).toBe(true);
  });

  test("quota hook: refusal → 486, release when the allocation ends", () => {
    const held: string[] = [];
    const h = harness({
      quota: {
        acquire: (u) => (held.length < 1 ? (held.push(u!), true) : false),
        release: (u) => held.splice(held.indexOf(u!), 1),
      },
    });
    const a = h.client("192.0.2.1", 1);
    expect(a.allocate().ok).toBe(true);
    expect(h.client("192.0.2.1", 2).allocate().errorCode).toBe(486);
    expect(a.request(StunMethod.Refresh, (w) => writeLifetime(w, 0)).ok).toBe(true);
    expect(held).toEqual([]);
    expect(h.client("192.0.2.1", 3).allocate().ok).toBe(true);
  });

  test("a retransmitted Allocate gets the byte-identical response and opens no second relay", () => {
    const h = harness();
    const c = h.client();
    c.learnNonce();
    const tid = randomTid();
    const request = c.build(StunMethod.Allocate, (w) => writeRequestedTransport(w, 17), { tid });
    const first = c.sendRaw(request);
    h.advance(5_000);
    const again = c.sendRaw(request);
    expect(again.length).toBe(1);
    expect(again[0]!.data).toEqual(first[0]!.data);
    expect(h.relays.opened.length).toBe(1);
    expect(new Response(again[0]!.data).ok).toBe(true);
    // After the 40 s window it is a new request: 437 on the existing allocation.
    h.advance(40_000);
    expect(new Response(c.sendRaw(request)[0]!.data).errorCode).toBe(437);
  });
});
