/**
 * The user database on PostgreSQL and MariaDB (--psql-userdb, --mysql-userdb), against real servers the
 * test starts (test/db-servers.ts) and two bunturn processes sharing each, with coturn's
 * turnutils_uclient: a user added with `bunturn admin` allocates on both relays; a secret rotated in
 * turn_secret is honoured without a restart; with the database stopped the relays keep serving the last
 * good users and /metrics says so (bunturn_userdb_up 0); once it is back, changes flow again; a
 * denied_peer_ip row refuses its peers until it is deleted.
 */
import { SQL } from "bun";
import { afterAll, describe, expect } from "bun:test";
import { dbTest, startServer, type DbServer } from "../db-servers.ts";
import { REALM, startPeer, type Running } from "./harness.ts";
import { admin as runAdmin, eventually, expectNothingRelayed as expectRefused, expectRelayed, metric, relayWithMetrics, uclientVia } from "./userdb-helpers.ts";

const running: Running[] = [];
const servers: DbServer[] = [];
afterAll(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
  await Promise.all(servers.splice(0).map((s) => s.destroy()));
});

type SqlKind = "postgres" | "mariadb";
const OPTION: Record<SqlKind, string> = { postgres: "--psql-userdb", mariadb: "--mysql-userdb" };

/** coturn's key=value connection string, the form its docs and turnserver.conf files use. */
function connection(db: DbServer): string {
  return `host=127.0.0.1 port=${db.port} dbname=${db.database} user=${db.user} password=${db.password} connect_timeout=5`;
}

/** A direct client, as another tool (psql, turnadmin, a web service) would write the tables. */
function direct(db: DbServer): SQL {
  return new SQL(`${db.kind === "postgres" ? "postgres" : "mysql"}://${db.user}:${db.password}@127.0.0.1:${db.port}/${db.database}`);
}

const userdb = (db: DbServer) => [OPTION[db.kind as SqlKind], connection(db)];
const admin = (db: DbServer, args: string[]) => runAdmin(args, userdb(db));
const relay = (db: DbServer, args: string[]) => relayWithMetrics(running, args, userdb(db));

for (const kind of ["postgres", "mariadb"] as const) {
  describe(`${OPTION[kind]} (${kind})`, () => {
    dbTest(kind, "a user added with bunturn admin allocates on two relays; with the database down they keep serving it and say so; back up, changes flow", async () => {
      const db = await startServer(kind);
      servers.push(db);
      console.log(`db: ${kind} started in ${db.startupMs} ms`);
      expect(await admin(db, ["add-user", "-u", "carol", "-p", "pw-carol", "-r", REALM])).toContain("saved in");
      expect(await admin(db, ["list-users", "-r", REALM])).toContain(`carol[${REALM}]`);
      const relays = [await relay(db, ["--lt-cred-mech"]), await relay(db, ["--lt-cred-mech"])];
      const peer = await startPeer();
      running.push(peer);
      const allocate = (s: Running, user: string, password: string) => uclientVia(s, peer, ["-u", user, "-w", password]);
      for (const s of relays) {
        expect(s.output()).toContain("1 in realm");
        expect(s.output()).not.toContain(db.password); // the connection string is logged without its password
        expectRelayed(await allocate(s, "carol", "pw-carol"));
        expectRefused(await allocate(s, "carol", "wrong"));
      }

      await db.stop();
      for (const s of relays) await eventually(async () => metric(await s.metrics(), "bunturn_userdb_up") === 0);
      for (const s of relays) {
        expect(metric(await s.metrics(), "bunturn_userdb_sync_errors_total")).toBeGreaterThan(0);
        expectRelayed(await allocate(s, "carol", "pw-carol"));
      }
      await Bun.sleep(2500); // more failed polls: still one line
      for (const s of relays) expect(s.output().match(/cannot be read/g)).toHaveLength(1);

      await db.start();
      await admin(db, ["add-user", "-u", "dave", "-p", "pw-dave", "-r", REALM]);
      for (const s of relays) {
        // Up again, and a read since dave was added (the first read after the restart may precede him).
        await eventually(async () => metric(await s.metrics(), "bunturn_userdb_up") === 1 && metric(await s.metrics(), "bunturn_userdb_users") === 2);
        expect(s.output()).toContain("reachable again");
      }
      for (const s of relays) expectRelayed(await allocate(s, "dave", "pw-dave"));
      await admin(db, ["delete-user", "-u", "carol", "-r", REALM]);
      for (const s of relays) await eventually(async () => metric(await s.metrics(), "bunturn_userdb_users") === 1);
      expectRefused(await allocate(relays[0]!, "carol", "pw-carol"));
    }, 150_000);

    dbTest(kind, "a secret rotated in turn_secret, and a denied_peer_ip row, are honoured on both relays without restart (turnutils_uclient -W)", async () => {
      const db = await startServer(kind);
      servers.push(db);
      await admin(db, ["add-secret", "-s", "first-secret", "-r", REALM]);
      expect(await admin(db, ["list-secrets"])).toContain(`first-secret[${REALM}]`);
      const relays = [await relay(db, ["--use-auth-secret"]), await relay(db, ["--use-auth-secret"])];
      const peer = await startPeer();
      running.push(peer);
      const rest = (s: Running, secret: string) => uclientVia(s, peer, ["-W", secret, "-u", "rest-user"]);
      for (const s of relays) expectRelayed(await rest(s, "first-secret"));

      // Rotation by another tool writing the table directly: the new secret in, then the old one out.
      const sql = direct(db);
      await sql`INSERT INTO turn_secret (realm, value) VALUES (${REALM}, ${"second-secret"})`;
      await sql`DELETE FROM turn_secret WHERE value = ${"first-secret"}`;
      await sql.close();
      for (const s of relays) await eventually(async () => (await rest(s, "second-secret")).received > 0, 15000);
      for (const s of relays) {
        expectRelayed(await rest(s, "second-secret"));
        expectRefused(await rest(s, "first-secret"));
      }

      // coturn's dynamic peer lists: a denied_peer_ip row refuses the peer (even with --allow-loopback-peers,
      // as a --denied-peer-ip would); deleted, the peer is reachable again. No restart either way.
      const peers = direct(db);
      await peers`INSERT INTO denied_peer_ip (realm, ip_range) VALUES (${REALM}, ${"127.0.0.0/8"})`;
      for (const s of relays) await eventually(async () => (await rest(s, "second-secret")).received <= 0, 15000);
      await peers`DELETE FROM denied_peer_ip`;
      await peers.close();
      for (const s of relays) await eventually(async () => (await rest(s, "second-secret")).received > 0, 15000);
    }, 150_000);
  });
}
