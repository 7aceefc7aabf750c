/** The SQLite user database: coturn's schema, keys never passwords, changes seen without a restart. */
import { Database } from "bun:sqlite";
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { md5Key } from "../../src/turn/credentials.ts";
import { SqliteCredentials, UserDb, UserDbError, parseHexKey } from "../../src/userdb/sqlite.ts";
import { credentialStoreFor } from "../../src/engine/credentials.ts";
import { SqliteSecrets } from "../../src/userdb/secrets.ts";
import { resolveConfig } from "../../src/config/resolve.ts";

const dir = mkdtempSync(join(tmpdir(), "bunturn-userdb-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const dbPath = () => join(dir, `users-${n++}.db`);
const hex = (k: Uint8Array | undefined) => (k === undefined ? undefined : Buffer.from(k).toString("hex"));

describe("UserDb (bunturn admin)", () => {
  test("stores hex MD5(name:realm:password) in coturn's turnusers_lt, never the password", () => {
    const path = dbPath();
    const db = UserDb.open(path, { create: true });
    db.addUser("alice", "example.org", "correct horse battery staple");
    db.close();
    const raw = new Database(path, { readonly: true });
    const rows = raw.query("SELECT realm, name, hmackey FROM turnusers_lt").all();
    raw.close();
    expect(rows).toEqual([{ realm: "example.org", name: "alice", hmackey: hex(md5Key("alice", "example.org", "correct horse battery staple")) }]);
    expect(readFileSync(path).includes(Buffer.from("correct horse battery staple"))).toBe(false);
  });

  test("add updates, delete says whether there was a user, list orders by realm and name", () => {
    const db = UserDb.open(dbPath(), { create: true });
    db.addUser("bob", "b.org", "1");
    db.addUser("alice", "b.org", "1");
    db.addUser("carol", "a.org", "1");
    db.addUser("bob", "b.org", "2");
    expect(db.listUsers()).toEqual([{ realm: "a.org", name: "carol" }, { realm: "b.org", name: "alice" }, { realm: "b.org", name: "bob" }]);
    expect(db.listUsers("b.org").map((u) => u.name)).toEqual(["alice", "bob"]);
    expect(db.deleteUser("bob", "b.org")).toBe(true);
    expect(db.deleteUser("bob", "b.org")).toBe(false);
    expect(db.deleteUser("carol", "b.org")).toBe(false);
    db.close();
  });

  test("a missing file is an error unless asked to create it", () => {
    expect(() => UserDb.open(join(dir, "nope.db"))).toThrow(UserDbError);
    expect(() => new SqliteCredentials(join(dir, "nope.db"))).toThrow("does not exist");
  });

  test("parseHexKey takes 32 hex digits, 0x optional", () => {
    expect(hex(parseHexKey("0x" + "ab".repeat(16)) ?? undefined)).toBe("ab".repeat(16));
    expect(hex(parseHexKey("AB".repeat(16)) ?? undefined)).toBe("ab".repeat(16));
    expect(parseHexKey("0x1234")).toBeNull();
    expect(parseHexKey("zz".repeat(16))).toBeNull();
  });
});

describe("SqliteCredentials (the engines' CredentialStore)", () => {
  test("keys by realm and name; another connection's add and delete apply to the next lookup", () => {
    const path = dbPath();
    const admin = UserDb.open(path, { create: true });
    admin.addUser("alice", "r", "pw");
    const store = new SqliteCredentials(path);
    expect(hex(store.longTermKey("alice", "r"))).toBe(hex(md5Key("alice", "r", "pw")));
    expect(store.longTermKey("alice", "other")).toBeUndefined();
    expect(store.longTermKey("bob", "r")).toBeUndefined();
    // Both answers are cached now; a commit elsewhere must invalidate them.
    admin.addUser("bob", "r", "pw2");
    expect(hex(store.longTermKey("bob", "r"))).toBe(hex(md5Key("bob", "r", "pw2")));
    admin.addUser("alice", "r", "new");
    expect(hex(store.longTermKey("alice", "r"))).toBe(hex(md5Key("alice", "r", "new")));
    admin.deleteUser("alice", "r");
    expect(store.longTermKey("alice", "r")).toBeUndefined();
    store.close();
    admin.close();
  });

  test("static --user keys answer first; SHA-256 is not offered; a bad hmackey warns once", () => {
    const path = dbPath();
    const admin = UserDb.open(path, { create: true });
    admin.addUser("dbuser", "r", "x");
    const raw = new Database(path);
    raw.run("INSERT INTO turnusers_lt VALUES ('r', 'broken', 'not-a-key')");
    raw.close();
    const store = new SqliteCredentials(path, new Map([["static", md5Key("static", "r", "s")]]), "r");
    const warnings: string[] = [];
    store.onWarning = (m) => warnings.push(m);
    expect(hex(store.longTermKey("static", "r"))).toBe(hex(md5Key("static", "r", "s")));
    expect(hex(store.longTermKey("dbuser", "r"))).toBe(hex(md5Key("dbuser", "r", "x")));
    expect(store.longTermKey("broken", "r")).toBeUndefined();
    admin.addUser("other", "r", "y"); // new data version: the broken row is read again
    expect(store.longTermKey("broken", "r")).toBeUndefined();
    expect(warnings.length).toBe(1);
    expect(warnings[0]).toContain("broken");
    expect("longTermKeySha256" in store).toBe(false);
    store.close();
    admin.close();
  });

  test("credentialStoreFor: --userdb gives the SQLite store; --user NAME:0xKEY a key store; passwords keep SHA-256", () => {
    const path = dbPath();
    UserDb.open(path, { create: true }).close();
    const withDb = resolveConfig({ userdb: path, realm: "r" });
    expect(withDb.generatedUser).toBeUndefined();
    const dbStore = credentialStoreFor(withDb);
    expect(dbStore).toBeInstanceOf(SqliteCredentials);
    (dbStore as SqliteCredentials).close();
    const key = "0x" + hex(md5Key("carol", "r", "pw"));
    const keyStore = credentialStoreFor(resolveConfig({ user: [`carol:${key}`], realm: "r" }))!;
    expect(hex(keyStore.longTermKey("carol", "r", 0))).toBe(hex(md5Key("carol", "r", "pw")));
    expect(keyStore.longTermKeySha256).toBeUndefined();
    const pwStore = credentialStoreFor(resolveConfig({ user: ["dave:pw"], realm: "r" }))!;
    expect(pwStore.longTermKeySha256).toBeDefined();
  });
});

describe("turn_secret (TURN REST API secrets in the user database)", () => {
  test("admin add/list/delete in coturn's table; the server side sees each change on its next read", () => {
    const path = dbPath();
    const admin = UserDb.open(path, { create: true });
    const live = new SqliteSecrets(path, "r");
    const text = () => live.current().map((s) => new TextDecoder().decode(s));
    expect(text()).toEqual([]);
    admin.addSecret("s1", "r");
    admin.addSecret("s2", "r");
    admin.addSecret("x", "other");
    admin.addSecret("s1", "r"); // already there: no duplicate
    expect(text()).toEqual(["s1", "s2"]);
    expect(admin.listSecrets()).toEqual([{ realm: "other", value: "x" }, { realm: "r", value: "s1" }, { realm: "r", value: "s2" }]);
    expect(admin.deleteSecret("s1", "r")).toBe(true);
    expect(admin.deleteSecret("s1", "r")).toBe(false);
    expect(text()).toEqual(["s2"]);
    admin.close();
    live.close();
  });

  test("a database made by turnadmin -a alone (no turn_secret table) gets the table, not an error", () => {
    const path = dbPath();
    const raw = new Database(path, { create: true });
    raw.exec("CREATE TABLE turnusers_lt (realm varchar(127) default '', name varchar(512), hmackey char(128), PRIMARY KEY (realm, name))");
    raw.close();
    const live = new SqliteSecrets(path, "r");
    expect(live.current()).toEqual([]);
    live.close();
  });
});
