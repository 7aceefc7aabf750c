/**
 * The DTLS cookie (RFC 6347 §4.2.1): what a client must echo in its second ClientHello to prove it
 * receives at the address it claims, before the engine keeps anything for it. Stateless, like the STUN
 * nonce (src/turn/nonce.ts): the cookie is its own expiry plus a MAC over that expiry and the client's
 * address and port, keyed with a secret of this engine that is replaced every SECRET_MS (the one before
 * is still accepted, so a cookie issued just before a change stays good for its short life).
 *
 *   cookie = expiry (32-bit Unix seconds) || HMAC-SHA256(secret, expiry || address || port)[0..16]
 *
 * `client` is the source of the datagram being judged: the engine sets it before each DTLSv1_listen,
 * whose callbacks (ffi/dtls.ts) call generate/verify synchronously.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { CookieJudge } from "../../ffi/dtls.ts";
import type { Endpoint } from "../net/endpoint.ts";

const EXPIRY_BYTES = 4;
const MAC_BYTES = 16;
export const COOKIE_BYTES = EXPIRY_BYTES + MAC_BYTES;
/** A client answers a HelloVerifyRequest within a round trip; a minute covers retransmissions. */
export const COOKIE_LIFETIME_SECONDS = 60;
/** How often the secret changes (longer than a cookie's life, so at most two secrets are ever needed). */
export const SECRET_MS = 10 * 60_000;

export class DtlsCookies implements CookieJudge {
  /** The client whose datagram is being judged. */
  client: Endpoint | null = null;
  private secret: Uint8Array;
  private previous: Uint8Array;
  private rotatedAt: number;
  private readonly mac = new Uint8Array(MAC_BYTES);
  private readonly head = new Uint8Array(EXPIRY_BYTES + 2);

  constructor(
    /** Wall-clock milliseconds (the engine's `now`, a test's fake). */
    private readonly clock: () => number = Date.now,
    secret: Uint8Array = randomBytes(32),
  ) {
    this.secret = secret;
    this.previous = secret;
    this.rotatedAt = clock();
  }

  generate(into: Uint8Array): number {
    const now = this.clock();
    this.rotate(now);
    const expiry = (Math.floor(now / 1000) + COOKIE_LIFETIME_SECONDS) >>> 0;
    into[0] = expiry >>> 24;
    into[1] = (expiry >>> 16) & 0xff;
    into[2] = (expiry >>> 8) & 0xff;
    into[3] = expiry & 0xff;
    into.set(this.macOf(this.secret, expiry), EXPIRY_BYTES);
    return COOKIE_BYTES;
  }

  verify(cookie: Uint8Array): boolean {
    if (cookie.length !== COOKIE_BYTES || this.client === null) return false;
    const now = this.clock();
    this.rotate(now);
    const expiry = ((cookie[0]! << 24) | (cookie[1]! << 16) | (cookie[2]! << 8) | cookie[3]!) >>> 0;
    const seconds = Math.floor(now / 1000);
    if (expiry < seconds || expiry > seconds + COOKIE_LIFETIME_SECONDS) return false;
    const mac = cookie.subarray(EXPIRY_BYTES);
    return timingSafeEqual(mac, this.macOf(this.secret, expiry)) || timingSafeEqual(mac, this.macOf(this.previous, expiry));
  }

  private rotate(now: number): void {
    if (now - this.rotatedAt < SECRET_MS) return;
    this.previous = this.secret;
    this.secret = randomBytes(32);
    this.rotatedAt = now;
  }

  private macOf(secret: Uint8Array, expiry: number): Uint8Array {
    const client = this.client!;
    const head = this.head;
    head[0] = expiry >>> 24;
    head[1] = (expiry >>> 16) & 0xff;
    head[2] = (expiry >>> 8) & 0xff;
    head[3] = expiry & 0xff;
    head[4] = client.port >>> 8;
    head[5] = client.port & 0xff;
    const digest = createHmac("sha256", secret).update(head).update(client.address).digest();
    this.mac.set(digest.subarray(0, MAC_BYTES));
    return this.mac;
  }
}
