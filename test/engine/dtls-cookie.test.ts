/** The DTLS cookie (src/engine/dtls-cookie.ts): bound to the client's address and port, short-lived, keyed by a rotating secret. */
import { expect, test } from "bun:test";
import { COOKIE_BYTES, COOKIE_LIFETIME_SECONDS, DtlsCookies, SECRET_MS } from "../../src/engine/dtls-cookie.ts";
import { endpointFromBytes } from "../../src/net/endpoint.ts";

const alice = endpointFromBytes(new Uint8Array([192, 0, 2, 1]), 40000);
const alicesOtherPort = endpointFromBytes(new Uint8Array([192, 0, 2, 1]), 40001);
const mallory = endpointFromBytes(new Uint8Array([192, 0, 2, 2]), 40000);
const alice6 = endpointFromBytes(new Uint8Array([0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1]), 40000);

function setup(start = 1_700_000_000_000) {
  const clock = { now: start };
  const cookies = new DtlsCookies(() => clock.now);
  const issue = (client = alice) => {
    cookies.client = client;
    const into = new Uint8Array(255);
    return into.slice(0, cookies.generate(into));
  };
  const check = (cookie: Uint8Array, client = alice) => {
    cookies.client = client;
    return cookies.verify(cookie);
  };
  return { clock, issue, check };
}

test("a cookie is valid for the client it was issued to, IPv4 and IPv6", () => {
  const { issue, check } = setup();
  const cookie = issue();
  expect(cookie.length).toBe(COOKIE_BYTES);
  expect(check(cookie)).toBe(true);
  expect(check(issue(alice6), alice6)).toBe(true);
});

test("another address or another port does not pass with someone else's cookie", () => {
  const { issue, check } = setup();
  const cookie = issue();
  expect(check(cookie, mallory)).toBe(false);
  expect(check(cookie, alicesOtherPort)).toBe(false);
  expect(check(issue(alice6), alice)).toBe(false);
});

test("a changed byte, a short cookie, an empty one, or a moved expiry is invalid", () => {
  const { issue, check } = setup();
  const cookie = issue();
  for (let i = 0; i < cookie.length; i++) {
    const bad = cookie.slice();
    bad[i]! ^= 1;
    expect(check(bad)).toBe(false);
  }
  expect(check(cookie.subarray(0, COOKIE_BYTES - 1))).toBe(false);
  expect(check(new Uint8Array(0))).toBe(false);
});

test("a cookie expires after its lifetime", () => {
  const { clock, issue, check } = setup();
  const cookie = issue();
  clock.now += (COOKIE_LIFETIME_SECONDS - 1) * 1000;
  expect(check(cookie)).toBe(true);
  clock.now += 2000;
  expect(check(cookie)).toBe(false);
});

test("a cookie from a future far beyond the lifetime is invalid (it was not issued here)", () => {
  const { clock, issue, check } = setup();
  clock.now += 3600_000;
  const cookie = issue();
  clock.now -= 3600_000;
  expect(check(cookie)).toBe(false);
});

test("the secret rotates: a cookie issued just before a rotation is still good after it; another engine's secret never passes", () => {
  const { clock, issue, check } = setup();
  clock.now += SECRET_MS - 1000;
  const beforeRotation = issue();
  clock.now += 2000; // the next call rotates the secret
  expect(check(beforeRotation)).toBe(true);
  // Two engines (two secrets) never accept each other's cookies.
  const other = setup();
  expect(other.check(issue())).toBe(false);
});
