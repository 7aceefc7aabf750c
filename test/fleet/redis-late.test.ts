/**
 * A relay whose --fleet-redis is down when it starts (src/fleet/fleet.ts): it starts anyway (after a
 * bounded wait), serves with its own nonce key and counts, says so once and on /metrics; when Redis
 * comes up it takes the fleet's nonce key without a restart, so a relay started later accepts its nonces.
 */
import { expect } from "bun:test";
import { freePort, startBunturn } from "../e2e/harness.ts";
import { dbTest, startServer } from "../db-servers.ts";
import { fleetResources } from "./fleet-setup.ts";

const { running, redises, client } = fleetResources();

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
  const alone = await client(a, "127.0.35.1");
  expect((await alone.allocate()).ok).toBe(true);

  await redis.start();
  await eventually("the fleet's nonce key", async () => metric(await metrics(), "bunturn_fleet_nonce_secret_shared") === 1 && metric(await metrics(), "bunturn_fleet_redis_up") === 1);
  expect(a.output()).toMatch(/fleet: Redis \S+ reachable again/);
  const b = await startBunturn({ args });
  running.push(b);
  await eventually("A sees B", async () => metric(await metrics(), "bunturn_fleet_peers") === 1);

  // A nonce A issues now is good at B.
  const moving = await client(a, "127.0.35.2");
  expect((await moving.allocate()).ok).toBe(true);
  const fromA = moving.nonce;
  moving.moveTo({ host: "127.0.0.1", port: b.port });
  expect((await moving.allocate()).ok).toBe(true);
  expect(moving.nonce).toBe(fromA);
}, 60_000);
