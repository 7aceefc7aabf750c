/**
 * Stateless nonces (RFC 8489 §9.2, §9.2.4; coturn's approach to spoofed floods): a nonce is its own
 * expiry plus a MAC over that expiry, the client's source address and port, and the advertised security
 * features, keyed with a secret shared by all engines. Issuing and checking one keeps no per-client state,
 * and RFC 8489 §9.2.4's rule holds: two sources never get the same nonce.
 *
 *   nonce = [ "obMatJos2" + base64(security features, 24 bits) ]  base64url(expiry u32 || MAC[0..8])
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
const BODY_CHARS = 16; // base64url of 4 + 8 bytes

export class NonceFactory {
  private readonly prefix: string;

  constructor(
    private readonly secret: Uint8Array,
    private readonly lifetimeSeconds: number,
    features: number | null,
  ) {
    this.prefix = features === null
      ? ""
      : NONCE_COOKIE + Buffer.from([(features >>> 16) & 0xff, (features >>> 8) & 0xff, features & 0xff]).toString("base64");
  }

  /** Whether issued nonces carry the nonce cookie (and so announce password-algorithm negotiation). */
  get hasCookie(): boolean {
    return this.prefix !== "";
  }

  issue(client: Endpoint, nowUnixSeconds: number): string {
    const body = new Uint8Array(4 + MAC_BYTES);
    const expiry = (Math.floor(nowUnixSeconds) + this.lifetimeSeconds) >>> 0;
    new DataView(body.buffer).setUint32(0, expiry);
    body.set(this.mac(expiry, client), 4);
    return this.prefix + Buffer.from(body).toString("base64url");
  }

  check(nonce: string, client: Endpoint, nowUnixSeconds: number): NonceStatus {
    if (nonce.length !== this.prefix.length + BODY_CHARS || !nonce.startsWith(this.prefix)) return "invalid";
    const body = Buffer.from(nonce.slice(this.prefix.length), "base64url");
    if (body.length !== 4 + MAC_BYTES) return "invalid";
    const expiry = body.readUInt32BE(0);
    if (!timingSafeEqual(body.subarray(4), this.mac(expiry, client))) return "invalid";
    return expiry >= Math.floor(nowUnixSeconds) ? "valid" : "stale";
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
