/**
 * The test servers themselves (./db-servers.ts): each starts on its loopback port, answers bunturn's
 * user over TCP with its password through Bun.SQL, survives a stop and start with its data, and starts
 * fast enough for CI (its start-up time is printed); Redis answers Bun's RedisClient and comes back
 * empty after a crash.
 */
import { RedisClient, SQL } from "bun";
import { expect } from "bun:test";
import { dbTest, startServer, type ServerKind } from "./db-servers.ts";

for (const kind of ["postgres", "mariadb"] as ServerKind[]) {
  dbTest(kind, `${kind}: starts on loopback, keeps its data over a stop and start`, async () => {
    const server = await startServer(kind);
    try {
      console.log(`db: ${kind} started in ${server.startupMs} ms`);
      expect(server.startupMs).toBeLessThan(30000);
      const url = `${kind === "postgres" ? "postgres" : "mysql"}://${server.user}:${server.password}@127.0.0.1:${server.port}/${server.database}`;
      let sql = new SQL(url);
      await sql`CREATE TABLE kept (n int)`;
      await sql`INSERT INTO kept VALUES (7)`;
      await sql.close();
      await server.stop();
      await server.start();
      sql = new SQL(url);
      expect(await sql`SELECT n FROM kept`).toEqual([{ n: 7 }]);
      await sql.close();
    } finally {
      await server.destroy();
    }
  });
}

dbTest("redis", "redis: starts on loopback, answers RedisClient, comes back empty after a crash", async () => {
  const server = await startServer("redis");
  try {
    console.log(`db: redis started in ${server.startupMs} ms`);
    expect(server.startupMs).toBeLessThan(10000);
    const url = `redis://127.0.0.1:${server.port}`;
    let client = new RedisClient(url);
    await client.set("kept", "7");
    expect(await client.get("kept")).toBe("7");
    client.close();
    await server.stop();
    await server.start();
    client = new RedisClient(url);
    expect(await client.get("kept")).toBeNull();
    client.close();
  } finally {
    await server.destroy();
  }
});
