/**
 * The start-up warm-up: before an engine's real listeners open, its Worker drives synthetic traffic
 * (warmup-traffic.ts) through a throwaway Engine and protocol core built by the same code, so that JSC
 * has compiled the relay path to its upper tiers before the first real client arrives (compiled code
 * belongs to the functions, which every Engine in the Worker shares). Without it, the first seconds of
 * real traffic cost about twice the steady state per datagram (docs/PerformanceIterationLog.md,
 * iteration 16).
 *
 * The throwaway engine shares nothing with the real one: its own epoll, a UDP listener on 127.0.0.1
 * port 0 (no TCP, no TLS), relay sockets on 127.0.0.1 from a private port pool over the kernel's
 * ephemeral range, not the operator's (a port something else holds fails to bind and the next is tried,
 * so a tiny --min-port/--max-port range or the other engines warming up at the same time cost nothing), its own
 * counter block, quota cells, capability cells, nonce key, credentials (a random password) and peer
 * policy (loopback only: the operator's policy is never touched). It logs nothing and reports no usage.
 * Any failure is the caller's to log once and ignore: a relay that cannot warm up still starts.
 */
import { readFileSync } from "node:fs";
import { UdpCapabilities } from "../../ffi/index.ts";
import type { RelayConfig } from "../config/resolve.ts";
import { BLOCK_SLOTS } from "./counters.ts";
import { CONTROL_CELLS } from "./admission.ts";
import { buildTurnServer } from "./core.ts";
import { Engine } from "./engine.ts";
import type { EngineInit } from "./engine-init.ts";
import { PortPool } from "./port-pool.ts";
import { createQuotaShared } from "./quota.ts";
import { WarmupTraffic } from "./warmup-traffic.ts";

/** Synthetic clients (allocations) of the warm-up. */
const WARMUP_CLIENTS = 4;
/** Every this many rounds, one carries bursts and frames; the others one datagram per client. */
const BULK_EVERY = 4;

export interface WarmupReport {
  ms: number;
  allocations: number;
  /** Datagrams relayed (each one that came back to a synthetic client was relayed twice). */
  relayed: number;
}

const LOOPBACK = new Uint8Array([127, 0, 0, 1]);
const noAlternates = { servers: [], namesSelf: false };

/** The kernel's ephemeral port range (where port-0 sockets come from): the warm-up's relay ports. */
function ephemeralPorts(): { minPort: number; maxPort: number } {
  try {
    const [min, max] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (min! >= 1024 && max! <= 65535 && min! < max!) return { minPort: min!, maxPort: max! };
  } catch {
    // no /proc: Linux's default below
  }
  return { minPort: 32768, maxPort: 60999 };
}

/**
 * The throwaway engine's configuration: the operator's data-path settings (batching, GSO/GRO, buffer
 * sizes, lifetimes, stream limits), everything else its own. Chosen field by field: every other field of
 * the real one (an option added later: another listener, a database) is left undefined, keeping its place,
 * so that the object has the real one's shape (JSC compiles property reads for the shapes it has seen).
 */
export function warmupConfig(real: RelayConfig, password: string): RelayConfig {
  const chosen: RelayConfig = {
    listeningIps: ["127.0.0.1"],
    listeningPort: 0,
    ...ephemeralPorts(),
    listenAddresses: [{ ip: "127.0.0.1", family: 4, address: LOOPBACK, label: "127.0.0.1:0" }],
    relayIps: ["127.0.0.1"],
    externalIps: [],
    relayAddresses: [{ family: 4, local: LOOPBACK, advertised: LOOPBACK }],
    realm: real.realm,
    auth: { kind: "long-term", users: [["warmup", password]] },
    peerPolicy: { allowLoopback: true },
    dynamicIpList: false,
    maxAllocateLifetime: real.maxAllocateLifetime,
    defaultAllocateLifetime: real.defaultAllocateLifetime,
    permissionLifetime: real.permissionLifetime,
    channelLifetime: real.channelLifetime,
    staleNonce: real.staleNonce,
    userQuota: 0,
    totalQuota: 0,
    maxBps: 0,
    bpsCapacity: 0,
    unauthorizedRatelimit: 0,
    relayThreads: 1,
    sockBufSize: real.sockBufSize,
    udpRecvmmsg: real.udpRecvmmsg,
    udpRecvmmsgLog: false,
    udpSendmmsg: real.udpSendmmsg,
    udpGso: real.udpGso,
    udpGro: real.udpGro,
    warmupMs: 0,
    udp: true,
    tcp: false,
    defaultFamily: "ipv4",
    noUdpRelay: false,
    noTcpRelay: false,
    stunOnly: false,
    noStun: false,
    notes: [],
    streams: real.streams,
    serverName: real.serverName,
    verbose: false,
    logStatsInterval: real.logStatsInterval,
    log: { stdout: false, format: "text" },
    alternates: { udp: noAlternates, tcp: noAlternates, tls: noAlternates },
    drainMinAllocations: 0,
    fleet: { capacity: 0, addresses: [], port: 0 },
  };
  return sameShape(real, chosen);
}

/** `chosen`'s values in `real`'s key order; keys of `real` that `chosen` lacks are there, undefined. */
function sameShape<T extends object>(real: T, chosen: T): T {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(real)) out[key] = (chosen as Record<string, unknown>)[key];
  for (const [key, value] of Object.entries(chosen)) if (!(key in out)) out[key] = value;
  return out as T;
}

/**
 * Warms the relay path of this Worker for about `budgetMs`; returns what it did. Throws on any failure,
 * with everything it opened closed.
 */
export function warmUp(real: EngineInit, budgetMs: number): WarmupReport {
  const started = performance.now();
  const password = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex");
  const config = warmupConfig(real.config, password);
  // Shared memory as the real engine has it (typed arrays over SharedArrayBuffers), but its own.
  const init = sameShape<EngineInit>(real, {
    index: real.index,
    config,
    pool: PortPool.createShared(config.minPort, config.maxPort),
    capabilityCells: UdpCapabilities.sharedCells({ recvmmsg: config.udpRecvmmsg, sendmmsg: config.udpSendmmsg }),
    counters: new Float64Array(new SharedArrayBuffer(BLOCK_SLOTS * 8)),
    control: new Int32Array(new SharedArrayBuffer(CONTROL_CELLS * 4)),
    nonceSecret: crypto.getRandomValues(new Uint8Array(32)),
    quota: createQuotaShared(),
  });
  const quiet = () => {};
  let engine: Engine | undefined;
  let traffic: WarmupTraffic | undefined;
  try {
    const built = new Engine(init, quiet, (io) => buildTurnServer(init, io));
    engine = built;
    built.openListeners();
    const port = built.listenerPort(0);
    traffic = new WarmupTraffic(port, () => built.step(5));
    if (real.config.warmupFault !== undefined) throw new Error(real.config.warmupFault);
    traffic.setUp(WARMUP_CLIENTS, "warmup", password);
    const deadline = started + budgetMs;
    for (let round = 1; performance.now() < deadline; round++) {
      traffic.round(round % BULK_EVERY === 0);
      if (round % 500 === 0) traffic.refresh(600);
    }
    traffic.refresh(0);
    return { ms: Math.round(performance.now() - started), allocations: WARMUP_CLIENTS, relayed: 2 * traffic.returned };
  } finally {
    traffic?.close();
    engine?.stop();
  }
}
