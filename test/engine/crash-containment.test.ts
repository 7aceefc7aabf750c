/**
 * A handler that throws costs the datagram in hand, never the engine: the crash is counted and logged
 * (at most once a second), and the same engine goes on answering. The engine runs in a real Worker,
 * on a real UDP socket on 127.0.0.1.
 */
import { afterAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { EventFd, UdpCapabilities } from "../../ffi/index.ts";
import { parseArgv } from "../../src/cli/argv.ts";
import { resolveConfig } from "../../src/config/resolve.ts";
import { BLOCK_SLOTS, SLOT } from "../../src/engine/counters.ts";
import type { EngineEvent, EngineInit } from "../../src/engine/engine.ts";
import { PortPool } from "../../src/engine/port-pool.ts";
import { createQuotaShared } from "../../src/engine/quota.ts";
import { StunMethod, Attr } from "../../src/stun/index.ts";
import { freePort, relayRange } from "../e2e/harness.ts";
import { TurnClient } from "../fuzz/turn-client.ts";
import { MAGIC } from "./crash-magic.ts";

const workers: Worker[] = [];
afterAll(() => workers.forEach((w) => w.terminate()));

test("an exception in the protocol core is contained: counted, logged, and the engine keeps serving", async () => {
  const port = freePort();
  const [min, max] = relayRange(10);
  const config = resolveConfig(parseArgv([
    "--listening-ip", "127.0.0.1", "-p", String(port), "--relay-ip", "127.0.0.1",
    "--min-port", String(min), "--max-port", String(max), "--relay-threads", "1", "--no-auth", "--no-tcp",
  ]).raw);
  const counters = new Float64Array(new SharedArrayBuffer(BLOCK_SLOTS * 8));
  const control = new Int32Array(new SharedArrayBuffer(4));
  const init: EngineInit = {
    index: 0, config, counters, control, quota: createQuotaShared(),
    pool: PortPool.createShared(min, max),
    capabilityCells: UdpCapabilities.sharedCells({ recvmmsg: true, sendmmsg: true }),
    nonceSecret: new Uint8Array(randomBytes(32)),
  };
  const events: EngineEvent[] = [];
  const worker = new Worker(new URL("./crashing-worker.ts", import.meta.url).href, { workerData: init } as WorkerOptions);
  workers.push(worker);
  worker.addEventListener("message", (e: MessageEvent<EngineEvent>) => events.push(e.data));
  const until = async (f: () => boolean, ms = 5000) => {
    const end = Date.now() + ms;
    while (!f() && Date.now() < end) await Bun.sleep(10);
    return f();
  };
  expect(await until(() => events.some((e) => e.kind === "ready"))).toBe(true);
  const wakeFd = (events.find((e) => e.kind === "ready") as { wakeFd: number }).wakeFd;

  const client = await TurnClient.open({ server: { host: "127.0.0.1", port } });
  try {
    for (let i = 0; i < 3; i++) client.sendRaw(new TextEncoder().encode(MAGIC));
    expect(await until(() => counters[SLOT.crashes] === 3)).toBe(true);
    // Logged once, not three times: a hostile peer must not be able to flood the log.
    const logs = events.filter((e) => e.kind === "log" && e.message.includes("handler failed"));
    expect(logs.length).toBe(1);
    expect((logs[0] as { message: string }).message).toContain("injected handler failure");
    // The same engine still answers a well-formed request.
    const binding = await client.request(StunMethod.Binding, () => {}, false);
    expect(binding.ok).toBe(true);
    expect(binding.addresses(Attr.XorMappedAddress).length).toBe(1);
  } finally {
    client.close();
    Atomics.store(control, 0, 1);
    EventFd.signal(wakeFd);
  }
  expect(await until(() => events.some((e) => e.kind === "stopped"))).toBe(true);
}, 20000);
