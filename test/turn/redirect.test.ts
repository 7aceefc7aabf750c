/**
 * 300 Try Alternate (RFC 8656 §7.2, RFC 8489 §10, §14.15) and drain (coturn's SIGUSR1) in the core: which
 * Allocates are turned away, how (signed or not), and that nothing else is.
 */
import { describe, expect, test } from "bun:test";
import { parseEndpoint, type Endpoint } from "../../src/net/endpoint.ts";
import { Attr, StunDecoder, StunMethod, readAddress, readText, verifyMessageIntegrity, writeChannelNumber, writeRequestedTransport, writeXorAddress } from "../../src/stun/index.ts";
import type { AllocateAdmission } from "../../src/turn/api.ts";
import { DRAINING_REASON } from "../../src/turn/redirect.ts";
import { harness, type Response } from "./harness.ts";

const ALT4 = parseEndpoint("203.0.113.7", 3478);

/** A switchable admission: what a draining engine or one with alternates answers. */
function admission(decide: (client: Endpoint) => Endpoint | "refuse" | undefined): AllocateAdmission & { asked: number } {
  const a = { asked: 0, admit: (_path: unknown, client: Endpoint) => (a.asked++, decide(client)) };
  return a as AllocateAdmission & { asked: number };
}

function alternateOf(r: Response): Endpoint | null {
  const v = r.attr(Attr.AlternateServer);
  return v === undefined ? null : readAddress(v, 0, v.length);
}

function signedWith(r: Response, key: Uint8Array): boolean {
  const d = new StunDecoder();
  d.decode(r.raw);
  return d.integrity >= 0 && verifyMessageIntegrity(r.raw, d.offsets[d.integrity]!, d.lengths[d.integrity]!, key, false);
}

describe("300 Try Alternate", () => {
  test("an Allocate without MESSAGE-INTEGRITY gets 300 with ALTERNATE-SERVER at once, unsigned (coturn), and no allocation", () => {
    const h = harness({ admission: admission(() => ALT4) });
    const c = h.client();
    const r = c.request(StunMethod.Allocate, (w) => writeRequestedTransport(w, 17), { auth: false });
    expect(r.errorCode).toBe(300);
    expect(alternateOf(r)?.key).toBe(ALT4.key);
    expect(r.has(Attr.MessageIntegrity)).toBe(false);
    expect(r.has(Attr.Nonce)).toBe(false);
    expect(h.server.allocationCount).toBe(0);
    expect(h.server.counters.redirected).toBe(1);
  });

  test("an authenticated Allocate gets a 300 signed with its key (RFC 8489 §9.2.5 clients check it); a wrong key still gets 401", () => {
    let redirect = false;
    const h = harness({ admission: admission(() => (redirect ? ALT4 : undefined)) });
    const c = h.client();
    c.learnNonce(); // the 401 first, while no redirect is configured
    redirect = true;
    const r = c.allocate();
    expect(r.errorCode).toBe(300);
    expect(alternateOf(r)?.key).toBe(ALT4.key);
    expect(signedWith(r, c.key())).toBe(true);
    const wrong = c.allocate(undefined, { password: "not-it" });
    expect(wrong.errorCode).toBe(401);
    expect(h.server.allocationCount).toBe(0);
  });

  test("only new Allocates are asked: Refresh, CreatePermission and ChannelBind of a live allocation go on", () => {
    let redirect = false;
    const a = admission(() => (redirect ? ALT4 : undefined));
    const h = harness({ admission: a });
    const c = h.client();
    expect(c.allocate().ok).toBe(true);
    const asked = a.asked;
    redirect = true;
    const peer = parseEndpoint("198.51.100.9", 5000);
    expect(c.request(StunMethod.Refresh).ok).toBe(true);
    expect(c.request(StunMethod.CreatePermission, (w) => writeXorAddress(w, Attr.XorPeerAddress, peer)).ok).toBe(true);
    expect(c.request(StunMethod.ChannelBind, (w) => {
      writeChannelNumber(w, 0x4001);
      writeXorAddress(w, Attr.XorPeerAddress, peer);
    }).ok).toBe(true);
    expect(a.asked).toBe(asked);
    expect(h.server.allocationCount).toBe(1);
  });
});

describe("drain with nowhere to send clients", () => {
  test("the unauthenticated Allocate is challenged as usual, the authenticated one gets 403 with coturn's reason, signed", () => {
    const h = harness({ admission: admission(() => "refuse") });
    const c = h.client();
    expect(c.learnNonce().errorCode).toBe(401);
    const r = c.allocate();
    expect(r.errorCode).toBe(403);
    const v = r.attr(Attr.ErrorCode)!;
    expect(readText(v, 4, v.length - 4, Attr.ErrorCode)).toBe(DRAINING_REASON);
    expect(signedWith(r, c.key())).toBe(true);
    expect(h.server.allocationCount).toBe(0);
    expect(h.server.counters.drainRefused).toBe(1);
  });
});
