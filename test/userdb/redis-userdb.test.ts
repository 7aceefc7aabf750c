/**
 * coturn's Redis user database layout (src/userdb/redis-userdb.ts) against a real redis-server: what
 * bunturn writes is where coturn reads it, and keys coturn's tools wrote are read back.
 */
import { RedisClient } from "bun";
import { expect } from "bun:test";
import { dbTest, startServer } from "../db-servers.ts";
import { RedisUserDb } from "../../src/userdb/redis-userdb.ts";
import { parseRedisTarget } from "../../src/config/redis-target.ts";
import { md5Key } from "../../src/turn/credentials.ts";

dbTest("redis", "users and secrets in coturn's keys: written, listed, read for a realm, deleted", async () => {
  const server = await startServer("redis");
  const raw = new RedisClient(`redis://127.0.0.1:${server.port}`);
  const db = RedisUserDb.open(parseRedisTarget(`ip=127.0.0.1 port=${server.port} dbname=0`, "redis-userdb"));
  try {
    await db.addKey("alice", "north.gov", md5Key("alice", "north.gov", "wonderland"));
    // coturn's own example (turndb/schema.userdb.redis): gorst/hero in north.gov, written as coturn does.
    await raw.set("turn/realm/north.gov/user/gorst/key", "7da2270ccfa49786e0115366d3a3d14d");
    await raw.send("SADD", ["turn/realm/north.gov/secret", "hero1", "hero2"]);
    await db.addKey("bob", "south.gov", md5Key("bob", "south.gov", "x"));
    expect(await raw.get("turn/realm/north.gov/user/alice/key")).toBe(Buffer.from(md5Key("alice", "north.gov", "wonderland")).toString("hex"));
    expect(Buffer.from(md5Key("gorst", "north.gov", "hero")).toString("hex")).toBe("7da2270ccfa49786e0115366d3a3d14d");

    expect(await db.listUsers("north.gov")).toEqual([{ realm: "north.gov", name: "alice" }, { realm: "north.gov", name: "gorst" }]);
    expect((await db.listUsers()).map((u) => `${u.realm}/${u.name}`)).toEqual(["north.gov/alice", "north.gov/gorst", "south.gov/bob"]);
    await db.addSecret("hero3", "north.gov");
    const rows = await db.realmRows("north.gov");
    expect(rows.users.map((u) => u.name)).toEqual(["alice", "gorst"]);
    expect(rows.users[1]!.hmackey).toBe("7da2270ccfa49786e0115366d3a3d14d");
    expect(rows.secrets).toEqual(["hero1", "hero2", "hero3"]);
    expect(await db.listSecrets()).toEqual([{ realm: "north.gov", value: "hero1" }, { realm: "north.gov", value: "hero2" }, { realm: "north.gov", value: "hero3" }]);

    expect(await db.deleteUser("gorst", "north.gov")).toBe(true);
    expect(await db.deleteUser("gorst", "north.gov")).toBe(false);
    expect(await db.deleteSecret("hero1", "north.gov")).toBe(true);
    // coturn's peer range sets (turnadmin --add-allowed-peer-ip / --add-denied-peer-ip write these).
    await raw.send("SADD", ["turn/realm/north.gov/denied-peer-ip", "10.0.0.0/8", "192.168.1.1-192.168.1.9"]);
    await raw.send("SADD", ["turn/realm/north.gov/allowed-peer-ip", "10.1.2.3"]);
    expect(await db.realmRows("north.gov")).toEqual({
      users: [{ name: "alice", hmackey: expect.any(String) }],
      secrets: ["hero2", "hero3"],
      allowed: [{ realm: "north.gov", ip_range: "10.1.2.3" }],
      denied: [{ realm: "north.gov", ip_range: "10.0.0.0/8" }, { realm: "north.gov", ip_range: "192.168.1.1-192.168.1.9" }],
    });
    // A realm with SCAN's pattern characters is taken literally.
    expect(await db.listUsers("no*th.gov")).toEqual([]);
  } finally {
    raw.close();
    await db.close();
    await server.destroy();
  }
});
