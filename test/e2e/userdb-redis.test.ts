/**
 * --redis-userdb (coturn's Redis key layout) against a real redis-server the test starts and two bunturn
 * processes sharing it, with coturn's turnutils_uclient: a user added with `bunturn admin` allocates on
 * both relays; a secret rotated in the set turn/realm/R/secret by another tool is honoured without a
 * restart, and so is a range in its denied-peer-ip set; with Redis stopped the relays keep serving the last good users and /metrics says so; once it
 * is back (empty: the test's Redis keeps nothing), what is written then flows to both relays.
 */
import { RedisClient } from "bun";
import { afterAll, expect } from "bun:test";
import { dbTest, startServer, type DbServer } from "../db-servers.ts";
import { REALM, startPeer, type Running } from "./harness.ts";
import { admin as runAdmin, eventually, expectNothingRelayed as expectRefused, expectRelayed, metric, relayWithMetrics, uclientVia } from "./userdb-helpers.ts";

const running: Running[] = [];
const servers: DbServer[] = [];
afterAll(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
  await Promise.all(servers.splice(0).map((s) => s.destroy()));
});

/** coturn's connection string for Redis, as its docs and turnserver.conf files give it. */
const connection = (db: DbServer) => `ip=127.0.0.1 port=${db.port} dbname=0 connect_timeout=5`;

const userdb = (db: DbServer) => ["--redis-userdb", connection(db)];
const admin = (db: DbServer, args: string[]) => runAdmin(args, userdb(db));
const relay = (db: DbServer, args: string[]) => relayWithMetrics(running, args, userdb(db));

dbTest("redis", "--redis-userdb: bunturn admin's user allocates on two relays; Redis down: last good users, said once; back: new users flow", async () => {
  const db = await startServer("redis");
  servers.push(db);
  expect(await admin(db, ["add-user", "-u", "carol", "-p", "pw-carol", "-r", REALM])).toContain("saved in");
  expect(await admin(db, ["list-users", "-r", REALM])).toContain(`carol[${REALM}]`);
  const relays = [await relay(db, ["--lt-cred-mech"]), await relay(db, ["--lt-cred-mech"])];
  const peer = await startPeer();
  running.push(peer);
  const allocate = (s: Running, user: string, password: string) => uclientVia(s, peer, ["-u", user, "-w", password]);
  for (const s of relays) {
    expect(s.output()).toContain("1 in realm");
    expectRelayed(await allocate(s, "carol", "pw-carol"));
    expectRefused(await allocate(s, "carol", "wrong"));
  }

  await db.stop();
  for (const s of relays) await eventually(async () => metric(await s.metrics(), "bunturn_userdb_up") === 0);
  for (const s of relays) expectRelayed(await allocate(s, "carol", "pw-carol"));
  await Bun.sleep(2500); // more failed reads: still one line
  for (const s of relays) expect(s.output().match(/cannot be read/g)).toHaveLength(1);

  await db.start();
  await admin(db, ["add-user", "-u", "dave", "-p", "pw-dave", "-r", REALM]);
  for (const s of relays) {
    await eventually(async () => metric(await s.metrics(), "bunturn_userdb_up") === 1 && metric(await s.metrics(), "bunturn_userdb_users") === 1);
    expect(s.output()).toContain("reachable again");
  }
  for (const s of relays) expectRelayed(await allocate(s, "dave", "pw-dave"));
  // The Redis that came back has no carol: the copy follows it.
  expectRefused(await allocate(relays[0]!, "carol", "pw-carol"));
}, 150_000);

dbTest("redis", "--redis-userdb: a secret rotated in turn/realm/R/secret, and a denied-peer-ip range, are honoured on both relays without restart (turnutils_uclient -W)", async () => {
  const db = await startServer("redis");
  servers.push(db);
  await admin(db, ["add-secret", "-s", "first-secret", "-r", REALM]);
  expect(await admin(db, ["list-secrets"])).toContain(`first-secret[${REALM}]`);
  const relays = [await relay(db, ["--use-auth-secret"]), await relay(db, ["--use-auth-secret"])];
  const peer = await startPeer();
  running.push(peer);
  const rest = (s: Running, secret: string) => uclientVia(s, peer, ["-W", secret, "-u", "rest-user"]);
  for (const s of relays) expectRelayed(await rest(s, "first-secret"));

  // Rotation by another tool writing coturn's set directly: the new secret in, then the old one out.
  const redis = new RedisClient(`redis://127.0.0.1:${db.port}`);
  await redis.send("SADD", [`turn/realm/${REALM}/secret`, "second-secret"]);
  await redis.send("SREM", [`turn/realm/${REALM}/secret`, "first-secret"]);
  redis.close();
  for (const s of relays) await eventually(async () => (await rest(s, "second-secret")).received > 0, 15000);
  for (const s of relays) {
    expectRelayed(await rest(s, "second-secret"));
    expectRefused(await rest(s, "first-secret"));
  }

  // coturn's dynamic peer sets: a range in turn/realm/R/denied-peer-ip refuses the peer (even with
  // --allow-loopback-peers, as a --denied-peer-ip would); removed, the peer is reachable again.
  const peers = new RedisClient(`redis://127.0.0.1:${db.port}`);
  await peers.send("SADD", [`turn/realm/${REALM}/denied-peer-ip`, "127.0.0.0/8"]);
  for (const s of relays) await eventually(async () => (await rest(s, "second-secret")).received <= 0, 15000);
  await peers.send("DEL", [`turn/realm/${REALM}/denied-peer-ip`]);
  peers.close();
  for (const s of relays) await eventually(async () => (await rest(s, "second-secret")).received > 0, 15000);
}, 150_000);
