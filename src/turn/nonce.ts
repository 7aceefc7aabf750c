/**
 * Stateless nonces (RFC 8489 §9.2, §9.2.4; coturn's approach to spoofed floods): a nonce is its own
 * expiry plus a MAC over that expiry, the client's source address and port, and the advertised security
 * features, keyed with a secret shared by all engines. Issuing and checking one keeps no per-client state,
 * and RFC 8489 §9.2.4's rule holds: two sources never get the same nonce.
 *
 *   nonce = [ "obMatJos2" + base64(security features, 24 bits) ]  base64url(expiry mod 2^24 || MAC[0..8])
 *
 * The nonce goes out in every 401, to sources that proved nothing, so it is kept short: 28 characters
 * (32 bytes on the wire with the attribute header). The expiry travels as its low 24 bits and is read
 * back as the nearest value to now (a lifetime is capped at 2^23 - 1 s, 97 days); the MAC covers the
 * whole 32-bit expiry, so a nonce read back as the wrong one is simply invalid.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { Endpoint } from "../net/endpoint.ts";

/** RFC 8489 §9.2: the "nonce cookie" that announces the STUN Security Feature set. */
export const NONCE_COOKIE = "obMatJos2";

/**
 * "Password algorithms" security feature. RFC 8489 §18.1 numbers it bit 0; erratum 6290 reads bit 0 as the
 * least significant while the prose reads it as the most significant, so both bits are set: each reading
 * sees the feature, and the other bit is unassigned under that reading.
 */
export const FEATURE_PASSWORD_ALGORITHMS = 0x800001;

export type NonceStatus = "valid" | "stale" | "invalid";

const MAC_BYTES = 8;
const EXPIRY_BYTES = 3;
const BODY_CHARS = 15; // base64url of 3 + 8 bytes
/** The longest nonce lifetime a 24-bit expiry reads back unambiguously. */
export const MAX_LIFETIME_SECONDS = 2 ** 23 - 1;

export class NonceFactory {
  private readonly prefix: string;

  private readonly lifetimeSeconds: number;

  constructor(
    private readonly secret: Uint8Array,
    lifetimeSeconds: number,
    features: number | null,
  ) {
    this.lifetimeSeconds = Math.min(Math.max(0, Math.floor(lifetimeSeconds)), MAX_LIFETIME_SECONDS);
    this.prefix = features === null
      ? ""
      : NONCE_COOKIE + Buffer.from([(features >>> 16) & 0xff, (features >>> 8) & 0xff, features & 0xff]).toString("base64");
  }

  /** Whether issued nonces carry the nonce cookie (and so announce password-algorithm negotiation). */
  get hasCookie(): boolean {
    return this.prefix !== "";
  }

  issue(client: Endpoint, nowUnixSeconds: number): string {
    const body = new Uint8Array(EXPIRY_BYTES + MAC_BYTES);
    const expiry = (Math.floor(nowUnixSeconds) + this.lifetimeSeconds) >>> 0;
    body[0] = (expiry >>> 16) & 0xff;
    body[1] = (expiry >>> 8) & 0xff;
    body[2] = expiry & 0xff;
    body.set(this.mac(expiry, client), EXPIRY_BYTES);
    return this.prefix + Buffer.from(body).toString("base64url");
  }

  check(nonce: string, client: Endpoint, nowUnixSeconds: number): NonceStatus {
    if (nonce.length !== this.prefix.length + BODY_CHARS || !nonce.startsWith(this.prefix)) return "invalid";
    const body = Buffer.from(nonce.slice(this.prefix.length), "base64url");
    if (body.length !== EXPIRY_BYTES + MAC_BYTES) return "invalid";
    // The expiry nearest to now with these low 24 bits: within 2^23 s either side.
    const now = Math.floor(nowUnixSeconds) >>> 0;
    let delta = (((body[0]! << 16) | (body[1]! << 8) | body[2]!) - (now & 0xffffff)) & 0xffffff;
    if (delta >= 0x800000) delta -= 0x1000000;
    const expiry = (now + delta) >>> 0;
    if (!timingSafeEqual(body.subarray(EXPIRY_BYTES), this.mac(expiry, client))) return "invalid";
    return delta >= 0 ? "valid" : "stale";
  }

  private mac(expiry: number, client: Endpoint): Uint8Array {
    const fixed = new Uint8Array(7);
    const view = new DataView(fixed.buffer);
    view.setUint32(0, expiry);
    fixed[4] = client.family;
    view.setUint16(5, client.port);
    return createHmac("sha256", this.secret)
      .update(fixed)
      .update(client.address)
      .update(this.prefix)
      .digest()
      .subarray(0, MAC_BYTES);
  }
}
