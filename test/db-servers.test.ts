/**
 * The test servers themselves (./db-servers.ts): each starts on its loopback port, answers bunturn's
 * user over TCP with its password through Bun.SQL, survives a stop and start with its data, and starts
 * fast enough for CI (its start-up time is printed).
 */
import { SQL } from "bun";
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
