/**
 * coturn's dynamic peer lists: the `allowed_peer_ip` and `denied_peer_ip (realm, ip_range)` tables of the
 * user database (its schema.sql), rows of the server's realm or of realm '' added to --allowed-peer-ip
 * and --denied-peer-ip (coturn's `--no-dynamic-ip-list` turns them off). Opened in each engine on the
 * SQLite file it already reads for users (--userdb, or the copy of --psql-userdb/--mysql-userdb that
 * ./mirror.ts keeps); at most once a second it asks SQLite whether the file changed, and only then
 * builds the policy again, so a range added in the database applies within a second, without a restart.
 * A row that is not a range is skipped and told once; a file without the tables has no extra ranges.
 */
import type { Database, Statement } from "bun:sqlite";
import type { Endpoint } from "../net/endpoint.ts";
import { PeerPolicy, parsePeerRange, type PeerJudge, type PeerPolicyOptions } from "../turn/peer-policy.ts";
import { openDatabase, warnOnce } from "./sqlite.ts";

/** How often the file is asked whether it changed. */
const CHECK_INTERVAL_MS = 1000;
/** Bound on ranges read from one table: a list of thousands is a mistake, and each is checked per peer. */
const RANGE_LIMIT = 1000;

export class LivePeerPolicy implements PeerJudge {
  private policy: PeerPolicy;
  private readonly db: Database;
  private readonly dataVersion: Statement;
  private version = -1;
  private nextCheck = 0;
  onWarning: ((message: string) => void) | undefined;
  private readonly warned = new Set<string>();

  constructor(private readonly options: PeerPolicyOptions, readonly path: string, private readonly realm: string, private readonly clock: () => number = Date.now) {
    this.policy = new PeerPolicy(options);
    this.db = openDatabase(path, false);
    this.dataVersion = this.db.prepare("PRAGMA data_version");
  }

  isAllowed(peer: Endpoint): boolean {
    return this.current().isAllowed(peer);
  }

  allowsHost(address: Uint8Array): boolean {
    return this.current().allowsHost(address);
  }

  private current(): PeerPolicy {
    const now = this.clock();
    if (now < this.nextCheck) return this.policy;
    this.nextCheck = now + CHECK_INTERVAL_MS;
    try {
      const version = (this.dataVersion.get() as { data_version: number }).data_version;
      if (version === this.version) return this.policy;
      const allowed = this.ranges("allowed", false);
      const denied = this.ranges("denied", true);
      this.policy = new PeerPolicy({ ...this.options, allowed: [...(this.options.allowed ?? []), ...allowed], denied: [...(this.options.denied ?? []), ...denied] });
      this.version = version;
    } catch (error) {
      // Busy past the timeout, or the file went bad: keep the ranges we had, and say so once.
      warnOnce(this.warned, this.onWarning, "read", `user database ${this.path}: peer lists: ${(error as Error).message}`);
    }
    return this.policy;
  }

  /** The table's valid ranges for this realm ('' = every realm); none when the table is not there. */
  private ranges(kind: "allowed" | "denied", isDenied: boolean): string[] {
    const table = `${kind}_peer_ip`;
    const exists = this.db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table);
    if (exists === null) return [];
    const rows = this.db.query(`SELECT ip_range FROM ${table} WHERE realm = ? OR realm = '' ORDER BY ip_range LIMIT ${RANGE_LIMIT}`).all(this.realm) as Array<{ ip_range: unknown }>;
    const valid: string[] = [];
    for (const row of rows) {
      const spec = String(row.ip_range ?? "").trim();
      try {
        parsePeerRange(spec, isDenied);
        valid.push(spec);
      } catch (error) {
        warnOnce(this.warned, this.onWarning, `${table}:${spec}`, `user database ${this.path}: ${table} row '${spec}' skipped: ${(error as Error).message}`);
      }
    }
    return valid;
  }

  close(): void {
    this.db.close();
  }
}
