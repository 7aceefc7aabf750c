/**
 * The long-term credential mechanism on the server side (RFC 8489 §9.2.4), with password-algorithm
 * negotiation (§9.2.1, §9.2.4 third check) and stateless nonces (./nonce.ts). Failures come back as
 * ready-made error responses: 401/438 carry only ERROR-CODE (the 401 without a reason phrase), REALM,
 * NONCE and PASSWORD-ALGORITHMS (plus FINGERPRINT when the request had one), so an unauthenticated request
 * cannot be amplified much and leaves no state behind.
 */
import type { Endpoint } from "../net/endpoint.ts";
import {
  Attr, ErrorCode, PasswordAlgorithm, passwordAlgorithmsEqual, readPasswordAlgorithm, readText,
  verifyMessageIntegrity, writePasswordAlgorithms, writeText, type StunDecoder,
} from "../stun/index.ts";
import type { CredentialStore, Millis } from "./api.ts";
import { NONCE_COOKIE, type NonceFactory } from "./nonce.ts";
import { seal, startError, type IntegrityKey } from "./responses.ts";

export interface AuthSuccess {
  readonly ok: true;
  readonly username: string | undefined;
  /** The key to sign responses with, or null when authentication is off. */
  readonly integrity: IntegrityKey | null;
}

export interface AuthFailure {
  readonly ok: false;
  readonly code: number;
  readonly response: Uint8Array;
}

export const NO_AUTH: AuthSuccess = { ok: true, username: undefined, integrity: null };

export class Authenticator {
  private readonly realmBytes: Uint8Array;
  /** PASSWORD-ALGORITHMS we advertise, in order of preference, or null when not negotiating. */
  readonly advertised: readonly number[] | null;

  constructor(
    private readonly realm: string,
    private readonly credentials: CredentialStore,
    private readonly nonces: NonceFactory,
  ) {
    this.realmBytes = new TextEncoder().encode(realm);
    this.advertised = nonces.hasCookie
      ? credentials.longTermKeySha256 ? [PasswordAlgorithm.SHA256, PasswordAlgorithm.MD5] : [PasswordAlgorithm.MD5]
      : null;
  }

  /** RFC 8489 §9.2.4: the checks in the order the RFC lists them. */
  check(d: StunDecoder, client: Endpoint, now: Millis, fingerprint: boolean): AuthSuccess | AuthFailure {
    const nowSeconds = Math.floor(now / 1000);
    if (d.integrity < 0 && d.integritySha256 < 0) return this.challenge(d, client, nowSeconds, ErrorCode.Unauthenticated, fingerprint);

    const usernameAt = d.indexOf(Attr.Username);
    const userhashAt = d.indexOf(Attr.Userhash);
    const realmAt = d.indexOf(Attr.Realm);
    const nonceAt = d.indexOf(Attr.Nonce);
    if ((usernameAt < 0 && userhashAt < 0) || realmAt < 0 || nonceAt < 0) return this.badRequest(d, fingerprint);
    const m = d.bytes;
    const realm = readText(m, d.offsets[realmAt]!, d.lengths[realmAt]!, Attr.Realm);
    const nonce = readText(m, d.offsets[nonceAt]!, d.lengths[nonceAt]!, Attr.Nonce);
    if (realm === null || nonce === null) return this.badRequest(d, fingerprint);

    let username: string | null | undefined;
    if (usernameAt >= 0) {
      username = readText(m, d.offsets[usernameAt]!, d.lengths[usernameAt]!, Attr.Username);
      if (username === null) return this.badRequest(d, fingerprint);
    } else {
      if (d.lengths[userhashAt] !== 32) return this.badRequest(d, fingerprint);
      username = this.credentials.usernameForUserhash?.(d.value(userhashAt), realm);
    }

    const algorithm = this.passwordAlgorithm(d, nonce);
    if (algorithm < 0) return this.badRequest(d, fingerprint);

    if (username === undefined || realm !== this.realm) return this.challenge(d, client, nowSeconds, ErrorCode.Unauthenticated, fingerprint);
    const sha256 = d.integritySha256 >= 0;
    const at = sha256 ? d.integritySha256 : d.integrity;
    const key = this.verifiedKey(username, realm, nowSeconds, algorithm, m, d.offsets[at]!, d.lengths[at]!, sha256);
    if (key === undefined) return this.challenge(d, client, nowSeconds, ErrorCode.Unauthenticated, fingerprint);
    // RFC 8489 §9.2.4: the nonce is judged last, so only a client holding the key learns it went stale.
    if (this.nonces.check(nonce, client, nowSeconds) !== "valid") {
      return this.challenge(d, client, nowSeconds, ErrorCode.StaleNonce, fingerprint);
    }
    return { ok: true, username, integrity: { key, sha256 } };
  }

  /** The user's key that MESSAGE-INTEGRITY(-SHA256) verifies with (§9.2.4 fifth check), trying each candidate. */
  private verifiedKey(
    username: string, realm: string, nowSeconds: number, algorithm: number,
    m: Uint8Array, at: number, length: number, sha256: boolean,
  ): Uint8Array | undefined {
    const store = this.credentials;
    const useSha256 = algorithm === PasswordAlgorithm.SHA256;
    if (store.longTermKeys !== undefined) {
      for (const key of store.longTermKeys(username, realm, nowSeconds, useSha256 ? "sha256" : "md5")) {
        if (verifyMessageIntegrity(m, at, length, key, sha256)) return key;
      }
      return undefined;
    }
    const key = useSha256 ? store.longTermKeySha256?.(username, realm, nowSeconds) : store.longTermKey(username, realm, nowSeconds);
    return key !== undefined && verifyMessageIntegrity(m, at, length, key, sha256) ? key : undefined;
  }

  /**
   * RFC 8489 §9.2.4 third check. Returns the algorithm to derive the key with, or -1 for 400.
   * Without the nonce cookie, a lone PASSWORD-ALGORITHM we support is honoured; anything else means MD5.
   */
  private passwordAlgorithm(d: StunDecoder, nonce: string): number {
    const one = d.indexOf(Attr.PasswordAlgorithm);
    const list = d.indexOf(Attr.PasswordAlgorithms);
    const m = d.bytes;
    if (this.advertised !== null && nonce.startsWith(NONCE_COOKIE)) {
      if (one < 0 && list < 0) return PasswordAlgorithm.MD5;
      if (one < 0 || list < 0) return -1;
      if (!passwordAlgorithmsEqual(m, d.offsets[list]!, d.lengths[list]!, this.advertised)) return -1;
      const chosen = readPasswordAlgorithm(m, d.offsets[one]!, d.lengths[one]!);
      if (chosen === null || chosen.parameters.length !== 0 || !this.advertised.includes(chosen.algorithm)) return -1;
      return chosen.algorithm;
    }
    if (one >= 0) {
      const chosen = readPasswordAlgorithm(m, d.offsets[one]!, d.lengths[one]!);
      if (chosen === null) return -1;
      if (chosen.algorithm === PasswordAlgorithm.SHA256 && this.credentials.longTermKeySha256) return chosen.algorithm;
    }
    return PasswordAlgorithm.MD5;
  }

  /**
   * 401 or 438 with a fresh nonce (RFC 8489 §9.2.4 first, fourth, fifth and sixth checks). The 401 goes to
   * sources that proved nothing, so it carries no reason phrase: RFC 8489 §14.8 makes the phrase
   * diagnostic only (any text of fewer than 128 characters, none included), and 12 bytes fewer is 12 bytes
   * less to reflect at a spoofed source.
   */
  private challenge(d: StunDecoder, client: Endpoint, nowSeconds: number, code: number, fingerprint: boolean): AuthFailure {
    const w = startError(d.bytes, d.method, code, code === ErrorCode.Unauthenticated ? "" : undefined);
    writeText(w, Attr.Realm, this.realmBytes);
    writeText(w, Attr.Nonce, this.nonces.issue(client, nowSeconds));
    if (this.advertised !== null) writePasswordAlgorithms(w, this.advertised);
    return { ok: false, code, response: seal(w, { fingerprint }) };
  }

  /** RFC 8489 §9.2.4 second check: 400 without REALM, NONCE or integrity. */
  private badRequest(d: StunDecoder, fingerprint: boolean): AuthFailure {
    return { ok: false, code: ErrorCode.BadRequest, response: seal(startError(d.bytes, d.method, ErrorCode.BadRequest), { fingerprint }) };
  }
}
