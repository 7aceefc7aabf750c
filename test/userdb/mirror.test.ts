/**
 * The relay's copy of a PostgreSQL user database (src/userdb/mirror.ts) against a real server: a change
 * `bunturn admin` makes (it sends NOTIFY bunturn_userdb) is in the copy at once, long before the next
 * poll; the copy is the SQLite file the engines read (coturn's schema, the realm's rows only).
 */
import { Database } from "bun:sqlite";
import { afterAll, expect } from "bun:test";
import { dbTest, startServer, type DbServer } from "../db-servers.ts";
import { UserDbMirror } from "../../src/userdb/mirror.ts";
import { NetworkUserDb } from "../../src/userdb/network.ts";

const cleanup: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});
const quiet = { info() {}, warn() {}, error() {}, debug() {} } as never;

dbTest("postgres", "a NOTIFY from the admin side brings a change into the copy before the next poll (here: a minute away)", async () => {
  const server: DbServer = await startServer("postgres");
  cleanup.push(() => server.destroy());
  const db = { kind: "postgres" as const, connection: `host=127.0.0.1 port=${server.port} dbname=${server.database} user=${server.user} password=${server.password}` };
  const admin = NetworkUserDb.open(db);
  cleanup.push(() => admin.close());
  await admin.ensureSchema();
  await admin.addKey("other-realm-user", "elsewhere", new Uint8Array(16));
  const mirror = await UserDbMirror.start(db, "example.org", quiet, { intervalMs: 60_000 });
  cleanup.push(() => mirror.stop());
  expect(mirror.counts()).toEqual({ users: 0, secrets: 0 });
  await Bun.sleep(300); // LISTEN is set up after the first read

  await admin.addKey("alice", "example.org", new Uint8Array(16).fill(0xab));
  await admin.addSecret("s3cret", "example.org");
  await admin.notifyChange();
  const deadline = Date.now() + 5000;
  while (mirror.counts().secrets === 0 && Date.now() < deadline) await Bun.sleep(20);
  expect(mirror.counts()).toEqual({ users: 1, secrets: 1 });

  const copy = new Database(mirror.path, { readonly: true });
  expect(copy.query("SELECT realm, name, hmackey FROM turnusers_lt").all()).toEqual([{ realm: "example.org", name: "alice", hmackey: "ab".repeat(16) }]);
  expect(copy.query("SELECT realm, value FROM turn_secret").all()).toEqual([{ realm: "example.org", value: "s3cret" }]);
  copy.close();
});
