/**
 * Channels and permissions per allocation: bounded, with 508 Insufficient Capacity past the bound
 * (RFC 8656 §9.2, §11.2), and a ChannelBind whose work does not grow with the number already bound.
 *
 * The work is counted, not timed: every step of every Map iteration made while the server handles one
 * request (the per-allocation tables are Maps; a scan of them is a Map iteration).
 */
import { describe, expect, test } from "bun:test";
import { parseEndpoint, type Endpoint } from "../../src/net/endpoint.ts";
import { Attr, StunMethod, writeChannelNumber, writeXorAddress } from "../../src/stun/index.ts";
import { harness, type TestClient } from "./harness.ts";

function channelBind(c: TestClient, number: number, peer: Endpoint) {
  return c.request(StunMethod.ChannelBind, (w) => {
    writeChannelNumber(w, number);
    writeXorAddress(w, Attr.XorPeerAddress, peer);
  });
}

function createPermission(c: TestClient, peer: Endpoint) {
  return c.request(StunMethod.CreatePermission, (w) => writeXorAddress(w, Attr.XorPeerAddress, peer));
}

/** Peer i: one host, many ports (one permission), or one host each. */
const samePeerHost = (i: number) => parseEndpoint("198.51.100.20", 10_000 + i);
const peerHost = (i: number) => parseEndpoint(`198.51.${100 + (i >> 8)}.${i & 255}`, 9);

/** Map iteration steps taken while `run` runs (every Map method that walks entries, counted per step). */
function mapSteps<T>(run: () => T): { result: T; steps: number } {
  const proto = Map.prototype as unknown as Record<string | symbol, unknown>;
  const names = ["entries", "keys", "values"] as const;
  const originals = new Map<string | symbol, unknown>([...names.map((n) => [n, proto[n]] as const), [Symbol.iterator, proto[Symbol.iterator]], ["forEach", proto.forEach]]);
  let steps = 0;
  const counting = (original: (this: Map<unknown, unknown>) => Iterator<unknown>) =>
    function (this: Map<unknown, unknown>) {
      const inner = original.call(this);
      const it = {
        next() {
          steps++;
          return inner.next();
        },
        [Symbol.iterator]() {
          return it;
        },
      };
      return it;
    };
  for (const n of names) proto[n] = counting(originals.get(n) as never);
  proto[Symbol.iterator] = counting(originals.get(Symbol.iterator) as never);
  proto.forEach = function (this: Map<unknown, unknown>, f: (v: unknown, k: unknown, m: unknown) => void) {
    (originals.get("forEach") as typeof Map.prototype.forEach).call(this, (v, k, m) => {
      steps++;
      f(v, k, m);
    });
  };
  try {
    return { result: run(), steps };
  } finally {
    for (const [n, f] of originals) proto[n] = f;
  }
}

describe("channels per allocation (RFC 8656 §11.2)", () => {
  test("1,000 channels bind; the 1,001st gets 508; rebinding one still works; after they expire new ones bind", () => {
    const h = harness({ channelLifetimeSeconds: 60 });
    const c = h.client();
    expect(c.allocate().ok).toBe(true);
    for (let i = 0; i < 1000; i++) expect(channelBind(c, 0x4000 + i, samePeerHost(i)).ok).toBe(true);
    expect(channelBind(c, 0x4000 + 1000, samePeerHost(1000)).errorCode).toBe(508);
    h.advance(30_000);
    expect(channelBind(c, 0x4000 + 5, samePeerHost(5)).ok).toBe(true); // a refresh is not a new channel
    h.advance(31_000); // every channel but the refreshed one has expired
    expect(channelBind(c, 0x4000 + 1000, samePeerHost(1000)).ok).toBe(true);
    h.advance(30_000); // the refreshed one too
    for (let i = 0; i < 999; i++) expect(channelBind(c, 0x4000 + i, samePeerHost(i)).ok).toBe(true);
    expect(channelBind(c, 0x4000 + 1001, samePeerHost(1001)).errorCode).toBe(508);
  });

  test("the 1,000th ChannelBind and a rebind at 1,000 channels do the work of the 10th", () => {
    const h = harness();
    const c = h.client();
    expect(c.allocate().ok).toBe(true);
    const bindCost = (i: number) => {
      const { result, steps } = mapSteps(() => channelBind(c, 0x4000 + i, samePeerHost(i)));
      expect(result.ok).toBe(true);
      return steps;
    };
    for (let i = 0; i < 9; i++) bindCost(i);
    const tenth = bindCost(9);
    for (let i = 10; i < 999; i++) bindCost(i);
    const thousandth = bindCost(999);
    const rebind = bindCost(500);
    console.log(`Map iteration steps per ChannelBind: 10th ${tenth}, 1,000th ${thousandth}, rebind at 1,000 ${rebind}`);
    expect(thousandth).toBeLessThanOrEqual(tenth + 4);
    expect(rebind).toBeLessThanOrEqual(tenth + 4);
  });
});

describe("permissions per allocation (RFC 8656 §9.2)", () => {
  test("1,000 peer hosts: the 1,001st gets 508 from CreatePermission and from ChannelBind", () => {
    const h = harness();
    const c = h.client();
    expect(c.allocate().ok).toBe(true);
    for (let i = 0; i < 1000; i++) expect(createPermission(c, peerHost(i)).ok).toBe(true);
    expect(createPermission(c, peerHost(1000)).errorCode).toBe(508);
    expect(channelBind(c, 0x4000, peerHost(1000)).errorCode).toBe(508);
    expect(createPermission(c, peerHost(7)).ok).toBe(true); // a refresh needs no room
  });

  test("the 1,000th CreatePermission does the work of the 10th", () => {
    const h = harness();
    const c = h.client();
    expect(c.allocate().ok).toBe(true);
    const cost = (i: number) => mapSteps(() => createPermission(c, peerHost(i))).steps;
    for (let i = 0; i < 9; i++) cost(i);
    const tenth = cost(9);
    for (let i = 10; i < 999; i++) cost(i);
    expect(cost(999)).toBeLessThanOrEqual(tenth + 4);
  });
});
