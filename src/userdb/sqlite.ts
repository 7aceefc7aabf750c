/**
 * The user database in SQLite (`bun:sqlite`), in coturn's own schema: table `turnusers_lt (realm, name,
 * hmackey)`, where hmackey is the hex long-term key MD5(name ":" realm ":" password), and table
 * `turn_secret (realm, value)`, the TURN REST API secrets (read by ./secrets.ts). Passwords are never
 * stored. A file made by coturn's `turnadmin -a -b FILE` works here, and the other way round.
 *
 * `UserDb` is the admin side (add, delete, list). `SqliteCredentials` is the server side, a
 * CredentialStore opened in each engine: it is asked only while authenticating a request (Allocate,
 * Refresh, CreatePermission, ChannelBind), never for relayed data. Answers are cached per connection and
 * the cache is dropped whenever `PRAGMA data_version` says another connection committed a change, so
 * `bunturn admin add-user` or `turnadmin` take effect on the next request, without a restart.
 */
import { Database, type Statement } from "bun:sqlite";
import { existsSync } from "node:fs";
import type { CredentialStore } from "../turn/api.ts";
import { md5Key } from "../turn/credentials.ts";

/** coturn's turnusers_lt and turn_secret, as in its schema.sql; the other coturn tables are not used by bunturn. */
export const USERDB_SCHEMA = `CREATE TABLE IF NOT EXISTS turnusers_lt (
  realm varchar(127) default '',
  name varchar(512),
  hmackey char(128),
  PRIMARY KEY (realm, name)
)`;
export const SECRET_SCHEMA = `CREATE TABLE IF NOT EXISTS turn_secret (
  realm varchar(127) default '',
  value varchar(256),
  PRIMARY KEY (realm, value)
)`;

/** coturn's allowed_peer_ip and denied_peer_ip (./peer-tables.ts reads them). */
export const PEER_SCHEMA = (kind: "allowed" | "denied") => `CREATE TABLE IF NOT EXISTS ${kind}_peer_ip (
  realm varchar(127) default '',
  ip_range varchar(256),
  PRIMARY KEY (realm, ip_range)
)`;

/** How long a writer may hold the database before a read gives up (then the cached answer is used). */
const BUSY_TIMEOUT_MS = 50;
/** Bound on cached answers (known and unknown names): a flood of made-up usernames must not grow memory. */
const CACHE_LIMIT = 10_000;

export class UserDbError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UserDbError";
  }
}

const HEX_KEY = /^(?:0x)?([0-9a-fA-F]{32})$/;

/** A 32-hex-digit MD5 key (optionally 0x-prefixed, as coturn's --user takes it), or null. */
export function parseHexKey(text: string): Uint8Array | null {
  const m = HEX_KEY.exec(text);
  return m ? new Uint8Array(Buffer.from(m[1]!, "hex")) : null;
}

export function openDatabase(path: string, create: boolean): Database {
  if (!create && !existsSync(path)) throw new UserDbError(`user database ${path} does not exist (create it with: bunturn admin add-user --userdb ${path} ...)`);
  try {
    const db = new Database(path, { create, readwrite: true, strict: true });
    db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    return db;
  } catch (error) {
    throw new UserDbError(`cannot open user database ${path}: ${(error as Error).message}`);
  }
}

export interface UserRow {
  realm: string;
  name: string;
}

/** The admin side: what `bunturn admin add-user | delete-user | list-users` (and turnadmin -a/-d/-l) do. */
export class UserDb {
  private constructor(private readonly db: Database) {}

  /** Opens the file, creating it and the table when `create` is set. */
  static open(path: string, options: { create?: boolean } = {}): UserDb {
    const db = openDatabase(path, options.create === true);
    try {
      db.exec("PRAGMA busy_timeout = 2000"); // admin commands may wait for a reader or another writer
      db.exec(USERDB_SCHEMA);
      db.exec(SECRET_SCHEMA);
    } catch (error) {
      db.close();
      throw new UserDbError(`cannot use user database ${path}: ${(error as Error).message}`);
    }
    return new UserDb(db);
  }

  /** Adds or updates a user from a password: only the key is stored. */
  addUser(name: string, realm: string, password: string): void {
    this.addKey(name, realm, md5Key(name, realm, password));
  }

  /** Adds or updates a user from a ready key (turnadmin -k output, or --user NAME:0xKEY). */
  addKey(name: string, realm: string, key: Uint8Array): void {
    if (!name) throw new UserDbError("a user needs a name");
    if (key.length !== 16) throw new UserDbError("a long-term key is 16 bytes (32 hex digits)");
    this.db.query("INSERT OR REPLACE INTO turnusers_lt (realm, name, hmackey) VALUES (?, ?, ?)").run(realm, name, Buffer.from(key).toString("hex"));
  }

  /** Deletes a user; false when there was none. */
  deleteUser(name: string, realm: string): boolean {
    return this.db.query("DELETE FROM turnusers_lt WHERE realm = ? AND name = ?").run(realm, name).changes > 0;
  }

  /** Users, ordered by realm then name; only those of `realm` when given. */
  listUsers(realm?: string): UserRow[] {
    return realm === undefined
      ? this.db.query("SELECT realm, name FROM turnusers_lt ORDER BY realm, name").all() as UserRow[]
      : this.db.query("SELECT realm, name FROM turnusers_lt WHERE realm = ? ORDER BY name").all(realm) as UserRow[];
  }

  /** Adds a TURN REST API secret for a realm (turnadmin -s); adding one that is there changes nothing. */
  addSecret(secret: string, realm: string): void {
    if (!secret) throw new UserDbError("a secret must not be empty");
    this.db.query("INSERT OR REPLACE INTO turn_secret (realm, value) VALUES (?, ?)").run(realm, secret);
  }

  /** Deletes one secret of a realm (turnadmin -X); false when there was none. */
  deleteSecret(secret: string, realm: string): boolean {
    return this.db.query("DELETE FROM turn_secret WHERE realm = ? AND value = ?").run(realm, secret).changes > 0;
  }

  /** Secrets, ordered by realm then value; only those of `realm` when given (turnadmin -S). */
  listSecrets(realm?: string): SecretRow[] {
    return realm === undefined
      ? this.db.query("SELECT realm, value FROM turn_secret ORDER BY realm, value").all() as SecretRow[]
      : this.db.query("SELECT realm, value FROM turn_secret WHERE realm = ? ORDER BY value").all(realm) as SecretRow[];
  }

  close(): void {
    this.db.close();
  }
}

export interface SecretRow {
  realm: string;
  value: string;
}

/**
 * Tells `onWarning` about each kind of trouble once (`warned` remembers the kinds told), never per
 * request: a database that went bad would otherwise log on every authentication.
 */
export function warnOnce(warned: Set<string>, onWarning: ((message: string) => void) | undefined, kind: string, message: string): void {
  if (warned.has(kind)) return;
  warned.add(kind);
  onWarning?.(message);
}

/**
 * The server side: long-term keys read from the database, in front of which `--user` entries (static
 * keys) are checked first. Offers MD5 only (the database holds MD5 keys), so PASSWORD-ALGORITHM SHA-256
 * is not advertised while it is in use.
 */
export class SqliteCredentials implements CredentialStore {
  private readonly db: Database;
  private readonly select: Statement;
  private readonly dataVersion: Statement;
  private version = -1;
  /** `realm \0 name` -> key, or null for a name the database does not have. */
  private readonly cache = new Map<string, Uint8Array | null>();
  /** Called once per kind of trouble (unreadable database, malformed key), never per request. */
  onWarning: ((message: string) => void) | undefined;
  private warned = new Set<string>();

  constructor(
    readonly path: string,
    private readonly staticKeys: ReadonlyMap<string, Uint8Array> = new Map(),
    private readonly staticRealm?: string,
  ) {
    this.db = openDatabase(path, false);
    try {
      this.select = this.db.prepare("SELECT hmackey FROM turnusers_lt WHERE realm = ? AND name = ?");
      this.dataVersion = this.db.prepare("PRAGMA data_version");
    } catch (error) {
      this.db.close();
      throw new UserDbError(`user database ${path} has no usable turnusers_lt table: ${(error as Error).message}`);
    }
  }

  longTermKey(username: string, realm: string): Uint8Array | undefined {
    if (realm === this.staticRealm) {
      const key = this.staticKeys.get(username);
      if (key !== undefined) return key;
    }
    const cacheKey = `${realm}\0${username}`;
    try {
      const version = (this.dataVersion.get() as { data_version: number }).data_version;
      if (version !== this.version) {
        this.version = version;
        this.cache.clear();
      }
      const cached = this.cache.get(cacheKey);
      if (cached !== undefined) return cached ?? undefined;
      const row = this.select.get(realm, username) as { hmackey: string } | null;
      let key: Uint8Array | null = null;
      if (row !== null) {
        key = parseHexKey(String(row.hmackey).trim());
        if (key === null) warnOnce(this.warned, this.onWarning, "key", `user database ${this.path}: a hmackey that is not 32 hex digits (user '${username}'); such users cannot log in`);
      }
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(cacheKey, key);
      return key ?? undefined;
    } catch (error) {
      // Busy past the timeout, or the file went bad: answer from what we knew, and say so once.
      warnOnce(this.warned, this.onWarning, "read", `user database ${this.path}: ${(error as Error).message}`);
      return this.cache.get(cacheKey) ?? undefined;
    }
  }

  close(): void {
    this.db.close();
  }
}
