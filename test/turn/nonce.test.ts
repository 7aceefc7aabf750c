/**
 * Stateless nonces (src/turn/nonce.ts): 28 characters with the RFC 8489 §9.2 cookie, the expiry carried
 * as its low 24 bits and read back as the value nearest to now, the MAC over the whole expiry.
 */
import { describe, expect, test } from "bun:test";
import { parseEndpoint } from "../../src/net/endpoint.ts";
import { FEATURE_PASSWORD_ALGORITHMS, NonceFactory } from "../../src/turn/nonce.ts";

const SECRET = new Uint8Array(32).fill(3);
const CLIENT = parseEndpoint("192.0.2.1", 5000);

describe("NonceFactory", () => {
  test("28 characters: the cookie and 15 more; valid until its expiry, stale after, invalid elsewhere", () => {
    const nonces = new NonceFactory(SECRET, 600, FEATURE_PASSWORD_ALGORITHMS);
    const now = 1_700_000_000;
    const nonce = nonces.issue(CLIENT, now);
    expect(nonce.length).toBe(28);
    expect(nonce.startsWith("obMatJos2")).toBe(true);
    expect(nonces.check(nonce, CLIENT, now)).toBe("valid");
    expect(nonces.check(nonce, CLIENT, now + 600)).toBe("valid");
    expect(nonces.check(nonce, CLIENT, now + 601)).toBe("stale");
    expect(nonces.check(nonce, CLIENT, now + 86_400 * 30)).toBe("stale");
    expect(nonces.check(nonce, parseEndpoint("192.0.2.1", 5001), now)).toBe("invalid");
    expect(nonces.check(nonce, CLIENT, now - 86_400)).toBe("valid"); // issued "later" than now: Unix time stepped back
  });

  test("an expiry across a 2^24-second boundary reads back right", () => {
    const nonces = new NonceFactory(SECRET, 600, null);
    const now = 0x66ffffff - 300; // the low 24 bits wrap 300 s from now
    const nonce = nonces.issue(CLIENT, now);
    expect(nonce.length).toBe(15);
    expect(nonces.check(nonce, CLIENT, now + 299)).toBe("valid");
    expect(nonces.check(nonce, CLIENT, now + 600)).toBe("valid");
    expect(nonces.check(nonce, CLIENT, now + 601)).toBe("stale");
  });

  test("a lifetime beyond 2^23 s is capped, not wrapped: the nonce is valid when issued", () => {
    const nonces = new NonceFactory(SECRET, 4_000_000_000, FEATURE_PASSWORD_ALGORITHMS);
    const now = 1_700_000_000;
    const nonce = nonces.issue(CLIENT, now);
    expect(nonces.check(nonce, CLIENT, now)).toBe("valid");
    expect(nonces.check(nonce, CLIENT, now + 2 ** 23 - 1)).toBe("valid");
  });
});
