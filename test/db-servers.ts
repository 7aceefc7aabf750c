/**
 * Real database servers for tests, started here on a loopback port in a temporary directory (Debian's
 * `postgresql`, `mariadb-server` and `redis-server` packages; .ci/run installs them): nothing the host
 * already runs is touched. Each start is timed (`startupMs`) and made fast (no fsync: the data is thrown away). A server
 * can be stopped and started again on the same port and data, as an outage mid-run (Redis is killed,
 * as a crash, and comes back empty: it persists nothing).
 *
 * `dbTest(kind, ...)` is `test` when the server's binaries are here and `test.skip` with one line when
 * not; with BUNTURN_REQUIRE_E2E=1 (CI) missing binaries fail instead.
 */
import { test } from "bun:test";
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.ts";

export type ServerKind = "postgres" | "mariadb" | "redis";

export interface DbServer {
  kind: ServerKind;
  port: number;
  /** The database, user and password the tests use (the user owns the database). */
  database: string;
  user: string;
  password: string;
  /** Milliseconds the first start took (initialisation included). */
  startupMs: number;
  /** Stops the server (its data stays) and resolves when the port is closed. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it and removes its directory. */
  destroy(): Promise<void>;
}

const DATABASE = "coturn";
const USER = "turn";
const PASSWORD = "turn-pw";
const IS_ROOT = process.getuid?.() === 0;

function postgresBin(): string | null {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return null;
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, "bin/postgres"))).sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? join(root, versions[0]!, "bin") : null;
}

function mariadbBins(): { server: string; install: string } | null {
  const server = Bun.which("mariadbd", { PATH: "/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin" });
  const install = Bun.which("mariadb-install-db");
  return server && install ? { server, install } : null;
}

const PACKAGE: Record<ServerKind, string> = { postgres: "postgresql", mariadb: "mariadb-server", redis: "redis-server" };
const PRESENT: Record<ServerKind, () => boolean> = {
  postgres: () => postgresBin() !== null && (!IS_ROOT || Bun.which("runuser") !== null),
  mariadb: () => mariadbBins() !== null,
  redis: () => Bun.which("redis-server") !== null,
};
const told = new Set<ServerKind>();

/** Whether `kind` can be started here; says so once when not, and throws when BUNTURN_REQUIRE_E2E=1. */
export function haveServer(kind: ServerKind): boolean {
  if (PRESENT[kind]()) return true;
  if (process.env.BUNTURN_REQUIRE_E2E === "1") throw new Error(`${kind} server binaries not found, and BUNTURN_REQUIRE_E2E=1: apt-get install ${PACKAGE[kind]}`);
  if (!told.has(kind)) console.warn(`db: ${kind} not installed (apt-get install ${PACKAGE[kind]}); skipping its tests`);
  told.add(kind);
  return false;
}

/** `test` when the server can be started here, else `test.skip` (one line said by haveServer). */
export function dbTest(kind: ServerKind, name: string, fn: () => Promise<void>, timeoutMs = 90000): void {
  (haveServer(kind) ? test : test.skip)(name, fn, timeoutMs);
}

async function run(cmd: string[], timeoutMs = 60000): Promise<string> {
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited ${code}:\n${out}${err}`);
  return out + err;
}

/** PostgreSQL refuses to run as root: then its commands run as the `postgres` user (runuser). */
const asPostgres = (cmd: string[]) => (IS_ROOT ? ["runuser", "-u", "postgres", "--", ...cmd] : cmd);

async function waitForPort(port: number, timeoutMs: number, alive: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      socket.end();
      return;
    } catch {
      if (!alive()) throw new Error(`${what} exited during start-up`);
      if (Date.now() > deadline) throw new Error(`${what} not listening on 127.0.0.1:${port} within ${timeoutMs} ms`);
      await Bun.sleep(25);
    }
  }
}

async function waitForClosed(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      (await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } })).end();
    } catch {
      return;
    }
    await Bun.sleep(25);
  }
  throw new Error(`port ${port} still open ${timeoutMs} ms after the server was stopped`);
}

/** PostgreSQL: initdb with user `turn` (password over TCP, SCRAM), the database `coturn`, fsync off. */
export async function startPostgres(): Promise<DbServer> {
  const bin = postgresBin();
  if (bin === null) throw new Error("PostgreSQL is not installed");
  const began = performance.now();
  const dir = mkdtempSync(join(tmpdir(), "bunturn-pg-"));
  const data = join(dir, "data");
  const pwfile = join(dir, "pw");
  writeFileSync(pwfile, `${PASSWORD}\n`);
  if (IS_ROOT) {
    chownSync(dir, ...postgresIds());
    chownSync(pwfile, ...postgresIds());
  }
  await run(asPostgres([join(bin, "initdb"), "-D", data, "-U", USER, `--pwfile=${pwfile}`, "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync", "--no-instructions"]));
  const port = freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
  const start = async () => {
    await run(asPostgres([join(bin, "pg_ctl"), "-D", data, "-l", join(dir, "log"), "-o", options, "-w", "-t", "30", "start"]));
    await waitForPort(port, 10000, () => true, "postgres");
  };
  const stop = async () => {
    await run(asPostgres([join(bin, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"]));
    await waitForClosed(port, 10000);
  };
  await start();
  await run(asPostgres([join(bin, "createdb"), "-h", dir, "-p", String(port), "-U", USER, DATABASE]));
  const startupMs = Math.round(performance.now() - began);
  return {
    kind: "postgres", port, database: DATABASE, user: USER, password: PASSWORD, startupMs, start, stop,
    destroy: async () => {
      await stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgresIds(): [number, number] {
  const line = readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith("postgres:"));
  if (line === undefined) throw new Error("no postgres user to run PostgreSQL as (apt-get install postgresql creates it)");
  const [, , uid, gid] = line.split(":");
  return [Number(uid), Number(gid)];
}

/** MariaDB: a fresh data directory; user `turn`@`%` with a password owns the database `coturn`. */
export async function startMariadb(): Promise<DbServer> {
  const bins = mariadbBins();
  if (bins === null) throw new Error("MariaDB is not installed");
  const began = performance.now();
  const dir = mkdtempSync(join(tmpdir(), "bunturn-mariadb-"));
  const data = join(dir, "data");
  await run([bins.install, "--no-defaults", `--datadir=${data}`, "--auth-root-authentication-method=normal", "--skip-test-db", "--user=root"]);
  // Run at every start, so it says IF NOT EXISTS.
  const init = join(dir, "init.sql");
  writeFileSync(init, [
    `CREATE DATABASE IF NOT EXISTS ${DATABASE};`,
    `CREATE USER IF NOT EXISTS '${USER}'@'%' IDENTIFIED BY '${PASSWORD}';`,
    `GRANT ALL ON ${DATABASE}.* TO '${USER}'@'%';`,
  ].join("\n"));
  const port = freePort();
  let proc: ReturnType<typeof Bun.spawn> | undefined;
  const start = async () => {
    proc = Bun.spawn([
      bins.server, "--no-defaults", `--datadir=${data}`, `--socket=${join(dir, "sock")}`, `--pid-file=${join(dir, "pid")}`,
      `--port=${port}`, "--bind-address=127.0.0.1", "--user=root", "--skip-name-resolve", `--init-file=${init}`,
      "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0", "--innodb-buffer-pool-size=16M",
      `--log-error=${join(dir, "log")}`,
    ], { stdout: "ignore", stderr: "ignore", stdin: "ignore" });
    const started = proc;
    await waitForPort(port, 30000, () => started.exitCode === null, "mariadbd");
  };
  const stop = async () => {
    if (proc === undefined || proc.exitCode !== null) return;
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc?.kill("SIGKILL"), 10000);
    await proc.exited;
    clearTimeout(timer);
    await waitForClosed(port, 10000);
  };
  await start();
  const startupMs = Math.round(performance.now() - began);
  return {
    kind: "mariadb", port, database: DATABASE, user: USER, password: PASSWORD, startupMs, start, stop,
    destroy: async () => {
      await stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Redis: no persistence (--save '', no AOF), so `stop` is a crash (SIGKILL) and `start` comes back empty. */
export async function startRedis(): Promise<DbServer> {
  const began = performance.now();
  const dir = mkdtempSync(join(tmpdir(), "bunturn-redis-"));
  const port = freePort();
  let proc: ReturnType<typeof Bun.spawn> | undefined;
  const start = async () => {
    proc = Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], { stdout: "ignore", stderr: "ignore", stdin: "ignore" });
    const started = proc;
    await waitForPort(port, 10000, () => started.exitCode === null, "redis-server");
  };
  const stop = async () => {
    if (proc === undefined || proc.exitCode !== null) return;
    proc.kill("SIGKILL");
    await proc.exited;
    await waitForClosed(port, 10000);
  };
  await start();
  const startupMs = Math.round(performance.now() - began);
  return {
    kind: "redis", port, database: "0", user: "", password: "", startupMs, start, stop,
    destroy: async () => {
      await stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function startServer(kind: ServerKind): Promise<DbServer> {
  return kind === "postgres" ? startPostgres() : kind === "mariadb" ? startMariadb() : startRedis();
}
