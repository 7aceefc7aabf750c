/**
 * The fleet-wide nonce key (src/fleet/nonce-secret.ts): a nonce one relay process issued is accepted by
 * another (no 438 Stale Nonce, RFC 8489 §9.2.4), with --nonce-secret-file or with --fleet-redis; two
 * relays with neither reject each other's nonces (what this fixes, and proof the check can see it).
 */
import { RedisClient } from "bun";
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PASSWORD, ROOT, USER, freePort, startBunturn, type Running } from "../e2e/harness.ts";
import { TurnClient } from "../fuzz/turn-client.ts";
import { dbTest, startServer, type DbServer } from "../db-servers.ts";

const running: Running[] = [];
const redises: DbServer[] = [];
const clients: TurnClient[] = [];
const dir = mkdtempSync(join(tmpdir(), "bunturn-nonce-"));
afterAll(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(running.splice(0).map((r) => r.stop()));
  await Promise.all(redises.splice(0).map((r) => r.destroy()));
  rmSync(dir, { recursive: true, force: true });
});

async function relay(args: string[]): Promise<Running> {
  const r = await startBunturn({ args: ["--relay-threads", "1", ...args] });
  running.push(r);
  return r;
}

/** Allocates at `a`, then at `b` from the same socket with the nonce `a` gave: was it kept? */
async function nonceCarriesOver(a: Running, b: Running, bindHost: string): Promise<boolean> {
  const client = await TurnClient.open({ server: { host: "127.0.0.1", port: a.port }, bindHost, username: USER, password: PASSWORD });
  clients.push(client);
  expect((await client.allocate()).ok).toBe(true);
  const fromA = client.nonce;
  expect(fromA).toBeDefined();
  client.moveTo({ host: "127.0.0.1", port: b.port });
  // A relay that does not know the nonce answers 438 with its own, and the client retries with that.
  expect((await client.allocate()).ok).toBe(true);
  return client.nonce === fromA;
}

describe("fleet-wide nonce secret", () => {
  test("without a shared secret, each relay rejects the other's nonce (438, then a new one)", async () => {
    const [a, b] = await Promise.all([relay([]), relay([])]);
    expect(await nonceCarriesOver(a, b, "127.0.31.1")).toBe(false);
  }, 30_000);

  test("--nonce-secret-file: a nonce from one relay is good at the other", async () => {
    const file = join(dir, "nonce-secret");
    writeFileSync(file, "correct horse battery staple\n", { mode: 0o600 });
    const [a, b] = await Promise.all([relay(["--nonce-secret-file", file]), relay(["--nonce-secret-file", file])]);
    expect(await nonceCarriesOver(a, b, "127.0.31.2")).toBe(true);
    expect(await nonceCarriesOver(b, a, "127.0.31.3")).toBe(true);
  }, 30_000);

  test("--nonce-secret-file refuses a short file (a guessable key)", async () => {
    const file = join(dir, "short");
    writeFileSync(file, "short");
    // Run to its end here (the harness may see the exit before the last of its output).
    const proc = Bun.spawn(["bun", join(ROOT, "src/cli/main.ts"), "--listening-ip", "127.0.0.1", "--listening-port", String(freePort()), "--nonce-secret-file", file], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect(code).toBe(1);
    expect(out + err).toContain("holds 5 bytes, at least 16 bytes are needed");
  }, 30_000);

  dbTest("redis", "--fleet-redis: the first relay creates the key, the next reads it; nonces carry over; a Redis restarted empty gets the same key back", async () => {
    const redis = await startServer("redis");
    const url = `redis://127.0.0.1:${redis.port}`;
    redises.push(redis);
    const a = await relay(["--fleet-redis", url]);
    const b = await relay(["--fleet-redis", `host=127.0.0.1 port=${redis.port} dbname=0`]);
    expect(await nonceCarriesOver(a, b, "127.0.31.4")).toBe(true);
    expect(await nonceCarriesOver(b, a, "127.0.31.5")).toBe(true);
    const key = "bunturn/fleet/realm/bunturn.test/nonce-secret";
    let client = new RedisClient(url);
    const before = await client.get(key);
    expect(before).toMatch(/^[0-9a-f]{64}$/);
    client.close();

    // Redis restarts empty: the relays put the same key back at their next heartbeat.
    await redis.stop();
    await redis.start();
    client = new RedisClient(url);
    const deadline = Date.now() + 10_000;
    while ((await client.get(key)) === null && Date.now() < deadline) await Bun.sleep(100);
    expect(await client.get(key)).toBe(before);
    client.close();
    expect(await nonceCarriesOver(a, b, "127.0.31.6")).toBe(true);
  }, 30_000);
});
