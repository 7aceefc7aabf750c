/**
 * Long-term credential stores (RFC 8489 §9.2.2): the key is MD5(username ":" realm ":" password), or
 * SHA-256 of the same string for PASSWORD-ALGORITHM SHA-256. Passwords are used as given (no OpaqueString
 * / SASLprep processing), which is what coturn does.
 */
import { createHash, createHmac } from "node:crypto";
import type { CredentialStore } from "./api.ts";

export function md5Key(username: string, realm: string, password: string): Uint8Array {
  return new Uint8Array(createHash("md5").update(`${username}:${realm}:${password}`, "utf8").digest());
}

export function sha256Key(username: string, realm: string, password: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(`${username}:${realm}:${password}`, "utf8").digest());
}

/** coturn --user=name:password: a fixed table, keys precomputed for the configured realm. */
export class StaticUsers implements CredentialStore {
  private readonly passwords = new Map<string, string>();
  private readonly md5 = new Map<string, Uint8Array>();
  private readonly sha256 = new Map<string, Uint8Array>();
  private readonly byUserhash = new Map<string, string>();

  constructor(users: Record<string, string> | Iterable<readonly [string, string]>, private readonly realm: string) {
    const entries = Symbol.iterator in users ? users as Iterable<readonly [string, string]> : Object.entries(users);
    for (const [name, password] of entries) {
      this.passwords.set(name, password);
      this.md5.set(name, md5Key(name, realm, password));
      this.sha256.set(name, sha256Key(name, realm, password));
      this.byUserhash.set(createHash("sha256").update(`${name}:${realm}`, "utf8").digest("hex"), name);
    }
  }

  longTermKey(username: string, realm: string): Uint8Array | undefined {
    if (realm === this.realm) return this.md5.get(username);
    const p = this.passwords.get(username);
    return p === undefined ? undefined : md5Key(username, realm, p);
  }

  longTermKeySha256(username: string, realm: string): Uint8Array | undefined {
    if (realm === this.realm) return this.sha256.get(username);
    const p = this.passwords.get(username);
    return p === undefined ? undefined : sha256Key(username, realm, p);
  }

  usernameForUserhash(userhash: Uint8Array, realm: string): string | undefined {
    if (realm !== this.realm) return undefined;
    return this.byUserhash.get(Buffer.from(userhash).toString("hex"));
  }
}

/**
 * coturn --use-auth-secret --static-auth-secret (TURN REST API, draft-uberti-behave-turn-rest): the
 * username is `expiry` or `expiry:user` (Unix seconds; ':' is coturn's --rest-api-separator), the password
 * base64(HMAC-SHA1(secret, username)). Valid while expiry >= now. Several secrets may be live at once
 * (coturn: repeated --static-auth-secret plus the database's turn_secret rows): a username is valid under
 * any of them, so a new secret can be rolled in before the old one goes. The secrets are asked for on
 * every authentication, so a source that changes (the database) takes effect at once.
 */
export class RestSecretCredentials implements CredentialStore {
  private readonly secrets: () => readonly Uint8Array[];

  constructor(
    secrets: string | Uint8Array | readonly (string | Uint8Array)[] | (() => readonly Uint8Array[]),
    private readonly separator = ":",
  ) {
    if (typeof secrets === "function") {
      this.secrets = secrets;
    } else {
      const fixed = (Array.isArray(secrets) ? secrets : [secrets]).map(secretBytes);
      this.secrets = () => fixed;
    }
  }

  /** The password a REST API backend hands out for `username`. */
  static password(secret: string | Uint8Array, username: string): string {
    return createHmac("sha1", secret).update(username, "utf8").digest("base64");
  }

  /** The key under the first live secret (longTermKeys gives them all). */
  longTermKey(username: string, realm: string, nowUnixSeconds: number): Uint8Array | undefined {
    return this.longTermKeys(username, realm, nowUnixSeconds, "md5")[0];
  }

  longTermKeySha256(username: string, realm: string, nowUnixSeconds: number): Uint8Array | undefined {
    return this.longTermKeys(username, realm, nowUnixSeconds, "sha256")[0];
  }

  /** One key per live secret, in order; none when the username has expired or carries no timestamp. */
  longTermKeys(username: string, realm: string, nowUnixSeconds: number, algorithm: "md5" | "sha256"): Uint8Array[] {
    const expiry = this.expiryOf(username);
    if (expiry === undefined || expiry < nowUnixSeconds) return [];
    const derive = algorithm === "md5" ? md5Key : sha256Key;
    return this.secrets().map((secret) => derive(username, realm, RestSecretCredentials.password(secret, username)));
  }

  /** The timestamp is the first field; like coturn, accept `user:expiry` too when the first is not numeric. */
  private expiryOf(username: string): number | undefined {
    const parts = username.split(this.separator);
    for (const candidate of [parts[0], parts[parts.length - 1]]) {
      if (candidate !== undefined && REST_TIMESTAMP.test(candidate)) return Number(candidate);
    }
    return undefined;
  }
}

function secretBytes(secret: string | Uint8Array): Uint8Array {
  return typeof secret === "string" ? new TextEncoder().encode(secret) : secret;
}

const REST_TIMESTAMP = /^\d{1,15}$/;

/**
 * The user inside a TURN REST username, for quotas (coturn's get_real_username): the username without its
 * timestamp field, in either order, `expiry:user` or `user:expiry` (the orders RestSecretCredentials
 * accepts). A username that is only a timestamp names no user and is returned whole.
 */
export function restUserOf(username: string, separator = ":"): string {
  const first = username.indexOf(separator);
  if (first < 0) return username;
  if (REST_TIMESTAMP.test(username.slice(0, first))) return username.slice(first + separator.length);
  const last = username.lastIndexOf(separator);
  if (REST_TIMESTAMP.test(username.slice(last + separator.length))) return username.slice(0, last);
  return username;
}

/**
 * Ready MD5 long-term keys for one realm: coturn's `--user NAME:0xKEY` (the key turnadmin -k prints).
 * No SHA-256 key can be derived from one, so a store of keys offers MD5 only.
 */
export class StaticKeys implements CredentialStore {
  constructor(private readonly keys: ReadonlyMap<string, Uint8Array>, private readonly realm: string) {}

  longTermKey(username: string, realm: string): Uint8Array | undefined {
    return realm === this.realm ? this.keys.get(username) : undefined;
  }
}
