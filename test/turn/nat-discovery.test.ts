/**
 * RFC 5780 NAT behaviour discovery in the core: the Binding handler with a NatDiscoveryTable of four UDP
 * listeners (two IPs, the listening port and the alternate one), and without one (--rfc5780 off).
 */
import { describe, expect, test } from "bun:test";
import { formatEndpoint, parseEndpoint, parseIp, type Endpoint } from "../../src/net/endpoint.ts";
import {
  Attr, StunMethod, readOriginAddress, readUnknownAttributes, writeChangeRequest, writePadding, writeResponsePort,
} from "../../src/stun/index.ts";
import { connectionId, FIRST_CONNECTION_ID, listenerId } from "../../src/turn/api.ts";
import { NatDiscoveryTable } from "../../src/turn/nat-discovery.ts";
import { harness, Response, type Harness } from "./harness.ts";

const A = "127.0.0.1";
const B = "127.0.0.2";
/** Listener ids as an engine would register them: A:3478, A:3479, B:3478, B:3479, and C:3478 without an alternate. */
const ADDRESSES = [`${A}:3478`, `${A}:3479`, `${B}:3478`, `${B}:3479`, "127.0.0.9:3478"];

function table(): NatDiscoveryTable {
  const a = parseIp(A)!;
  const b = parseIp(B)!;
  const t = new NatDiscoveryTable([{ address: a, alternate: b }, { address: b, alternate: a }], 3478, 3479);
  ADDRESSES.forEach((text, i) => {
    const [ip, port] = text.split(":");
    t.register(listenerId(i), parseEndpoint(ip!, Number(port)));
  });
  return t;
}

function origin(r: Response, type: number): string | undefined {
  const v = r.attr(type);
  return v === undefined ? undefined : formatEndpoint(readOriginAddress(v, 0, v.length)!);
}

/** Sends a Binding from 192.0.2.50:40000 on `listener`; returns where the one reply left from and went, decoded. */
function bind(h: Harness, listener: number, attrs?: Parameters<ReturnType<Harness["client"]>["build"]>[1]) {
  const c = h.client(undefined, undefined, undefined, listener);
  const out = c.sendRaw(c.build(StunMethod.Binding, attrs, { auth: false }));
  expect(out.length).toBe(1);
  return { from: out[0]!.listener, to: out[0]!.to as Endpoint, r: new Response(out[0]!.data) };
}

describe("RFC 5780 Binding (§6.1, §7) with an alternate address", () => {
  test("a plain Binding names where it left from (RESPONSE-ORIGIN) and the alternate address (OTHER-ADDRESS)", () => {
    const h = harness({ natDiscovery: table() });
    const { from, r } = bind(h, 0);
    expect(r.ok).toBe(true);
    expect(from).toBe(0);
    expect(formatEndpoint(r.addresses(Attr.XorMappedAddress)[0]!)).toBe("192.0.2.50:40000");
    expect(origin(r, Attr.ResponseOrigin)).toBe(`${A}:3478`);
    expect(origin(r, Attr.OtherAddress)).toBe(`${B}:3479`);
    // From the alternate side, the other address is the primary one.
    const back = bind(h, 3);
    expect(origin(back.r, Attr.ResponseOrigin)).toBe(`${B}:3479`);
    expect(origin(back.r, Attr.OtherAddress)).toBe(`${A}:3478`);
  });

  test("CHANGE-REQUEST: the answer leaves from the listener with the IP and/or port changed (§7.2)", () => {
    const h = harness({ natDiscovery: table() });
    const cases = [
      { ip: true, port: true, listener: 3, origin: `${B}:3479` },
      { ip: true, port: false, listener: 2, origin: `${B}:3478` },
      { ip: false, port: true, listener: 1, origin: `${A}:3479` },
      { ip: false, port: false, listener: 0, origin: `${A}:3478` },
    ];
    for (const c of cases) {
      const { from, to, r } = bind(h, 0, (w) => writeChangeRequest(w, c.ip, c.port));
      expect(r.ok).toBe(true);
      expect(from).toBe(c.listener);
      expect(formatEndpoint(to)).toBe("192.0.2.50:40000");
      expect(origin(r, Attr.ResponseOrigin)).toBe(c.origin);
      expect(origin(r, Attr.OtherAddress)).toBe(`${B}:3479`); // always the receiving listener's alternate
    }
    // From B:3478, changing both goes to A:3479.
    expect(bind(h, 2, (w) => writeChangeRequest(w, true, true)).from).toBe(1);
    expect(h.server.counters.bindingResponses).toBe(5);
  });

  test("RESPONSE-PORT: the answer goes to the request's source IP at that port (§7.5); 0 or a bad length is 400", () => {
    const h = harness({ natDiscovery: table() });
    const { from, to, r } = bind(h, 0, (w) => {
      writeChangeRequest(w, false, true);
      writeResponsePort(w, 41000);
    });
    expect(r.ok).toBe(true);
    expect(from).toBe(1);
    expect(formatEndpoint(to)).toBe("192.0.2.50:41000");
    // The mapped address is still where the request came from.
    expect(formatEndpoint(r.addresses(Attr.XorMappedAddress)[0]!)).toBe("192.0.2.50:40000");
    const zero = bind(h, 0, (w) => writeResponsePort(w, 0));
    expect(zero.r.errorCode).toBe(400);
    expect(formatEndpoint(zero.to)).toBe("192.0.2.50:40000");
    expect(bind(h, 0, (w) => w.addBytes(Attr.ResponsePort, new Uint8Array([0xa0, 0x28]))).r.errorCode).toBe(400);
  });

  test("PADDING is answered with as much padding as the request carried (§7.6), never with RESPONSE-PORT (400)", () => {
    const h = harness({ natDiscovery: table() });
    const { r } = bind(h, 0, (w) => writePadding(w, 1500));
    expect(r.ok).toBe(true);
    expect(r.attr(Attr.Padding)!.length).toBe(1500);
    expect(r.raw.length).toBeGreaterThan(1500);
    const small = bind(h, 0, (w) => writePadding(w, 8));
    expect(small.r.attr(Attr.Padding)!.length).toBe(8);
    const both = bind(h, 0, (w) => {
      writeResponsePort(w, 41000);
      writePadding(w, 100);
    });
    expect(both.r.errorCode).toBe(400);
  });

  test("a malformed CHANGE-REQUEST is 400, and the error leaves from the receiving listener", () => {
    const h = harness({ natDiscovery: table() });
    const { from, r } = bind(h, 0, (w) => w.addBytes(Attr.ChangeRequest, new Uint8Array(8).fill(0xff)));
    expect(r.errorCode).toBe(400);
    expect(from).toBe(0);
  });

  test("a listener without an alternate IP serves no RFC 5780: no OTHER-ADDRESS, CHANGE-REQUEST is 420", () => {
    const h = harness({ natDiscovery: table() });
    const plain = bind(h, 4);
    expect(plain.r.ok).toBe(true);
    expect(plain.r.has(Attr.OtherAddress)).toBe(false);
    expect(plain.r.has(Attr.ResponseOrigin)).toBe(false);
    const changed = bind(h, 4, (w) => writeChangeRequest(w, true, false));
    expect(changed.r.errorCode).toBe(420);
    const u = changed.r.attr(Attr.UnknownAttributes)!;
    expect(readUnknownAttributes(u, 0, u.length)).toEqual([Attr.ChangeRequest]);
  });

  test("over a TCP connection CHANGE-REQUEST is 420 and no OTHER-ADDRESS is sent (RFC 5780 is served on UDP)", () => {
    const h = harness({ natDiscovery: table() });
    const tcp = connectionId(FIRST_CONNECTION_ID + 5);
    const plain = bind(h, tcp);
    expect(plain.r.has(Attr.OtherAddress)).toBe(false);
    expect(bind(h, tcp, (w) => writeChangeRequest(w, true, true)).r.errorCode).toBe(420);
  });
});

describe("NatDiscoveryTable", () => {
  test("IPv6: OTHER-ADDRESS and CHANGE-REQUEST within the family", () => {
    const a = parseIp("2001:db8::1")!;
    const b = parseIp("2001:db8::2")!;
    const t = new NatDiscoveryTable([{ address: a, alternate: b }, { address: b, alternate: a }], 3478, 3479);
    ["2001:db8::1", "2001:db8::2"].forEach((ip, i) => {
      t.register(listenerId(i * 2), parseEndpoint(ip, 3478));
      t.register(listenerId(i * 2 + 1), parseEndpoint(ip, 3479));
    });
    // A listener on another port is no RFC 5780 listener.
    t.register(listenerId(9), parseEndpoint("2001:db8::1", 5000));
    expect(formatEndpoint(t.otherAddress(listenerId(0))!)).toBe("[2001:db8::2]:3479");
    expect(t.changed(listenerId(0), true, false)).toBe(listenerId(2));
    expect(t.changed(listenerId(3), true, true)).toBe(listenerId(0));
    expect(t.localAddress(listenerId(9))).toBeUndefined();
    expect(t.changed(listenerId(9), true, true)).toBeUndefined();
  });
});

describe("without --rfc5780 (no NatDiscovery)", () => {
  test("CHANGE-REQUEST asking for a change is 420 listing it; no OTHER-ADDRESS or RESPONSE-ORIGIN is ever sent", () => {
    const h = harness();
    const changed = bind(h, 0, (w) => writeChangeRequest(w, true, true));
    expect(changed.r.errorCode).toBe(420);
    expect(changed.from).toBe(0);
    const u = changed.r.attr(Attr.UnknownAttributes)!;
    expect(readUnknownAttributes(u, 0, u.length)).toEqual([Attr.ChangeRequest]);
    expect(h.server.counters.bindingErrors).toBe(1);
    const plain = bind(h, 0);
    expect(plain.r.ok).toBe(true);
    expect(plain.r.has(Attr.OtherAddress)).toBe(false);
    expect(plain.r.has(Attr.ResponseOrigin)).toBe(false);
    for (const attrs of [(w: Parameters<typeof writePadding>[0]) => writeResponsePort(w, 41000), (w: Parameters<typeof writePadding>[0]) => writePadding(w, 64)]) {
      expect(bind(h, 0, attrs).r.errorCode).toBe(420);
    }
  });

  test("a CHANGE-REQUEST that asks for no change is answered as a plain Binding (coturn does too)", () => {
    const h = harness();
    const { r } = bind(h, 0, (w) => writeChangeRequest(w, false, false));
    expect(r.ok).toBe(true);
    expect(r.has(Attr.OtherAddress)).toBe(false);
  });
});
