/**
 * The TURN REST API secrets of one realm, read live from the user database's `turn_secret` table
 * (coturn's schema; `bunturn admin add-secret` or `turnadmin -s` write it). Like SqliteCredentials it is
 * opened in each engine and asked only while authenticating a request; the rows are cached and read again
 * whenever `PRAGMA data_version` says another connection committed a change, so a secret added or removed
 * takes effect on the next request, without a restart.
 */
import type { Database, Statement } from "bun:sqlite";
import { SECRET_SCHEMA, UserDbError, openDatabase, warnOnce } from "./sqlite.ts";

/** Bound on secrets read for one realm: a rotation needs two or three; a table of thousands is a mistake. */
const SECRET_LIMIT = 64;

export class SqliteSecrets {
  private readonly db: Database;
  private readonly select: Statement;
  private readonly dataVersion: Statement;
  private version = -1;
  private secrets: readonly Uint8Array[] = [];
  /** Called once per kind of trouble (unreadable database, too many rows), never per request. */
  onWarning: ((message: string) => void) | undefined;
  private readonly warned = new Set<string>();

  constructor(readonly path: string, private readonly realm: string) {
    this.db = openDatabase(path, false);
    try {
      // A database made before secrets were kept there (or by turnadmin -a only) gets the empty table.
      this.db.exec(SECRET_SCHEMA);
      this.select = this.db.prepare(`SELECT value FROM turn_secret WHERE realm = ? ORDER BY value LIMIT ${SECRET_LIMIT + 1}`);
      this.dataVersion = this.db.prepare("PRAGMA data_version");
    } catch (error) {
      this.db.close();
      throw new UserDbError(`user database ${path} has no usable turn_secret table: ${(error as Error).message}`);
    }
  }

  /** The realm's secrets now (the cached rows while nothing changed). */
  current(): readonly Uint8Array[] {
    try {
      const version = (this.dataVersion.get() as { data_version: number }).data_version;
      if (version === this.version) return this.secrets;
      const rows = this.select.all(this.realm) as Array<{ value: unknown }>;
      if (rows.length > SECRET_LIMIT) warnOnce(this.warned, this.onWarning, "many", `user database ${this.path}: more than ${SECRET_LIMIT} secrets in realm '${this.realm}'; only the first ${SECRET_LIMIT} are used`);
      const encoder = new TextEncoder();
      this.secrets = rows.slice(0, SECRET_LIMIT).map((row) => encoder.encode(String(row.value))).filter((s) => s.length > 0);
      this.version = version;
    } catch (error) {
      // Busy past the timeout, or the file went bad: keep the secrets we knew, and say so once.
      warnOnce(this.warned, this.onWarning, "read", `user database ${this.path}: ${(error as Error).message}`);
    }
    return this.secrets;
  }

  close(): void {
    this.db.close();
  }
}
