/**
 * A relay whose --fleet-redis is down when it starts (src/fleet/fleet.ts): it starts anyway (after a
 * bounded wait), serves with its own nonce key and counts, says so once and on /metrics; when Redis
 * comes up it takes the fleet's nonce key without a restart, so a relay started later accepts its nonces.
 */
import { afterAll, expect } from "bun:test";
import { PASSWORD, USER, freePort, startBunturn, type Running } from "../e2e/harness.ts";
import { TurnClient } from "../fuzz/turn-client.ts";
import { dbTest, startServer, type DbServer } from "../db-servers.ts";

const running: Running[] = [];
const redises: DbServer[] = [];
const clients: TurnClient[] = [];
afterAll(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(running.splice(0).map((r) => r.stop()));
  await Promise.all(redises.splice(0).map((r) => r.destroy()));
});

const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await Bun.sleep(100);
  }
}

dbTest("redis", "Redis down at start: the relay serves alone, says so once; Redis up: it joins the fleet's nonce key without a restart", async () => {
  const redis = await startServer("redis");
  redises.push(redis);
  await redis.stop();
  const prometheus = freePort();
  const args = ["--relay-threads", "1", "--fleet-redis", `redis://127.0.0.1:${redis.port}`];
  const a = await startBunturn({ args: [...args, "--prometheus", "--prometheus-address", "127.0.0.1", "--prometheus-port", String(prometheus)] });
  running.push(a);
  const metrics = async () => (await fetch(`http://127.0.0.1:${prometheus}/metrics`)).text();
  expect(a.output().match(/fleet: Redis \S+ unreachable/g)).toHaveLength(1);
  expect(metric(await metrics(), "bunturn_fleet_redis_up")).toBe(0);
  expect(metric(await metrics(), "bunturn_fleet_nonce_secret_shared")).toBe(0);
  const alone = await TurnClient.open({ server: { host: "127.0.0.1", port: a.port }, bindHost: "127.0.35.1", username: USER, password: PASSWORD });
  clients.push(alone);
  expect((await alone.allocate()).ok).toBe(true);

  await redis.start();
  await eventually("the fleet's nonce key", async () => metric(await metrics(), "bunturn_fleet_nonce_secret_shared") === 1 && metric(await metrics(), "bunturn_fleet_redis_up") === 1);
  expect(a.output()).toMatch(/fleet: Redis \S+ reachable again/);
  const b = await startBunturn({ args });
  running.push(b);
  await eventually("A sees B", async () => metric(await metrics(), "bunturn_fleet_peers") === 1);

  // A nonce A issues now is good at B.
  const moving = await TurnClient.open({ server: { host: "127.0.0.1", port: a.port }, bindHost: "127.0.35.2", username: USER, password: PASSWORD });
  clients.push(moving);
  expect((await moving.allocate()).ok).toBe(true);
  const fromA = moving.nonce;
  moving.moveTo({ host: "127.0.0.1", port: b.port });
  expect((await moving.allocate()).ok).toBe(true);
  expect(moving.nonce).toBe(fromA);
}, 60_000);
