/**
 * Keeps a local SQLite copy of a network user database (`--psql-userdb`, `--mysql-userdb`) for the
 * engines, so that the hot path never waits on the network: the main thread reads the realm's rows of
 * turnusers_lt and turn_secret (and coturn's allowed_peer_ip/denied_peer_ip) every `intervalMs` (and
 * at once on a PostgreSQL NOTIFY on channel `bunturn_userdb`, which `bunturn admin` sends) and, when
 * they changed, rewrites the copy in one transaction. The engines read the copy exactly as they read `--userdb` (sqlite.ts, secrets.ts: cached,
 * re-read when `PRAGMA data_version` moves), so a change reaches them on their next request.
 *
 * While the database cannot be read, the copy keeps the last good rows and the relay goes on serving
 * them: said once when it goes (warn) and once when it is back (info), shown on /metrics
 * (bunturn_userdb_up, bunturn_userdb_sync_errors_total); it recovers by itself on a later poll.
 */
import { Database } from "bun:sqlite";
import { SQL } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "../logger.ts";
import type { ExtraMetric } from "../metrics/prometheus.ts";
import { sanitized, sqlOptions, type NetworkDb } from "./connection.ts";
import { NOTIFY_CHANNEL, type RealmRows } from "./network.ts";
import { openNetworkStore, type NetworkStore } from "./open-network.ts";
import { REDIS_NOTIFY_CHANNEL } from "./redis-userdb.ts";
import { parseRedisTarget } from "../config/redis-target.ts";
import { RedisClient } from "bun";
import { PEER_SCHEMA, SECRET_SCHEMA, USERDB_SCHEMA } from "./sqlite.ts";

/** A read of the database that takes longer than this counts as a failure (the copy stays as it is). */
const SYNC_TIMEOUT_MS = 5000;

export interface MirrorOptions {
  /** Milliseconds between reads of the database. */
  intervalMs: number;
}

export class UserDbMirror {
  /** The local copy the engines open (as `--userdb`). */
  readonly path: string;
  private readonly dir: string;
  private readonly copy: Database;
  private readonly label: string;
  private client: NetworkStore | undefined;
  private listener: SQL | undefined;
  private subscriber: RedisClient | undefined;
  private last = "";
  private rows: RealmRows = { users: [], secrets: [], allowed: [], denied: [] };
  private up = false;
  private everUp = false;
  private syncErrors = 0;
  private lastSync = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  private constructor(readonly db: NetworkDb, readonly realm: string, private readonly logger: Logger, private readonly options: MirrorOptions) {
    this.label = `user database ${sanitized(db)}`;
    this.dir = mkdtempSync(join(tmpdir(), "bunturn-userdb-"));
    this.path = join(this.dir, "mirror.sqlite");
    this.copy = new Database(this.path, { create: true, readwrite: true, strict: true });
    this.copy.exec("PRAGMA journal_mode = WAL"); // engines read while the copy is rewritten
    this.copy.exec(USERDB_SCHEMA);
    this.copy.exec(SECRET_SCHEMA);
    this.copy.exec(PEER_SCHEMA("allowed"));
    this.copy.exec(PEER_SCHEMA("denied"));
  }

  /** Makes the copy and reads the database once (a failure is logged; serving starts without its users). */
  static async start(db: NetworkDb, realm: string, logger: Logger, options: MirrorOptions): Promise<UserDbMirror> {
    // A malformed connection string fails the start, before any file is made.
    if (db.kind === "redis") parseRedisTarget(db.connection, "redis-userdb");
    else sqlOptions(db);
    const mirror = new UserDbMirror(db, realm, logger, options);
    await mirror.sync();
    if (db.kind === "postgres") void mirror.listen();
    if (db.kind === "redis") void mirror.subscribe();
    mirror.schedule();
    return mirror;
  }

  /** Reads the database now (or right after the read under way) and updates the copy when it changed. */
  sync(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.syncOnce().finally(() => {
      this.running = undefined;
      if (this.again && !this.stopped) {
        this.again = false;
        void this.sync();
      }
    });
    return this.running;
  }

  private async syncOnce(): Promise<void> {
    try {
      this.client ??= openNetworkStore(this.db);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${SYNC_TIMEOUT_MS} ms`)), SYNC_TIMEOUT_MS);
      });
      const rows = await Promise.race([this.client.realmRows(this.realm), timeout]).finally(() => clearTimeout(timer));
      this.apply(rows);
      this.lastSync = Date.now();
      if (!this.up) {
        this.logger.info(`${this.label}: ${this.everUp ? "reachable again" : "read"}; ${rows.users.length} user(s), ${rows.secrets.length} secret(s) in realm ${this.realm}`);
        if (this.everUp && this.db.kind === "postgres") void this.listen();
      }
      this.up = this.everUp = true;
    } catch (error) {
      this.syncErrors++;
      // A fresh client next time: a pool whose server went away may not find its way back.
      const client = this.client;
      this.client = undefined;
      void client?.close().catch(() => {});
      if (this.up || this.syncErrors === 1) {
        const kept = this.everUp ? `serving the last good copy (${this.rows.users.length} user(s), ${this.rows.secrets.length} secret(s) of ${new Date(this.lastSync).toISOString()})` : "no users or secrets from it";
        this.logger.warn(`${this.label}: cannot be read (${(error as Error).message}); ${kept} until it is back`);
      }
      this.up = false;
    }
  }

  /** Rewrites the copy in one transaction when the rows differ from the last ones written. */
  private apply(rows: RealmRows): void {
    // The same users array means the SQL database's digest of them did not change (network.ts): then
    // only the small tables are compared, so a large quiet user table costs no comparison either.
    const text = JSON.stringify({ secrets: rows.secrets, allowed: rows.allowed, denied: rows.denied });
    const sameUsers = rows.users === this.rows.users || JSON.stringify(rows.users) === JSON.stringify(this.rows.users);
    if (sameUsers && text === this.last) return;
    const insertUser = this.copy.prepare("INSERT OR REPLACE INTO turnusers_lt (realm, name, hmackey) VALUES (?, ?, ?)");
    const insertSecret = this.copy.prepare("INSERT OR REPLACE INTO turn_secret (realm, value) VALUES (?, ?)");
    const insertAllowed = this.copy.prepare("INSERT OR REPLACE INTO allowed_peer_ip (realm, ip_range) VALUES (?, ?)");
    const insertDenied = this.copy.prepare("INSERT OR REPLACE INTO denied_peer_ip (realm, ip_range) VALUES (?, ?)");
    this.copy.transaction(() => {
      for (const table of ["turnusers_lt", "turn_secret", "allowed_peer_ip", "denied_peer_ip"]) this.copy.exec(`DELETE FROM ${table}`);
      for (const user of rows.users) insertUser.run(this.realm, user.name, user.hmackey);
      for (const secret of rows.secrets) insertSecret.run(this.realm, secret);
      for (const row of rows.allowed ?? []) insertAllowed.run(row.realm, row.ip_range);
      for (const row of rows.denied ?? []) insertDenied.run(row.realm, row.ip_range);
    })();
    this.last = text;
    this.rows = rows;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.sync().then(() => this.schedule());
    }, this.options.intervalMs);
  }

  /** PostgreSQL LISTEN: a NOTIFY from `bunturn admin` starts a read at once (polling stays the safety net). */
  private async listen(): Promise<void> {
    try {
      const { url, ...rest } = sqlOptions(this.db);
      const config = { connectionTimeout: 5, ...rest, max: 1 } as never;
      const previous = this.listener;
      this.listener = undefined;
      void previous?.close({ timeout: 0 }).catch(() => {});
      const listener = url !== undefined ? new SQL(url, config) : new SQL(config);
      this.listener = listener;
      await (listener as unknown as { listen(channel: string, fn: () => void): Promise<unknown> }).listen(NOTIFY_CHANNEL, () => void this.sync());
    } catch {
      // Polling carries on; the next recovery tries again.
    }
  }

  /**
   * Redis: a PUBLISH on REDIS_NOTIFY_CHANNEL from `bunturn admin` starts a read at once (polling stays
   * the safety net, and catches writes by other tools). The subscriber reconnects by itself.
   */
  private async subscribe(): Promise<void> {
    try {
      const target = parseRedisTarget(this.db.connection, "redis-userdb");
      this.subscriber = new RedisClient(target.url, { connectionTimeout: target.connectTimeoutMs, autoReconnect: true, maxRetries: 0xffffffff });
      await this.subscriber.subscribe(REDIS_NOTIFY_CHANNEL, () => void this.sync());
    } catch {
      // Polling carries on.
    }
  }

  /** For /metrics. */
  metrics(): ExtraMetric[] {
    return [
      { name: "bunturn_userdb_up", kind: "gauge", help: "1 while the last read of the network user database (--psql-userdb, --mysql-userdb) succeeded; 0 while the relay serves its last good copy", value: this.up ? 1 : 0 },
      { name: "bunturn_userdb_sync_errors_total", kind: "counter", help: "Reads of the network user database that failed", value: this.syncErrors },
      { name: "bunturn_userdb_last_sync_timestamp_seconds", kind: "gauge", help: "When the network user database was last read successfully (Unix seconds; 0 = never)", value: Math.floor(this.lastSync / 1000) },
      { name: "bunturn_userdb_users", kind: "gauge", help: "Users of the realm in the relay's copy of the network user database", value: this.rows.users.length },
    ];
  }

  /** The realm's counts in the copy now, for the start-up line. */
  counts(): { users: number; secrets: number } {
    return { users: this.rows.users.length, secrets: this.rows.secrets.length };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => {});
    await Promise.all([this.client?.close(), this.listener?.close({ timeout: 0 })].map((p) => p?.catch(() => {})));
    this.subscriber?.close();
    this.copy.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
