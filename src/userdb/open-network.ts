/**
 * The network user databases behind one interface, for `bunturn admin` and the mirror (./mirror.ts):
 * PostgreSQL and MySQL/MariaDB in coturn's SQL schema (./network.ts), Redis in coturn's key layout
 * (./redis-userdb.ts).
 */
import { parseRedisTarget } from "../config/redis-target.ts";
import type { NetworkDb } from "./connection.ts";
import { NetworkUserDb, type RealmRows } from "./network.ts";
import { RedisUserDb } from "./redis-userdb.ts";
import { UserDbError, type SecretRow, type UserRow } from "./sqlite.ts";

export interface NetworkStore {
  /** Creates what is missing where a store has a schema (SQL tables; nothing in Redis). */
  ensureSchema(): Promise<void>;
  addKey(name: string, realm: string, key: Uint8Array): Promise<void>;
  deleteUser(name: string, realm: string): Promise<boolean>;
  listUsers(realm?: string): Promise<UserRow[]>;
  addSecret(secret: string, realm: string): Promise<void>;
  deleteSecret(secret: string, realm: string): Promise<boolean>;
  listSecrets(realm?: string): Promise<SecretRow[]>;
  /** Tells relays to read again now (PostgreSQL NOTIFY, Redis PUBLISH; MySQL relays poll). */
  notifyChange(): Promise<void>;
  realmRows(realm: string): Promise<RealmRows>;
  close(): Promise<void>;
}

/** A client of the configured database; throws UserDbError for a bad connection string. */
export function openNetworkStore(db: NetworkDb, options: { connectionTimeout?: number } = {}): NetworkStore {
  if (db.kind !== "redis") return NetworkUserDb.open(db, options);
  try {
    return RedisUserDb.open(parseRedisTarget(db.connection, "redis-userdb"));
  } catch (error) {
    throw new UserDbError((error as Error).message);
  }
}
