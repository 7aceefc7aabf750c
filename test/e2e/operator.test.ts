/**
 * Operator features end to end: the Prometheus endpoint after real traffic from coturn's clients, the
 * SQLite user database changed under a running server, log files, JSON lines and the pidfile.
 */
import { Database } from "bun:sqlite";
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { md5Key } from "../../src/turn/credentials.ts";
import { REALM, ROOT, e2eTest, freePort, relayRange, runCli, runUclient, spawnUntil, startBunturn, startPeer, stopProcess, type Running } from "./harness.ts";

const running: Running[] = [];
const dir = mkdtempSync(join(tmpdir(), "bunturn-operator-"));
afterAll(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
  rmSync(dir, { recursive: true, force: true });
});

const cli = (args: string[]) => runCli(args);

async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs = 10000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^(\w+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

async function scrape(url: string): Promise<Map<string, number>> {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
  expect(r.status).toBe(200);
  return parseMetrics(await r.text());
}

describe("--prometheus", () => {
  e2eTest("counters move with uclient traffic and a Binding; health check; allocations gauge consistent", async () => {
    const metricsPort = freePort();
    const s = await startBunturn({
      args: ["--udp-recvmmsg", "--relay-threads", "2", "--prometheus", "--prometheus-address", "127.0.0.1", "--prometheus-port", String(metricsPort)],
    });
    running.push(s);
    const url = `http://127.0.0.1:${metricsPort}/metrics`;
    // Logged right after the "listening on" line startBunturn waits for.
    await waitFor("the metrics line", () => s.output().includes(`prometheus metrics on ${url}`));
    const health = await fetch(`http://127.0.0.1:${metricsPort}/`);
    expect((await health.text()).trim()).toBe("ok");
    const before = await scrape(url);
    expect(before.get("turn_total_traffic_rcvp")).toBe(0);
    expect(before.get('turn_total_allocations{type="UDP"}')).toBe(0);

    const p = await startPeer();
    running.push(p);
    const r = await runUclient(["-u", "alice", "-w", "wonderland", "-e", "127.0.0.1", "-r", String(p.port), "-p", String(s.port), "-n", "30", "-l", "120", "-m", "2", "127.0.0.1"]);
    expect(r.lost).toBe(0);
    expect(r.received).toBe(r.sent);
    const stun = Bun.spawn(["turnutils_stunclient", "-p", String(s.port), "127.0.0.1"], { stdout: "pipe", stderr: "pipe" });
    const stunTimer = setTimeout(() => stun.kill("SIGKILL"), 10000);
    await stun.exited;
    clearTimeout(stunTimer);

    // Engines publish once per loop turn (at least every second).
    let m = await scrape(url);
    const deadline = Date.now() + 3000;
    while ((m.get("stun_binding_response") ?? 0) < 1 && Date.now() < deadline) {
      await Bun.sleep(100);
      m = await scrape(url);
    }
    const v = (k: string) => m.get(k) ?? NaN;
    // uclient's messages: client -> relay -> peer -> relay -> client; sent counts both sessions of each client.
    expect(v("turn_total_traffic_peer_sentp")).toBeGreaterThanOrEqual(r.sent);
    expect(v("turn_total_traffic_peer_rcvp")).toBeGreaterThanOrEqual(r.received);
    expect(v("turn_total_traffic_rcvp")).toBeGreaterThan(v("turn_total_traffic_peer_sentp")); // plus STUN requests
    expect(v("turn_total_traffic_sentp")).toBeGreaterThan(v("turn_total_traffic_peer_rcvp")); // plus STUN responses
    expect(v("turn_total_traffic_peer_sentb")).toBeGreaterThanOrEqual(r.sent * 120);
    expect(v("turn_total_traffic_rcvb")).toBeGreaterThan(v("turn_total_traffic_peer_sentb"));
    expect(v(`turn_traffic_rcvp{realm="${REALM}"}`)).toBe(v("turn_total_traffic_rcvp"));
    expect(v("stun_binding_request")).toBeGreaterThanOrEqual(1);
    expect(v("stun_binding_response")).toBe(v("stun_binding_request"));
    expect(v("stun_binding_error")).toBe(0);
    expect(v("bunturn_unauthorized_total")).toBeGreaterThanOrEqual(2); // each client's first Allocate
    const created = v("bunturn_allocations_created_total");
    expect(created).toBeGreaterThanOrEqual(2);
    expect(v('turn_total_allocations{type="UDP"}')).toBe(created - v("bunturn_allocations_deleted_total"));
    expect(v('bunturn_relay_addresses{family="ipv4"}')).toBe(v('turn_total_allocations{type="UDP"}'));
    expect(v('bunturn_engine_allocations{engine="0"}') + v('bunturn_engine_allocations{engine="1"}')).toBe(v('turn_total_allocations{type="UDP"}'));
    // Every relayed datagram crossed recvmmsg twice and a send call twice.
    expect(v("turn_udp_recvmmsg_packets")).toBeGreaterThanOrEqual(2 * r.sent);
    expect(v("turn_udp_recvmmsg_calls")).toBeGreaterThan(0);
    expect(v("turn_udp_sendmmsg_datagrams")).toBeGreaterThanOrEqual(2 * r.sent);
    expect(v('bunturn_packets_dropped_total{reason="ttl"}')).toBe(0);
    expect(v("bunturn_engine_crashes_total")).toBe(0);
  });

  e2eTest("a metrics port in use is one line and exit 1", async () => {
    const holder = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
    try {
      const [min, max] = relayRange(10);
      const r = await cli(["-L", "127.0.0.1", "-p", String(freePort()), "-E", "127.0.0.1", "--min-port", String(min), "--max-port", String(max), "--user", "a:b",
        "--prometheus", "--prometheus-address", "127.0.0.1", "--prometheus-port", String(holder.port)]);
      expect(r.code).toBe(1);
      expect(r.output).toContain(`cannot listen on 127.0.0.1:${holder.port} (prometheus): address already in use`);
      expect(r.output.trim().split("\n").length).toBe(1);
    } finally {
      holder.stop(true);
    }
  });
});

describe("--userdb", () => {
  e2eTest("admin add-user works on a running server; delete-user refuses new allocations; no password in the file", async () => {
    const db = join(dir, "turndb");
    const add = await cli(["admin", "add-user", "--userdb", db, "--user", "erin", "--password", "first-secret-pw", "--realm", REALM]);
    expect(add.code).toBe(0);
    const s = await startBunturn({ auth: "custom", args: ["--lt-cred-mech", "--userdb", db] });
    running.push(s);
    expect(s.output()).toContain(`user database ${db} (1 in realm ${REALM} now)`);
    const p = await startPeer();
    running.push(p);
    // A refused Allocate: uclient says "Cannot complete Allocation", or retries for ever ("unknown allocate
    // response"), so refused runs are cut short.
    const uclient = (user: string, password: string, timeoutMs = 20000) =>
      runUclient(["-u", user, "-w", password, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(s.port), "-n", "10", "-m", "1", "-c", "127.0.0.1"], timeoutMs);
    const expectRefused = (r: Awaited<ReturnType<typeof uclient>>) => {
      expect(r.received).toBeLessThanOrEqual(0);
      expect(r.output).toMatch(/unknown allocate response|Cannot complete Allocation/);
      expect(r.output).not.toContain("tot_send_msgs");
    };

    const first = await uclient("erin", "first-secret-pw");
    expect(first.errors).toEqual([]);
    expect(first.sent).toBeGreaterThanOrEqual(10);
    expect(first.received).toBe(first.sent);

    // A second user, added while the server runs: no restart.
    expect((await cli(["admin", "add-user", "-b", db, "-u", "frank", "-p", "second-secret-pw", "-r", REALM])).code).toBe(0);
    const second = await uclient("frank", "second-secret-pw");
    expect(second.errors).toEqual([]);
    expect(second.received).toBe(second.sent);
    expect(second.sent).toBeGreaterThanOrEqual(10);

    expectRefused(await uclient("frank", "not-the-password", 3000));

    const list = await cli(["admin", "list-users", "--userdb", db, "--realm", REALM]);
    expect(list.output.trim().split("\n")).toEqual([`erin[${REALM}]`, `frank[${REALM}]`]);

    expect((await cli(["admin", "delete-user", "-b", db, "-u", "frank", "-r", REALM])).code).toBe(0);
    expectRefused(await uclient("frank", "second-secret-pw", 3000));
    // erin is untouched.
    const again = await uclient("erin", "first-secret-pw");
    expect(again.received).toBe(again.sent);
    expect(again.sent).toBeGreaterThanOrEqual(10);

    const bytes = readFileSync(db);
    expect(bytes.includes(Buffer.from("first-secret-pw"))).toBe(false);
    expect(bytes.includes(Buffer.from("second-secret-pw"))).toBe(false);
    const raw = new Database(db, { readonly: true });
    const row = raw.query("SELECT hmackey FROM turnusers_lt WHERE name = 'erin'").get() as { hmackey: string };
    raw.close();
    expect(row.hmackey).toBe(Buffer.from(md5Key("erin", REALM, "first-secret-pw")).toString("hex"));
  }, 90000);

  e2eTest("--user NAME:0xKEY (coturn's key form, from 'bunturn admin key') logs in with the password", async () => {
    const key = await cli(["admin", "key", "-u", "gina", "-r", REALM, "-p", "gina-pw"]);
    expect(key.output.trim()).toMatch(/^0x[0-9a-f]{32}$/);
    const s = await startBunturn({ auth: "custom", args: ["--lt-cred-mech", "--user", `gina:${key.output.trim()}`] });
    running.push(s);
    const p = await startPeer();
    running.push(p);
    const r = await runUclient(["-u", "gina", "-w", "gina-pw", "-e", "127.0.0.1", "-r", String(p.port), "-p", String(s.port), "-n", "10", "-m", "1", "-c", "127.0.0.1"], 20000);
    expect(r.errors).toEqual([]);
    expect(r.sent).toBeGreaterThanOrEqual(10);
    expect(r.received).toBe(r.sent);
  });
});

describe("logging and pidfile", () => {
  test("--log-file with --log-format json and --no-stdout-log; pidfile written at start, removed at SIGTERM", async () => {
    const log = join(dir, "bunturn.json.log");
    const pidfile = join(dir, "bunturn.pid");
    const [min, max] = relayRange(10);
    const port = freePort();
    const { proc, chunks } = await spawnUntil([
      "bun", join(ROOT, "src/cli/main.ts"), "-L", "127.0.0.1", "-p", String(port), "-E", "127.0.0.1", "--min-port", String(min), "--max-port", String(max),
      "--user", "a:b", "--realm", REALM, "--log-file", log, "--log-format", "json", "--no-stdout-log", "--simple-log", "--pidfile", pidfile,
    ], null, 0);
    try {
      await waitFor("the start-up line in the log file", () => existsSync(log) && readFileSync(log, "utf8").includes("listening on"), 15000);
      expect(readFileSync(pidfile, "utf8")).toBe(`${proc.pid}\n`);
      // SIGHUP reopens the file: move it away, and the next lines land in a new one.
      renameSync(log, `${log}.1`);
      proc.kill("SIGHUP");
      await waitFor("the reopened log file", () => existsSync(log) && readFileSync(log, "utf8").includes("reopened"));
      expect(await stopProcess(proc)).toBe(0);
    } finally {
      if (proc.exitCode === null) proc.kill("SIGKILL");
    }
    expect(existsSync(pidfile)).toBe(false);
    const lines = [...readFileSync(`${log}.1`, "utf8").trimEnd().split("\n"), ...readFileSync(log, "utf8").trimEnd().split("\n")].map((l) => JSON.parse(l));
    for (const l of lines) {
      expect(Object.keys(l)).toEqual(["time", "level", "message"]);
      expect(Number.isNaN(Date.parse(l.time))).toBe(false);
    }
    expect(lines[0].level).toBe("info");
    expect(lines[0].message).toContain(`listening on 127.0.0.1:${port}`);
    expect(lines.at(-1).message).toBe("SIGTERM: stopping");
    await Bun.sleep(20);
    expect(chunks.join("")).toBe(""); // nothing on stdout or stderr
  });

  test("text log file plus stdout; JSON on stdout alone", async () => {
    const log = join(dir, "bunturn.text.log");
    const s = await startBunturn({ args: ["--log-file", log] });
    await waitFor("the log file", () => existsSync(log) && readFileSync(log, "utf8").includes("listening on"));
    expect(await s.stop()).toBe(0);
    expect(s.output()).toContain("listening on");
    const lines = readFileSync(log, "utf8").trimEnd().split("\n");
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info: bunturn .* listening on /);
    expect(lines.at(-1)).toMatch(/Z info: SIGTERM: stopping$/);

    const j = await startBunturn({ args: ["--log-format", "json"] });
    expect(await j.stop()).toBe(0);
    const out = j.output().trimEnd().split("\n");
    expect(out.length).toBeGreaterThanOrEqual(2);
    for (const line of out) expect(Object.keys(JSON.parse(line))).toEqual(["time", "level", "message"]);
  });

  test("an unwritable pidfile or log file stops the start with one line", async () => {
    const bad = join(dir, "missing-dir", "x");
    const [min, max] = relayRange(10);
    for (const flag of ["--pidfile", "--log-file"]) {
      const r = await cli(["-L", "127.0.0.1", "-p", String(freePort()), "-E", "127.0.0.1", "--min-port", String(min), "--max-port", String(max), "--user", "a:b", flag, bad]);
      expect(r.code).toBe(1);
      expect(r.output).toMatch(new RegExp(`cannot (write pidfile|open log file) ${bad}: ENOENT`));
      expect(r.output.trim().split("\n").length).toBe(1);
    }
  });
});
