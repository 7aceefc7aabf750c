/**
 * `bunturn admin`: the user database commands, as coturn's turnadmin -a / -d / -l / -k, and its REST
 * API secrets, as turnadmin -s / -X / -S. Option names
 * follow turnadmin (-b/--userdb, -u/--user, -p/--password, -r/--realm).
 */
import { defineCommand, type ArgsDef } from "citty";
import { md5Key } from "../turn/credentials.ts";
import { UserDb, UserDbError, parseHexKey } from "../userdb/sqlite.ts";
import { killCommand, sessionsCommand } from "./admin-sessions.ts";

const userdb = { type: "string" as const, alias: ["b", "db"], description: "SQLite user database file (created by add-user when missing)", required: true as const };
const user = { type: "string" as const, alias: "u", description: "User name", required: true as const };
const realm = { type: "string" as const, alias: "r", description: "Realm (the server's --realm)", required: true as const };

/** One line on stderr and exit 1, like the server's own start-up errors. */
function fail(message: string): never {
  process.stderr.write(`bunturn admin: ${message}\n`);
  process.exit(1);
}

function withDb<T>(path: string, create: boolean, fn: (db: UserDb) => T): T {
  let db: UserDb;
  try {
    db = UserDb.open(path, { create });
  } catch (error) {
    if (error instanceof UserDbError) fail(error.message);
    throw error;
  }
  try {
    return fn(db);
  } catch (error) {
    if (error instanceof UserDbError) fail(error.message);
    fail(`${path}: ${(error as Error).message}`);
  } finally {
    db.close();
  }
}

const addUser = defineCommand({
  meta: { name: "add-user", description: "Add or update a long-term user (turnadmin -a): stores MD5(user:realm:password), never the password" },
  args: {
    userdb, user, realm,
    password: { type: "string", alias: "p", description: "Password (or give --key)" },
    key: { type: "string", alias: "k", description: "Ready key: 32 hex digits, optionally 0x-prefixed (bunturn admin key, turnadmin -k)" },
  } satisfies ArgsDef,
  run({ args }) {
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
    withDb(args.userdb, true, (db) => db.addKey(args.user, args.realm, key));
    console.log(`user '${args.user}' in realm '${args.realm}' saved in ${args.userdb}`);
  },
});

const deleteUser = defineCommand({
  meta: { name: "delete-user", description: "Delete a long-term user (turnadmin -d); new logins fail at once, live allocations run until they end" },
  args: { userdb, user, realm } satisfies ArgsDef,
  run({ args }) {
    const deleted = withDb(args.userdb, false, (db) => db.deleteUser(args.user, args.realm));
    if (!deleted) fail(`no user '${args.user}' in realm '${args.realm}' in ${args.userdb}`);
    console.log(`user '${args.user}' in realm '${args.realm}' deleted from ${args.userdb}`);
  },
});

const listUsers = defineCommand({
  meta: { name: "list-users", description: "List long-term users (turnadmin -l): one 'name[realm]' a line" },
  args: {
    userdb,
    realm: { type: "string", alias: "r", description: "Only this realm" },
  } satisfies ArgsDef,
  run({ args }) {
    const rows = withDb(args.userdb, false, (db) => db.listUsers(args.realm));
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
  args: { userdb, secret, realm } satisfies ArgsDef,
  run({ args }) {
    if (args.secret === "") fail("--secret must not be empty");
    withDb(args.userdb, true, (db) => db.addSecret(args.secret, args.realm));
    console.log(`secret added to realm '${args.realm}' in ${args.userdb}`);
  },
});

const deleteSecret = defineCommand({
  meta: { name: "delete-secret", description: "Delete a TURN REST API secret (turnadmin -X); credentials made with it are refused from the next request on" },
  args: { userdb, secret, realm } satisfies ArgsDef,
  run({ args }) {
    const deleted = withDb(args.userdb, false, (db) => db.deleteSecret(args.secret, args.realm));
    if (!deleted) fail(`no such secret in realm '${args.realm}' in ${args.userdb}`);
    console.log(`secret deleted from realm '${args.realm}' in ${args.userdb}`);
  },
});

const listSecrets = defineCommand({
  meta: { name: "list-secrets", description: "List TURN REST API secrets (turnadmin -S): one 'secret[realm]' a line" },
  args: {
    userdb,
    realm: { type: "string", alias: "r", description: "Only this realm" },
  } satisfies ArgsDef,
  run({ args }) {
    const rows = withDb(args.userdb, false, (db) => db.listSecrets(args.realm));
    for (const row of rows) console.log(`${row.value}[${row.realm}]`);
  },
});

export const adminCommand = defineCommand({
  meta: { name: "admin", description: "Manage the SQLite user database (--userdb), like coturn's turnadmin; list and end a running relay's sessions (--control-socket)" },
  subCommands: {
    "add-user": addUser, "delete-user": deleteUser, "list-users": listUsers, key,
    "add-secret": addSecret, "delete-secret": deleteSecret, "list-secrets": listSecrets,
    sessions: sessionsCommand, kill: killCommand,
  },
});
