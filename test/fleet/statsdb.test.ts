/**
 * --redis-statsdb (src/fleet/statsdb.ts) against a real redis-server: coturn's status key appears for a
 * live allocation and goes at its end; each ended allocation's usage record lands in the stream once;
 * records of allocations that end while Redis is down are all there once it is back.
 */
import { RedisClient } from "bun";
import { afterAll, expect } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REALM, startBunturn, type Running } from "../e2e/harness.ts";
import { EchoPeer, TurnClient, relayedEcho } from "../fuzz/turn-client.ts";
import { dbTest, startServer, type DbServer } from "../db-servers.ts";
import { POLL_MS } from "../../src/fleet/statsdb.ts";
import { PASSWORD, USER } from "../e2e/harness.ts";

const running: Running[] = [];
const redises: DbServer[] = [];
const clients: TurnClient[] = [];
const dir = mkdtempSync(join(tmpdir(), "bunturn-statsdb-"));
afterAll(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(running.splice(0).map((r) => r.stop()));
  await Promise.all(redises.splice(0).map((r) => r.destroy()));
  rmSync(dir, { recursive: true, force: true });
});

const STREAM = `bunturn/usage/realm/${REALM}`;

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await Bun.sleep(50);
  }
}

/** The stream's records, parsed. */
async function records(redis: RedisClient): Promise<Array<{ id: string; user: string; relayHost: string; bytesToPeer: number }>> {
  const entries = (await redis.send("XRANGE", [STREAM, "-", "+"])) as Array<[string, string[]]>;
  return entries.map(([, fields]) => JSON.parse(fields[1]!));
}

async function allocateAndEnd(relay: Running, bindHost: string): Promise<void> {
  const c = await TurnClient.open({ server: { host: "127.0.0.1", port: relay.port }, bindHost, username: USER, password: PASSWORD });
  clients.push(c);
  expect((await c.allocate()).ok).toBe(true);
  expect((await c.refresh(0)).ok).toBe(true);
}

dbTest("redis", "coturn's status key while live, one usage record per allocation, none lost while Redis is down", async () => {
  const server = await startServer("redis");
  redises.push(server);
  const url = `redis://127.0.0.1:${server.port}`;
  const usageLog = join(dir, "usage.log");
  const relay = await startBunturn({ args: ["--relay-threads", "1", "--redis-statsdb", `host=127.0.0.1 port=${server.port}`, "--usage-log", usageLog] });
  running.push(relay);
  let redis = new RedisClient(url);

  // A live allocation gets coturn's status key within a poll; its end deletes it and writes the record.
  const live = await TurnClient.open({ server: { host: "127.0.0.1", port: relay.port }, bindHost: "127.0.33.1", username: USER, password: PASSWORD });
  clients.push(live);
  expect((await live.allocate(600)).ok).toBe(true);
  const pattern = `turn/realm/${REALM}/user/${USER}/allocation/*/status`;
  await waitFor("a status key", async () => ((await redis.send("KEYS", [pattern])) as string[]).length === 1, POLL_MS + 3000);
  const [statusKey] = (await redis.send("KEYS", [pattern])) as string[];
  const status = await redis.get(statusKey!);
  expect(status).toMatch(/^new lifetime=\d+, type=UDP, remote=127\.0\.33\.1:\d+, ssl=NONE, cipher=NONE$/);
  // The seconds left when the poll saw it (coturn: as granted): at most one poll less than 600.
  expect(Number(/lifetime=(\d+)/.exec(status!)![1])).toBeGreaterThan(600 - POLL_MS / 1000 - 3);
  expect((await live.refresh(0)).ok).toBe(true);
  await waitFor("the first record", async () => (await records(redis)).length === 1);
  expect(await redis.exists(statusKey!)).toBe(false);
  const [first] = await records(redis);
  expect(first!.user).toBe(USER);
  expect(first!.relayHost.length).toBeGreaterThan(0);

  // Redis crashes (and comes back empty: no persistence); allocations ending meanwhile are queued.
  redis.close();
  await server.stop();
  for (let i = 0; i < 5; i++) await allocateAndEnd(relay, `127.0.33.${10 + i}`);
  await Bun.sleep(1500); // retries fail meanwhile
  await server.start();
  redis = new RedisClient(url);
  await waitFor("the 5 queued records", async () => (await records(redis)).length >= 5, 15_000);
  await Bun.sleep(1500); // a retry that wrote twice would show now
  const after = await records(redis);
  redis.close();
  expect(after.length).toBe(5);
  // The same 5 the usage log has (ids: this process's token, then the log's ENGINE-SERIAL), each once.
  const logged = readFileSync(usageLog, "utf8").trim().split("\n").map((l) => JSON.parse(l).id as string);
  expect(logged.length).toBe(6);
  expect(new Set(after.map((r) => r.id)).size).toBe(5);
  expect(after.map((r) => r.id.replace(/^[0-9a-f]+-/, "")).sort()).toEqual(logged.slice(1).sort());
  expect(relay.output()).toMatch(/redis-statsdb: Redis \S+ unreachable/);
}, 60_000);

dbTest("redis", "a record whose reply was lost (Redis stalled past the timeout, then ran it) is written once, not again by the retry", async () => {
  const server = await startServer("redis");
  redises.push(server);
  const relay = await startBunturn({ args: ["--relay-threads", "1", "--redis-statsdb", `redis://127.0.0.1:${server.port}`] });
  running.push(relay);
  const redis = new RedisClient(`redis://127.0.0.1:${server.port}`);
  const pid = Number(/process_id:(\d+)/.exec((await redis.send("INFO", ["server"])) as string)![1]);
  await allocateAndEnd(relay, "127.0.33.30");
  await waitFor("the first record", async () => (await records(redis)).length === 1);

  // Stalled: the relay's script waits in Redis's socket, times out (1 s) and is retried (every 1 s);
  // resumed, Redis runs the first and every retry.
  process.kill(pid, "SIGSTOP");
  try {
    await allocateAndEnd(relay, "127.0.33.31");
    await Bun.sleep(3500);
  } finally {
    process.kill(pid, "SIGCONT");
  }
  await waitFor("the second record", async () => (await records(redis)).length >= 2);
  await Bun.sleep(2500); // any retry still queued has run by now
  const all = await records(redis);
  redis.close();
  expect(all.length).toBe(2);
  expect(new Set(all.map((r) => r.id)).size).toBe(2);
}, 60_000);

dbTest("redis", "coturn's events: traffic while data moves (rcvp/rcvb/sentp/sentb each way), total_traffic and deleted at the end", async () => {
  const server = await startServer("redis");
  redises.push(server);
  const relay = await startBunturn({ args: ["--relay-threads", "1", "--redis-statsdb", `redis://127.0.0.1:${server.port}`] });
  running.push(relay);
  const redis = new RedisClient(`redis://127.0.0.1:${server.port}`);
  const listener = new RedisClient(`redis://127.0.0.1:${server.port}`);
  const peer = await EchoPeer.open();
  const c = await TurnClient.open({ server: { host: "127.0.0.1", port: relay.port }, bindHost: "127.0.33.40", username: USER, password: PASSWORD });
  clients.push(c);
  try {
    const echo = await relayedEcho(c, peer.endpoint);
    const pattern = `turn/realm/${REALM}/user/${USER}/allocation/*/status`;
    await waitFor("a status key", async () => ((await redis.send("KEYS", [pattern])) as string[]).length === 1, POLL_MS + 3000);
    const [statusKey] = (await redis.send("KEYS", [pattern])) as string[];
    const base = statusKey!.slice(0, -"/status".length);
    const heard = new Map<string, string[]>();
    for (const channel of ["traffic", "traffic/peer", "total_traffic", "total_traffic/peer", "status"]) {
      await listener.subscribe(`${base}/${channel}`, (message: string) => heard.set(channel, [...(heard.get(channel) ?? []), message]));
    }
    expect(await echo(10)).toBe(10); // 10 × 100 bytes each way
    // Each event has what moved since the last poll (one poll may fall within the echo): summed.
    const sum = (channel: string) => {
      const total = { rcvp: 0, rcvb: 0, sentp: 0, sentb: 0 };
      for (const m of heard.get(channel) ?? []) for (const [, k, v] of m.matchAll(/(\w+)=(\d+)/g)) total[k as keyof typeof total] += Number(v);
      return total;
    };
    await waitFor("traffic events", async () => sum("traffic").rcvp === 10 && sum("traffic/peer").sentp === 10, 2 * POLL_MS + 3000);
    expect(heard.get("traffic")![0]).toMatch(/^rcvp=\d+, rcvb=\d+, sentp=\d+, sentb=\d+$/);
    expect(sum("traffic")).toEqual({ rcvp: 10, rcvb: 1000, sentp: 10, sentb: 1000 });
    expect(sum("traffic/peer")).toEqual({ rcvp: 10, rcvb: 1000, sentp: 10, sentb: 1000 });
    expect((await c.refresh(0)).ok).toBe(true);
    await waitFor("the end events", async () => heard.has("total_traffic") && heard.has("total_traffic/peer") && (heard.get("status") ?? []).includes("deleted"));
    expect(heard.get("total_traffic")).toEqual(["rcvp=10, rcvb=1000, sentp=10, sentb=1000"]);
  } finally {
    listener.close();
    redis.close();
    peer.close();
  }
}, 60_000);
