/**
 * coturn's user database on Redis (`--redis-userdb`, turndb/schema.userdb.redis), through Bun's
 * built-in RedisClient, in coturn's key layout, so a Redis coturn uses serves bunturn unchanged:
 *
 * - `turn/realm/<realm>/user/<name>/key`: the user's long-term key, hex (MD5 of name:realm:password);
 * - `turn/realm/<realm>/secret`: a set of TURN REST secrets (any of them is valid: rotation);
 * - `turn/realm/<realm>/allowed-peer-ip`, `.../denied-peer-ip`: sets of peer ranges (IP, IP1-IP2, CIDR).
 *
 * The same methods as the SQL databases' (./network.ts), for `bunturn admin` and for the mirror the
 * engines read (./mirror.ts): the relay never asks Redis while authenticating. Listing uses SCAN, never
 * KEYS, so a large Redis is not blocked while a relay reads it.
 */
import { RedisClient } from "bun";
import type { RedisTarget } from "../config/redis-target.ts";
import { UserDbError, type SecretRow, type UserRow } from "./sqlite.ts";

/** Channel `bunturn admin` publishes on after a change, so relays need not wait for their next read. */
export const REDIS_NOTIFY_CHANNEL = "bunturn/userdb";

const PREFIX = "turn/realm/";

/** A realm as a literal in a SCAN pattern (coturn's realms are domain names; anything else is escaped). */
function literal(text: string): string {
  return text.replace(/[*?[\]\\]/g, "\\$&");
}

export interface RealmRows {
  users: Array<{ name: string; hmackey: string }>;
  secrets: string[];
  allowed: Array<{ realm: string; ip_range: string }>;
  denied: Array<{ realm: string; ip_range: string }>;
}

export class RedisUserDb {
  private constructor(private readonly client: RedisClient) {}

  static open(target: RedisTarget): RedisUserDb {
    return new RedisUserDb(new RedisClient(target.url, { connectionTimeout: target.connectTimeoutMs, autoReconnect: false, enableOfflineQueue: true }));
  }

  /** Every key matching `pattern`, by SCAN. */
  private async scan(pattern: string): Promise<string[]> {
    const keys: string[] = [];
    let cursor = "0";
    do {
      const [next, batch] = (await this.client.send("SCAN", [cursor, "MATCH", pattern, "COUNT", "1000"])) as [string, string[]];
      keys.push(...batch);
      cursor = next;
    } while (cursor !== "0");
    return keys;
  }

  async addKey(name: string, realm: string, key: Uint8Array): Promise<void> {
    if (!name) throw new UserDbError("a user needs a name");
    if (key.length !== 16) throw new UserDbError("a long-term key is 16 bytes (32 hex digits)");
    await this.client.send("SET", [`${PREFIX}${realm}/user/${name}/key`, Buffer.from(key).toString("hex")]);
  }

  async deleteUser(name: string, realm: string): Promise<boolean> {
    return ((await this.client.send("DEL", [`${PREFIX}${realm}/user/${name}/key`])) as number) > 0;
  }

  /** Users by realm and name; every realm's when `realm` is absent. */
  async listUsers(realm?: string): Promise<UserRow[]> {
    const keys = await this.scan(`${PREFIX}${realm === undefined ? "*" : literal(realm)}/user/*/key`);
    return keys
      .map((k) => /^turn\/realm\/(.*?)\/user\/(.*)\/key$/.exec(k))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ realm: m[1]!, name: m[2]! }))
      .sort((a, b) => a.realm.localeCompare(b.realm) || a.name.localeCompare(b.name));
  }

  async addSecret(secret: string, realm: string): Promise<void> {
    if (!secret) throw new UserDbError("a secret must not be empty");
    await this.client.send("SADD", [`${PREFIX}${realm}/secret`, secret]);
  }

  async deleteSecret(secret: string, realm: string): Promise<boolean> {
    return ((await this.client.send("SREM", [`${PREFIX}${realm}/secret`, secret])) as number) > 0;
  }

  async listSecrets(realm?: string): Promise<SecretRow[]> {
    const keys = realm === undefined ? await this.scan(`${PREFIX}*/secret`) : [`${PREFIX}${realm}/secret`];
    const rows: SecretRow[] = [];
    for (const key of keys) {
      const r = key.slice(PREFIX.length, -"/secret".length);
      for (const value of (await this.client.send("SMEMBERS", [key])) as string[]) rows.push({ realm: r, value });
    }
    return rows.sort((a, b) => a.realm.localeCompare(b.realm) || a.value.localeCompare(b.value));
  }

  /** Tells relays to read again now (./mirror.ts subscribes), rather than at their next poll. */
  async notifyChange(): Promise<void> {
    await this.client.send("PUBLISH", [REDIS_NOTIFY_CHANNEL, ""]);
  }

  /** The realm's users (with keys) and secrets, for the mirror. */
  async realmRows(realm: string): Promise<RealmRows> {
    const users = (await this.listUsers(realm)).map((u) => u.name);
    const keys = users.length === 0 ? [] : ((await this.client.send("MGET", users.map((n) => `${PREFIX}${realm}/user/${n}/key`))) as Array<string | null>);
    const secrets = ((await this.client.send("SMEMBERS", [`${PREFIX}${realm}/secret`])) as string[]).sort();
    const ranges = async (kind: "allowed" | "denied") =>
      ((await this.client.send("SMEMBERS", [`${PREFIX}${realm}/${kind}-peer-ip`])) as string[]).sort().map((ip_range) => ({ realm, ip_range }));
    return {
      users: users.flatMap((name, i) => (keys[i] ? [{ name, hmackey: keys[i]!.trim() }] : [])),
      secrets,
      allowed: await ranges("allowed"),
      denied: await ranges("denied"),
    };
  }

  /** Redis has no schema: coturn's keys are made as they are written. */
  async ensureSchema(): Promise<void> {}

  async close(): Promise<void> {
    this.client.close();
  }
}
