/**
 * coturn's user database on PostgreSQL or MySQL/MariaDB (`--psql-userdb`, `--mysql-userdb`), through
 * Bun's built-in client (`Bun.SQL`), in coturn's schema (turndb/schema.sql): `turnusers_lt (realm, name,
 * hmackey)` and `turn_secret (realm, value)`, so a database coturn uses serves bunturn unchanged.
 *
 * The admin side (`bunturn admin ... --psql-userdb/--mysql-userdb`) writes here; the relay never asks
 * it while authenticating: ./mirror.ts copies the realm's rows into a local SQLite file the engines read.
 */
import { SQL } from "bun";
import { sqlOptions, type NetworkDb } from "./connection.ts";
import { UserDbError, type SecretRow, type UserRow } from "./sqlite.ts";

/** PostgreSQL channel `bunturn admin` notifies after a change, so relays need not wait for the next poll. */
export const NOTIFY_CHANNEL = "bunturn_userdb";

/** One statement per table, valid in PostgreSQL and MySQL alike (coturn's own definitions). */
const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS turnusers_lt (realm varchar(127) default '', name varchar(512), hmackey char(128), PRIMARY KEY (realm, name))`,
  `CREATE TABLE IF NOT EXISTS turn_secret (realm varchar(127) default '', value varchar(256), PRIMARY KEY (realm, value))`,
  `CREATE TABLE IF NOT EXISTS allowed_peer_ip (realm varchar(127) default '', ip_range varchar(256), PRIMARY KEY (realm, ip_range))`,
  `CREATE TABLE IF NOT EXISTS denied_peer_ip (realm varchar(127) default '', ip_range varchar(256), PRIMARY KEY (realm, ip_range))`,
];

/** PostgreSQL's and MySQL's words for a table that is not there (a database made without coturn's peer tables). */
const NO_TABLE = /does not exist|doesn't exist/i;

/** What the mirror copies: the realm's users (with keys) and secrets, and the peer ranges of the realm and of realm ''. */
export interface RealmRows {
  users: Array<{ name: string; hmackey: string }>;
  secrets: string[];
  /** coturn's allowed_peer_ip/denied_peer_ip rows; absent where the database has no such lists (Redis). */
  allowed?: PeerRow[];
  denied?: PeerRow[];
}

export interface PeerRow {
  realm: string;
  ip_range: string;
}

export class NetworkUserDb {
  /** The users last read, with the digest they had (realmRows). */
  private users: { realm: string; digest: string; users: RealmRows["users"] } | undefined;

  private constructor(readonly db: NetworkDb, private readonly sql: SQL) {}

  /** A client (connections are made on first use); throws UserDbError for a bad connection string. */
  static open(db: NetworkDb, options: { connectionTimeout?: number; max?: number } = {}): NetworkUserDb {
    let settings;
    try {
      settings = sqlOptions(db);
    } catch (error) {
      throw new UserDbError(`--${db.kind === "postgres" ? "psql" : "mysql"}-userdb: ${(error as Error).message}`);
    }
    const { url, ...rest } = settings;
    const config = { connectionTimeout: options.connectionTimeout ?? 5, ...rest, max: options.max ?? 1, idleTimeout: 60 };
    return new NetworkUserDb(db, url !== undefined ? new SQL(url, config as never) : new SQL(config as never));
  }

  /** Creates coturn's two tables when missing (admin commands; a coturn database already has them). */
  async ensureSchema(): Promise<void> {
    for (const statement of SCHEMA) await this.sql.unsafe(statement);
  }

  async addKey(name: string, realm: string, key: Uint8Array): Promise<void> {
    if (!name) throw new UserDbError("a user needs a name");
    if (key.length !== 16) throw new UserDbError("a long-term key is 16 bytes (32 hex digits)");
    const hmackey = Buffer.from(key).toString("hex");
    if (this.db.kind === "postgres") {
      await this.sql`INSERT INTO turnusers_lt (realm, name, hmackey) VALUES (${realm}, ${name}, ${hmackey}) ON CONFLICT (realm, name) DO UPDATE SET hmackey = EXCLUDED.hmackey`;
    } else {
      await this.sql`INSERT INTO turnusers_lt (realm, name, hmackey) VALUES (${realm}, ${name}, ${hmackey}) ON DUPLICATE KEY UPDATE hmackey = VALUES(hmackey)`;
    }
  }

  async deleteUser(name: string, realm: string): Promise<boolean> {
    const result = await this.sql`DELETE FROM turnusers_lt WHERE realm = ${realm} AND name = ${name}`;
    return (result as unknown as { count: number }).count > 0;
  }

  async listUsers(realm?: string): Promise<UserRow[]> {
    const rows = realm === undefined
      ? await this.sql`SELECT realm, name FROM turnusers_lt ORDER BY realm, name`
      : await this.sql`SELECT realm, name FROM turnusers_lt WHERE realm = ${realm} ORDER BY name`;
    return (rows as Array<Record<string, unknown>>).map((r) => ({ realm: String(r.realm ?? ""), name: String(r.name) }));
  }

  async addSecret(secret: string, realm: string): Promise<void> {
    if (!secret) throw new UserDbError("a secret must not be empty");
    if (this.db.kind === "postgres") await this.sql`INSERT INTO turn_secret (realm, value) VALUES (${realm}, ${secret}) ON CONFLICT DO NOTHING`;
    else await this.sql`INSERT IGNORE INTO turn_secret (realm, value) VALUES (${realm}, ${secret})`;
  }

  async deleteSecret(secret: string, realm: string): Promise<boolean> {
    const result = await this.sql`DELETE FROM turn_secret WHERE realm = ${realm} AND value = ${secret}`;
    return (result as unknown as { count: number }).count > 0;
  }

  async listSecrets(realm?: string): Promise<SecretRow[]> {
    const rows = realm === undefined
      ? await this.sql`SELECT realm, value FROM turn_secret ORDER BY realm, value`
      : await this.sql`SELECT realm, value FROM turn_secret WHERE realm = ${realm} ORDER BY value`;
    return (rows as Array<Record<string, unknown>>).map((r) => ({ realm: String(r.realm ?? ""), value: String(r.value) }));
  }

  /** PostgreSQL: tells listening relays (./mirror.ts) to read again now rather than at their next poll. */
  async notifyChange(): Promise<void> {
    if (this.db.kind === "postgres") await this.sql`SELECT pg_notify(${NOTIFY_CHANNEL}, '')`;
  }

  /**
   * The realm's users and secrets (and peer ranges) for the mirror. The users are read only when the
   * database's digest of them changed; else the same array as last time comes back (the mirror then
   * knows without comparing them), so a poll of a large, quiet table moves a few bytes.
   */
  async realmRows(realm: string): Promise<RealmRows> {
    const digest = await this.usersDigest(realm);
    if (this.users?.realm !== realm || this.users.digest !== digest) {
      const rows = await this.sql`SELECT name, hmackey FROM turnusers_lt WHERE realm = ${realm} ORDER BY name`;
      const users = (rows as Array<Record<string, unknown>>).map((r) => ({ name: String(r.name), hmackey: String(r.hmackey ?? "").trim() }));
      this.users = { realm, digest, users };
    }
    const secrets = await this.sql`SELECT value FROM turn_secret WHERE realm = ${realm} ORDER BY value`;
    return {
      users: this.users.users,
      secrets: (secrets as Array<Record<string, unknown>>).map((r) => String(r.value)),
      allowed: await this.peerRows("allowed", realm),
      denied: await this.peerRows("denied", realm),
    };
  }

  /** Count and hash of the realm's users, computed by the database (one short row whatever the table's size). */
  private async usersDigest(realm: string): Promise<string> {
    const rows = this.db.kind === "postgres"
      ? await this.sql`SELECT count(*)::text AS n, coalesce(md5(string_agg(name || ':' || hmackey, ',' ORDER BY name)), '') AS d FROM turnusers_lt WHERE realm = ${realm}`
      : await this.sql`SELECT COUNT(*) AS n, COALESCE(SUM(CAST(CONV(SUBSTRING(MD5(CONCAT(name, ':', hmackey)), 1, 15), 16, 10) AS UNSIGNED)), 0) AS d, COALESCE(BIT_XOR(CRC32(CONCAT(name, ':', hmackey))), 0) AS x FROM turnusers_lt WHERE realm = ${realm}`;
    const row = (rows as Array<Record<string, unknown>>)[0] ?? {};
    return `${row.n}/${row.d}/${row.x ?? ""}`;
  }

  /** coturn's allowed_peer_ip or denied_peer_ip rows for the realm and for realm ''; none when the table is not there. */
  private async peerRows(kind: "allowed" | "denied", realm: string): Promise<PeerRow[]> {
    try {
      const rows = kind === "allowed"
        ? await this.sql`SELECT realm, ip_range FROM allowed_peer_ip WHERE realm = ${realm} OR realm = '' ORDER BY realm, ip_range`
        : await this.sql`SELECT realm, ip_range FROM denied_peer_ip WHERE realm = ${realm} OR realm = '' ORDER BY realm, ip_range`;
      return (rows as Array<Record<string, unknown>>).map((r) => ({ realm: String(r.realm ?? ""), ip_range: String(r.ip_range ?? "") }));
    } catch (error) {
      // Only a missing table means "no ranges": any other failure fails the read, so the copy keeps its denied ranges.
      if (NO_TABLE.test((error as Error).message)) return [];
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.sql.close({ timeout: 1 });
  }
}
