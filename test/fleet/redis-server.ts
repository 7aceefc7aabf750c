/**
 * A real redis-server (Debian's redis-server package) for the fleet tests, started by the test on a
 * loopback port in a temporary directory, without persistence. When it is not installed the tests are
 * skipped with one line, unless BUNTURN_REQUIRE_E2E=1, where its absence fails the run.
 */
import { test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RedisClient } from "bun";
import { freePort } from "../ports.ts";

const haveRedis = Bun.which("redis-server") !== null;
if (!haveRedis && process.env.BUNTURN_REQUIRE_E2E === "1") {
  throw new Error("redis-server not found, and BUNTURN_REQUIRE_E2E=1: apt-get install redis-server");
}
if (!haveRedis) console.warn("fleet: redis-server not installed (apt-get install redis-server); skipping the Redis tests");

/** `test` with a time bound, or `test.skip` when redis-server is not installed. */
export function redisTest(name: string, fn: () => Promise<void>, timeoutMs = 60000): void {
  (haveRedis ? test : test.skip)(name, fn, timeoutMs);
}

export interface RunningRedis {
  port: number;
  url: string;
  /** A client of the test's own, for looking at what the relays wrote. */
  client: RedisClient;
  /** Stops the server abruptly (SIGKILL): what a crash or a network cut looks like to the relays. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: nothing was persisted). */
  restart(): Promise<void>;
  stop(): Promise<void>;
  /** How long the last start took, in ms. */
  startMs: number;
}

async function launch(port: number, dir: string): Promise<{ proc: ReturnType<typeof Bun.spawn>; ms: number }> {
  const started = performance.now();
  const proc = Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], {
    stdout: "ignore",
    stderr: "ignore",
    stdin: "ignore",
  });
  const deadline = Date.now() + 10000;
  for (;;) {
    const probe = new RedisClient(`redis://127.0.0.1:${port}`, { autoReconnect: false, connectionTimeout: 500 });
    try {
      if ((await probe.send("PING", [])) === "PONG") break;
    } catch {
      if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}`);
      if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${port} within 10 s`);
      await Bun.sleep(20);
    } finally {
      probe.close();
    }
  }
  return { proc, ms: performance.now() - started };
}

export async function startRedis(): Promise<RunningRedis> {
  const port = freePort();
  const dir = mkdtempSync(join(tmpdir(), "bunturn-redis-"));
  let { proc, ms } = await launch(port, dir);
  const url = `redis://127.0.0.1:${port}`;
  const client = new RedisClient(url, { autoReconnect: true });
  await client.connect();
  const running: RunningRedis = {
    port,
    url,
    client,
    startMs: ms,
    async kill() {
      proc.kill("SIGKILL");
      await proc.exited;
    },
    async restart() {
      ({ proc, ms } = await launch(port, dir));
      running.startMs = ms;
    },
    async stop() {
      client.close();
      proc.kill("SIGKILL");
      await proc.exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return running;
}
