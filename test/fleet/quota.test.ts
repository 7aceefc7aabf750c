/**
 * --user-quota and --total-quota across a fleet (src/fleet/fleet-quota.ts): two relay processes sharing
 * one Redis hold a user to 2 allocations between them, and the fleet to 3; with Redis gone each counts
 * alone (logged once); with it back the fleet's count holds again. The test waits until each relay's /metrics shows the other's
 * allocations (bunturn_fleet_other_allocations), and checks that took no more than a few heartbeats.
 */
import { expect } from "bun:test";
import { HEARTBEAT_MS } from "../../src/fleet/fleet-quota.ts";
import { eventually, relayWithMetrics } from "./metrics-wait.ts";
import type { TurnClient } from "../fuzz/turn-client.ts";
import { dbTest, startServer } from "../db-servers.ts";
import { fleetResources } from "./fleet-setup.ts";

const { running, redises, client } = fleetResources();

const code = async (c: TurnClient): Promise<number> => (await c.allocate()).errorCode ?? 200;

dbTest("redis", "--user-quota 2 holds across two relays; Redis down: each counts alone (logged once); back: the fleet's count again", async () => {
  const redis = await startServer("redis");
  const url = `redis://127.0.0.1:${redis.port}`;
  redises.push(redis);
  const args = ["--relay-threads", "1", "--user-quota", "2", "--user", "bob:builder", "--fleet-redis", url];
  const [a, b] = await Promise.all([relayWithMetrics(args), relayWithMetrics(args)]);
  running.push(a, b);

  expect(await code(await client(a, "127.0.32.1"))).toBe(200);
  expect(await code(await client(b, "127.0.32.2"))).toBe(200);
  const allocatedAt = Date.now();
  await eventually("each relay sees the other's allocation", async () => (await a.metric("bunturn_fleet_other_allocations")) === 1 && (await b.metric("bunturn_fleet_other_allocations")) === 1);
  // One heartbeat to publish, one to read, and slack for a loaded machine.
  expect(Date.now() - allocatedAt).toBeLessThan(4 * HEARTBEAT_MS);
  const third = await client(a, "127.0.32.3");
  expect(await code(third)).toBe(486);
  expect(await code(await client(b, "127.0.32.4"))).toBe(486);
  // The quota is per user: another user is not held back by alice's.
  expect(await code(await client(b, "127.0.32.5", "bob", "builder"))).toBe(200);

  // Redis gone: the others' counts are dropped, a relay counts its own (alice has 1 on each).
  await redis.stop();
  await eventually("A counts alone", async () => (await a.metric("bunturn_fleet_redis_up")) === 0 && (await a.metric("bunturn_fleet_other_allocations")) === 0);
  expect(await code(third)).toBe(200);
  await Bun.sleep(2 * HEARTBEAT_MS); // more failed heartbeats: still one line
  expect(a.output().match(/fleet: Redis \S+ unreachable/g)?.length).toBe(1);

  // Back: A holds 2 of alice's, B 1 and bob's; the fleet's count holds again on B.
  await redis.start();
  await eventually("B sees A's 2 again", async () => (await b.metric("bunturn_fleet_redis_up")) === 1 && (await b.metric("bunturn_fleet_other_allocations")) === 2);
  expect(a.output()).toMatch(/fleet: Redis \S+ reachable again/);
  expect(await code(await client(b, "127.0.32.6"))).toBe(486);
}, 60_000);

dbTest("redis", "--total-quota 3 holds across two relays (any users)", async () => {
  const redis = await startServer("redis");
  redises.push(redis);
  const args = ["--relay-threads", "1", "--total-quota", "3", "--user", "bob:builder", "--fleet-redis", `redis://127.0.0.1:${redis.port}`];
  const [a, b] = await Promise.all([relayWithMetrics(args), relayWithMetrics(args)]);
  running.push(a, b);
  expect(await code(await client(a, "127.0.36.1"))).toBe(200);
  expect(await code(await client(a, "127.0.36.2", "bob", "builder"))).toBe(200);
  expect(await code(await client(b, "127.0.36.3"))).toBe(200);
  await eventually("each relay sees the other's", async () => (await a.metric("bunturn_fleet_other_allocations")) === 1 && (await b.metric("bunturn_fleet_other_allocations")) === 2);
  expect(await code(await client(a, "127.0.36.4", "bob", "builder"))).toBe(486);
  expect(await code(await client(b, "127.0.36.5"))).toBe(486);
}, 60_000);
