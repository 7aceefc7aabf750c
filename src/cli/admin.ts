/**
 * `bunturn admin`: the user database commands, as coturn's turnadmin -a / -d / -l / -k, and its REST
 * API secrets, as turnadmin -s / -X / -S, against the SQLite file (-b/--userdb) or, with coturn's
 * options, PostgreSQL (-e/--psql-userdb), MySQL/MariaDB (-M/--mysql-userdb) or Redis (-N/--redis-userdb). Option names follow
 * turnadmin (-u/--user, -p/--password, -r/--realm).
 */
import { defineCommand, type ArgsDef } from "citty";
import { md5Key } from "../turn/credentials.ts";
import { UserDb, UserDbError, parseHexKey, type SecretRow, type UserRow } from "../userdb/sqlite.ts";
import { openNetworkStore, type NetworkStore } from "../userdb/open-network.ts";
import { sanitized, type NetworkDb } from "../userdb/connection.ts";
import { killCommand, sessionsCommand } from "./admin-sessions.ts";

const userdb = { type: "string" as const, alias: ["b", "db"], description: "SQLite user database file (created by add-user when missing)" };
const psqlUserdb = { type: "string" as const, alias: "e", description: "PostgreSQL user database: coturn's connection string (tables made when missing)" };
const mysqlUserdb = { type: "string" as const, alias: "M", description: "MySQL/MariaDB user database: coturn's connection string (tables made when missing)" };
const redisUserdb = { type: "string" as const, alias: "N", description: "Redis user database: coturn's connection string or a redis:// URL (coturn's keys)" };
const databases = { userdb, "psql-userdb": psqlUserdb, "mysql-userdb": mysqlUserdb, "redis-userdb": redisUserdb };
const user = { type: "string" as const, alias: "u", description: "User name", required: true as const };
const realm = { type: "string" as const, alias: "r", description: "Realm (the server's --realm)", required: true as const };

/** One line on stderr and exit 1, like the server's own start-up errors. */
function fail(message: string): never {
  process.stderr.write(`bunturn admin: ${message}\n`);
  process.exit(1);
}

/** What the commands do, the same on each kind of database (SQLite answers at once, the others later). */
interface AdminStore {
  addKey(name: string, realm: string, key: Uint8Array): void | Promise<void>;
  deleteUser(name: string, realm: string): boolean | Promise<boolean>;
  listUsers(realm?: string): UserRow[] | Promise<UserRow[]>;
  addSecret(secret: string, realm: string): void | Promise<void>;
  deleteSecret(secret: string, realm: string): boolean | Promise<boolean>;
  listSecrets(realm?: string): SecretRow[] | Promise<SecretRow[]>;
}

interface DatabaseArgs {
  userdb?: string;
  "psql-userdb"?: string;
  "mysql-userdb"?: string;
  "redis-userdb"?: string;
}

/** Opens the one database named, runs `fn` on it, closes it; `label` names it in messages (no password). */
async function withDb<T>(args: DatabaseArgs, create: boolean, fn: (db: AdminStore, label: string) => T | Promise<T>): Promise<T> {
  const given = [args.userdb, args["psql-userdb"], args["mysql-userdb"], args["redis-userdb"]].filter((a) => a !== undefined);
  if (given.length !== 1) fail("name one user database: --userdb FILE, --psql-userdb CONNECTION, --mysql-userdb CONNECTION or --redis-userdb CONNECTION");
  if (args.userdb !== undefined) {
    let db: UserDb;
    try {
      db = UserDb.open(args.userdb, { create });
    } catch (error) {
      if (error instanceof UserDbError) fail(error.message);
      throw error;
    }
    try {
      return await fn(db, args.userdb);
    } catch (error) {
      if (error instanceof UserDbError) fail(error.message);
      fail(`${args.userdb}: ${(error as Error).message}`);
    } finally {
      db.close();
    }
  }
  const network: NetworkDb = args["psql-userdb"] !== undefined
    ? { kind: "postgres", connection: args["psql-userdb"] }
    : args["mysql-userdb"] !== undefined
      ? { kind: "mysql", connection: args["mysql-userdb"] }
      : { kind: "redis", connection: args["redis-userdb"]! };
  const label = sanitized(network);
  let db: NetworkStore;
  try {
    db = openNetworkStore(network, { connectionTimeout: 10 });
  } catch (error) {
    fail((error as Error).message);
  }
  try {
    await db.ensureSchema();
    const result = await fn(db, label);
    await db.notifyChange();
    return result;
  } catch (error) {
    if (error instanceof UserDbError) fail(error.message);
    fail(`${label}: ${(error as Error).message}`);
  } finally {
    await db.close().catch(() => {});
  }
}

const addUser = defineCommand({
  meta: { name: "add-user", description: "Add or update a long-term user (turnadmin -a): stores MD5(user:realm:password), never the password" },
  args: {
    ...databases, user, realm,
    password: { type: "string", alias: "p", description: "Password (or give --key)" },
    key: { type: "string", alias: "k", description: "Ready key: 32 hex digits, optionally 0x-prefixed (bunturn admin key, turnadmin -k)" },
  } satisfies ArgsDef,
  async run({ args }) {
    if ((args.password === undefined) === (args.key === undefined)) fail("give either --password or --key");
    let key: Uint8Array;
    if (args.key !== undefined) {
      const parsed = parseHexKey(args.key);
      if (parsed === null) fail(`--key: expected 32 hex digits, got '${args.key}'`);
      key = parsed;
    } else {
      if (args.password === "") fail("--password must not be empty");
      key = md5Key(args.user, args.realm, args.password!);
    }
    const label = await withDb(args, true, async (db, label) => {
      await db.addKey(args.user, args.realm, key);
      return label;
    });
    console.log(`user '${args.user}' in realm '${args.realm}' saved in ${label}`);
  },
});

const deleteUser = defineCommand({
  meta: { name: "delete-user", description: "Delete a long-term user (turnadmin -d); new logins fail at once, live allocations run until they end" },
  args: { ...databases, user, realm } satisfies ArgsDef,
  async run({ args }) {
    const [deleted, label] = await withDb(args, false, async (db, label) => [await db.deleteUser(args.user, args.realm), label] as const);
    if (!deleted) fail(`no user '${args.user}' in realm '${args.realm}' in ${label}`);
    console.log(`user '${args.user}' in realm '${args.realm}' deleted from ${label}`);
  },
});

const listUsers = defineCommand({
  meta: { name: "list-users", description: "List long-term users (turnadmin -l): one 'name[realm]' a line" },
  args: {
    ...databases,
    realm: { type: "string", alias: "r", description: "Only this realm" },
  } satisfies ArgsDef,
  async run({ args }) {
    const rows = await withDb(args, false, (db) => db.listUsers(args.realm));
    for (const row of rows) console.log(`${row.name}[${row.realm}]`);
  },
});

const key = defineCommand({
  meta: { name: "key", description: "Print the long-term key for --user NAME:0xKEY (turnadmin -k); stores nothing" },
  args: {
    user, realm,
    password: { type: "string", alias: "p", description: "Password", required: true },
  } satisfies ArgsDef,
  run({ args }) {
    console.log(`0x${Buffer.from(md5Key(args.user, args.realm, args.password)).toString("hex")}`);
  },
});

const secret = { type: "string" as const, alias: "s", description: "TURN REST API shared secret", required: true as const };

const addSecret = defineCommand({
  meta: { name: "add-secret", description: "Add a TURN REST API secret for a realm (turnadmin -s); a running server with --use-auth-secret --userdb accepts it at once, next to the others" },
  args: { ...databases, secret, realm } satisfies ArgsDef,
  async run({ args }) {
    if (args.secret === "") fail("--secret must not be empty");
    const label = await withDb(args, true, async (db, label) => {
      await db.addSecret(args.secret, args.realm);
      return label;
    });
    console.log(`secret added to realm '${args.realm}' in ${label}`);
  },
});

const deleteSecret = defineCommand({
  meta: { name: "delete-secret", description: "Delete a TURN REST API secret (turnadmin -X); credentials made with it are refused from the next request on" },
  args: { ...databases, secret, realm } satisfies ArgsDef,
  async run({ args }) {
    const [deleted, label] = await withDb(args, false, async (db, label) => [await db.deleteSecret(args.secret, args.realm), label] as const);
    if (!deleted) fail(`no such secret in realm '${args.realm}' in ${label}`);
    console.log(`secret deleted from realm '${args.realm}' in ${label}`);
  },
});

const listSecrets = defineCommand({
  meta: { name: "list-secrets", description: "List TURN REST API secrets (turnadmin -S): one 'secret[realm]' a line" },
  args: {
    ...databases,
    realm: { type: "string", alias: "r", description: "Only this realm" },
  } satisfies ArgsDef,
  async run({ args }) {
    const rows = await withDb(args, false, (db) => db.listSecrets(args.realm));
    for (const row of rows) console.log(`${row.value}[${row.realm}]`);
  },
});

export const adminCommand = defineCommand({
  meta: { name: "admin", description: "Manage the user database (SQLite --userdb, --psql-userdb, --mysql-userdb), like coturn's turnadmin; list and end a running relay's sessions (--control-socket)" },
  subCommands: {
    "add-user": addUser, "delete-user": deleteUser, "list-users": listUsers, key,
    "add-secret": addSecret, "delete-secret": deleteSecret, "list-secrets": listSecrets,
    sessions: sessionsCommand, kill: killCommand,
  },
});
