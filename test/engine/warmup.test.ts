/**
 * The start-up warm-up (src/engine/warmup.ts): it relays synthetic traffic through a throwaway engine
 * and leaves no trace in the real engine's shared state (counters, port pool, quota, capability cells)
 * nor an open descriptor, succeeded or failed; and a relay starts and serves with it, without it
 * (--no-warmup) and when it fails (the test-only `warmupFault`, which no option sets).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { UdpCapabilities } from "../../ffi/index.ts";
import { parseArgv } from "../../src/cli/argv.ts";
import { resolveConfig } from "../../src/config/resolve.ts";
import type { RelayConfig } from "../../src/config/relay-config.ts";
import { CONTROL_CELLS } from "../../src/engine/admission.ts";
import { BLOCK_SLOTS } from "../../src/engine/counters.ts";
import type { EngineInit } from "../../src/engine/engine-init.ts";
import { PortPool } from "../../src/engine/port-pool.ts";
import { createQuotaShared, localAllocations } from "../../src/engine/quota.ts";
import { RelayServer } from "../../src/engine/relay-server.ts";
import { warmUp, warmupConfig } from "../../src/engine/warmup.ts";
import { EchoPeer, TurnClient, relayedEcho } from "../fuzz/turn-client.ts";
import { freePort, relayRange } from "../ports.ts";

const USER = "alice";
const PASSWORD = "wonderland";

function configFor(extra: string[] = [], ports = 100): RelayConfig {
  const [min, max] = relayRange(ports);
  return resolveConfig(parseArgv([
    "--listening-ip", "127.0.0.1", "--listening-port", String(freePort()), "--relay-ip", "127.0.0.1",
    "--min-port", String(min), "--max-port", String(max), "--realm", "warmup.test", "--lt-cred-mech",
    "--user", `${USER}:${PASSWORD}`, "--allow-loopback-peers", "--relay-threads", "2", "--no-tcp", ...extra,
  ]).raw);
}

/** What an engine of a real server would be handed, with fresh shared memory to inspect afterwards. */
function engineInit(config: RelayConfig): EngineInit {
  return {
    index: 0,
    config,
    pool: PortPool.createShared(config.minPort, config.maxPort),
    capabilityCells: UdpCapabilities.sharedCells({ recvmmsg: true, sendmmsg: true }),
    counters: new Float64Array(new SharedArrayBuffer(BLOCK_SLOTS * 8)),
    control: new Int32Array(new SharedArrayBuffer(CONTROL_CELLS * 4)),
    nonceSecret: crypto.getRandomValues(new Uint8Array(32)),
    quota: createQuotaShared(),
  };
}

const openFds = () => readdirSync("/proc/self/fd").length;

function expectUntouched(init: EngineInit): void {
  expect([...init.counters].filter((v) => v !== 0)).toEqual([]);
  expect(new PortPool(init.pool).countTaken()).toBe(0);
  expect(localAllocations(init.quota)).toBe(0);
  expect([...init.capabilityCells]).toEqual([1, 1]);
}

describe("warmupConfig", () => {
  test("keeps the data-path settings; its own listener, relay address, user, peer policy and limits; every other field undefined", () => {
    const real = { ...configFor(["--no-udp-gso", "--user-quota", "1", "--max-bps", "1000", "--denied-peer-ip", "127.0.0.1"]), controlSocket: "/x", usageLog: "/y", pidfile: "/z", someFutureListener: { port: 1 } };
    const warm = warmupConfig(real, "secret") as RelayConfig & Record<string, unknown>;
    expect(Object.keys(warm).slice(0, Object.keys(real).length)).toEqual(Object.keys(real));
    expect([warm.udpGso, warm.udpGro, warm.sockBufSize, warm.realm]).toEqual([false, real.udpGro, real.sockBufSize, real.realm]);
    expect([warm.listeningIps, warm.listeningPort, warm.relayIps, warm.tcp]).toEqual([["127.0.0.1"], 0, ["127.0.0.1"], false]);
    expect(warm.auth).toEqual({ kind: "long-term", users: [["warmup", "secret"]] });
    expect(warm.peerPolicy).toEqual({ allowLoopback: true });
    expect([warm.userQuota, warm.maxBps, warm.warmupMs]).toEqual([0, 0, 0]);
    expect([warm.controlSocket, warm.usageLog, warm.pidfile, warm.someFutureListener]).toEqual([undefined, undefined, undefined, undefined]);
    expect(warm.minPort === real.minPort && warm.maxPort === real.maxPort).toBe(false);
  });
});

describe("warmUp (in this thread)", () => {
  test("relays traffic through its own engine, then leaves the real counters, pool, quota and descriptors as they were", () => {
    const init = engineInit(configFor());
    const before = openFds();
    const report = warmUp(init, 150);
    expect(openFds()).toBe(before);
    expect(report.allocations).toBe(4);
    expect(report.relayed).toBeGreaterThan(1000);
    expect(report.ms).toBeGreaterThanOrEqual(150);
    expect(report.ms).toBeLessThan(1500);
    expectUntouched(init);
  });

  test("its relay ports are not the operator's: with a relay range of one port it still allocates 4 times", () => {
    const init = engineInit(configFor([], 1));
    expect(warmUp(init, 50).allocations).toBe(4);
    expectUntouched(init);
  });

  test("a failure after its sockets are open throws, with every descriptor closed", () => {
    const config = { ...configFor(), warmupFault: "injected fault" };
    const init = engineInit(config);
    const before = openFds();
    expect(() => warmUp(init, 150)).toThrow("injected fault");
    expect(openFds()).toBe(before);
    expectUntouched(init);
  });
});

describe("a relay starting with and without the warm-up", () => {
  const servers: RelayServer[] = [];
  const closers: Array<() => void> = [];
  afterAll(async () => {
    for (const c of closers.splice(0)) c();
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  async function start(config: RelayConfig) {
    const lines: string[] = [];
    const log = (level: string) => (m: string) => lines.push(`${level} ${m}`);
    const server = await RelayServer.start(config, { info: log("info"), warn: log("warn"), error: log("error"), debug: log("debug") });
    servers.push(server);
    return { server, lines };
  }

  /** Nothing of the warm-up shows: every counter of every engine zero, no allocation, no port, no session. */
  async function expectClean(server: RelayServer): Promise<void> {
    expect([...server.totals()].filter((v) => v !== 0)).toEqual([]);
    expect(server.allocations).toBe(0);
    expect(server.relayPortsInUse).toBe(0);
    expect(await server.sessions()).toEqual([]);
  }

  /** One real client relays through it, and the counters then say one allocation. */
  async function expectServes(config: RelayConfig, server: RelayServer): Promise<void> {
    const peer = await EchoPeer.open();
    closers.push(() => peer.close());
    const client = await TurnClient.open({ server: { host: "127.0.0.1", port: config.listeningPort }, username: USER, password: PASSWORD });
    closers.push(() => client.close());
    const echo = await relayedEcho(client, peer.endpoint);
    expect(await echo(20)).toBe(20);
    expect(server.allocations).toBe(1);
    expect((await server.sessions()).length).toBe(1);
  }

  test("on by default: each engine warms up (one line at -v), and the real server starts clean and serves", async () => {
    const config = configFor(["-v"]);
    expect(config.warmupMs).toBeGreaterThan(0);
    const { server, lines } = await start(config);
    const warmups = lines.filter((l) => /^debug engine \d: warm-up: 4 allocations on 127\.0\.0\.1, \d+ datagrams relayed in \d+ ms$/.test(l));
    expect(warmups.length).toBe(2);
    await expectClean(server);
    await expectServes(config, server);
  });

  test("--no-warmup: no warm-up, and the server starts and serves", async () => {
    const config = configFor(["-v", "--no-warmup"]);
    expect(config.warmupMs).toBe(0);
    const { server, lines } = await start(config);
    expect(lines.filter((l) => l.includes("warm-up"))).toEqual([]);
    await expectClean(server);
    await expectServes(config, server);
  });

  test("a failing warm-up is logged once per engine and the server starts clean and serves", async () => {
    const config = { ...configFor(), warmupFault: "injected fault" };
    const { server, lines } = await start(config);
    expect(lines.filter((l) => l.includes("warm-up")).sort()).toEqual([
      "warn engine 0: warm-up skipped: injected fault",
      "warn engine 1: warm-up skipped: injected fault",
    ]);
    await expectClean(server);
    await expectServes(config, server);
  });
});
