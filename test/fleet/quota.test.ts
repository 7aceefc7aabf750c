/**
 * --user-quota across a fleet (src/fleet/fleet-quota.ts): two relay processes sharing one Redis hold a
 * user to 2 allocations between them; with Redis gone each counts alone (logged once); with it back
 * the fleet's count holds again. Waits are a few heartbeats (HEARTBEAT_MS = 1 s): how long a relay takes
 * to see another's allocations.
 */
import { afterAll, expect } from "bun:test";
import { PASSWORD, USER, startBunturn, type Running } from "../e2e/harness.ts";
import { TurnClient } from "../fuzz/turn-client.ts";
import { dbTest, startServer, type DbServer } from "../db-servers.ts";

/** Two heartbeats and some: one for the allocating relay to publish, one for the other to read. */
const SETTLE_MS = 2600;

const running: Running[] = [];
const redises: DbServer[] = [];
const clients: TurnClient[] = [];
afterAll(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(running.splice(0).map((r) => r.stop()));
  await Promise.all(redises.splice(0).map((r) => r.destroy()));
});

async function client(relay: Running, bindHost: string, user = USER, password = PASSWORD): Promise<TurnClient> {
  const c = await TurnClient.open({ server: { host: "127.0.0.1", port: relay.port }, bindHost, username: user, password });
  clients.push(c);
  return c;
}

const code = async (c: TurnClient): Promise<number> => (await c.allocate()).errorCode ?? 200;

dbTest("redis", "--user-quota 2 holds across two relays; Redis down: each counts alone (logged once); back: the fleet's count again", async () => {
  const redis = await startServer("redis");
  const url = `redis://127.0.0.1:${redis.port}`;
  redises.push(redis);
  const args = ["--relay-threads", "1", "--user-quota", "2", "--user", "bob:builder", "--fleet-redis", url];
  const [a, b] = await Promise.all([startBunturn({ args }), startBunturn({ args })]);
  running.push(a, b);

  expect(await code(await client(a, "127.0.32.1"))).toBe(200);
  expect(await code(await client(b, "127.0.32.2"))).toBe(200);
  await Bun.sleep(SETTLE_MS);
  const third = await client(a, "127.0.32.3");
  expect(await code(third)).toBe(486);
  expect(await code(await client(b, "127.0.32.4"))).toBe(486);
  // The quota is per user: another user is not held back by alice's.
  expect(await code(await client(b, "127.0.32.5", "bob", "builder"))).toBe(200);

  // Redis gone: the others' counts are dropped, a relay counts its own (alice has 1 on each).
  await redis.stop();
  await Bun.sleep(SETTLE_MS);
  expect(await code(third)).toBe(200);
  await Bun.sleep(2000); // more failed heartbeats: still one line
  expect(a.output().match(/fleet: Redis \S+ unreachable/g)?.length).toBe(1);

  // Back: A holds 2, B 1; the fleet's count holds again on B.
  await redis.start();
  await Bun.sleep(SETTLE_MS + 1000); // the client reconnects first
  expect(a.output()).toMatch(/fleet: Redis \S+ reachable again/);
  expect(await code(await client(b, "127.0.32.6"))).toBe(486);
}, 60_000);
