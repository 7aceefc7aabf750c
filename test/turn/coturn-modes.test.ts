/**
 * coturn's serving modes in the protocol core: the relay family of an Allocate that names none
 * (-A ipv4|ipv6|keep, -K; RFC 8656 §7.2 leaves it to the server), --no-udp-relay (442, RFC 8656 §7.2
 * step 3), --stun-only (TURN methods get 400, RFC 8489 §6.3.1) and --no-stun (Binding unanswered).
 */
import { describe, expect, test } from "bun:test";
import { Attr, StunClass, StunMethod, writeAddressFamily } from "../../src/stun/index.ts";
import { harness } from "./harness.ts";

describe("relay family of an Allocate without REQUESTED-ADDRESS-FAMILY", () => {
  test("ipv4 by default, for IPv6 clients too", () => {
    const h = harness();
    expect(h.client("2001:db8::5").allocate().addresses(Attr.XorRelayedAddress).map((a) => a.family)).toEqual([4]);
  });

  test("keep: the family the client came in on", () => {
    const h = harness({ defaultFamily: "keep" });
    expect(h.client("2001:db8::5").allocate().addresses(Attr.XorRelayedAddress).map((a) => a.family)).toEqual([6]);
    expect(h.client("192.0.2.9").allocate().addresses(Attr.XorRelayedAddress).map((a) => a.family)).toEqual([4]);
  });

  test("ipv6: IPv6 relays; REQUESTED-ADDRESS-FAMILY still wins; a dual allocation stays IPv4 + IPv6", () => {
    const h = harness({ defaultFamily: "ipv6" });
    expect(h.client("192.0.2.9").allocate().addresses(Attr.XorRelayedAddress).map((a) => a.family)).toEqual([6]);
    const asked = h.client("192.0.2.10").allocate((w) => writeAddressFamily(w, Attr.RequestedAddressFamily, 4));
    expect(asked.addresses(Attr.XorRelayedAddress).map((a) => a.family)).toEqual([4]);
    const dual = h.client("192.0.2.11").allocate((w) => writeAddressFamily(w, Attr.AdditionalAddressFamily, 6));
    expect(dual.addresses(Attr.XorRelayedAddress).map((a) => a.family)).toEqual([4, 6]);
  });
});

describe("serving modes", () => {
  test("--no-udp-relay: Allocate gets 442, Binding is answered", () => {
    const h = harness({ noUdpRelay: true });
    const c = h.client();
    expect(c.allocate().errorCode).toBe(442);
    expect(h.relays.opened).toEqual([]);
    expect(c.request(StunMethod.Binding, undefined, { auth: false }).cls).toBe(StunClass.SuccessResponse);
  });

  test("--stun-only: Binding is answered, Allocate gets 400 before any authentication", () => {
    const h = harness({ stunOnly: true });
    const c = h.client();
    expect(c.request(StunMethod.Binding, undefined, { auth: false }).cls).toBe(StunClass.SuccessResponse);
    expect(c.request(StunMethod.Allocate, undefined, { auth: false }).errorCode).toBe(400);
    expect(h.relays.opened).toEqual([]);
  });

  test("--no-stun: Binding gets no answer, TURN works", () => {
    const h = harness({ noStun: true });
    const c = h.client();
    const binding = c.sendRaw(c.build(StunMethod.Binding, undefined, { auth: false }));
    expect(binding).toEqual([]);
    expect(c.allocate().addresses(Attr.XorRelayedAddress).length).toBe(1);
  });
});

describe("SOFTWARE (RFC 8489 §14.14)", () => {
  test("--server-name's value by default; none with --no-software-attribute (an empty server name)", () => {
    const named = harness({ software: "bunturn" }).client().request(StunMethod.Binding, undefined, { auth: false });
    expect(named.message.attributes.some((a) => a.type === Attr.Software)).toBe(true);
    const bare = harness({ software: "" }).client().request(StunMethod.Binding, undefined, { auth: false });
    expect(bare.message.attributes.some((a) => a.type === Attr.Software)).toBe(false);
  });
});
