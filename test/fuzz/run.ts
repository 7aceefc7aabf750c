/**
 * The end-to-end fuzzer: starts bunturn (test/fuzz/server-fixture.ts: the real RelayServer and engines)
 * on 127.0.0.1, and sends it hostile datagrams from many loopback addresses and ports with the ffi
 * SendBatch (sendmmsg), in windows: after each window, Binding probes from 16 sockets must be answered,
 * so the server's receive queues never overflow and nearly every datagram reaches the engines. A
 * well-behaved client relays through the server during and after the run.
 */
import { join } from "node:path";
import { readFileSync, readdirSync } from "node:fs";
import {
  SendBatch, STAT, STAT_COUNT, UdpCapabilities, boundPort, closeSocket, flushSendBatch, libc, openUdpSocket,
} from "../../ffi/index.ts";
import { StunMethod } from "../../src/stun/index.ts";
import { parseEndpoint } from "../../src/net/endpoint.ts";
import { startBunturn, type Running } from "../e2e/harness.ts";
import { Rng, buildCorpus, emptyCounts, mutate, type Mutation } from "./mutate.ts";
import { EchoPeer, TurnClient, relayedEcho } from "./turn-client.ts";
import type { ServerStats } from "./server-fixture.ts";

export const FIXTURE = join(import.meta.dir, "server-fixture.ts");

export async function startFixture(args: string[], auth: "users" | "none" | "custom" = "users", allowLoopback = true): Promise<Running> {
  return startBunturn({ command: ["bun", FIXTURE], args, auth, allowLoopback });
}

/** Asks the fixture for its counters (SIGUSR2) and waits for the answer line. */
export async function serverStats(server: Running, timeoutMs = 3000): Promise<ServerStats> {
  const before = server.output().split("STATS ").length;
  server.proc.kill("SIGUSR2");
  const deadline = Date.now() + timeoutMs;
  while (server.output().split("STATS ").length === before) {
    if (Date.now() > deadline) throw new Error(`no STATS line from the server:\n${server.output().slice(-2000)}`);
    await Bun.sleep(5);
  }
  const parts = server.output().split("STATS ");
  return JSON.parse(parts[parts.length - 1]!.split("\n")[0]!) as ServerStats;
}

/** Resident set of a process in KiB (/proc/PID/status VmRSS). */
export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

/** Open file descriptors of a process (/proc/PID/fd). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Polls `read` until `done` holds or the time is up; returns the last value. */
export async function waitFor<T>(read: () => T | Promise<T>, done: (v: T) => boolean, timeoutMs: number, stepMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (done(v) || Date.now() > deadline) return v;
    await Bun.sleep(stepMs);
  }
}

export interface FuzzOptions {
  count: number;
  seed?: number;
  /** Distinct source addresses (127.0.0.10 upwards) and sockets per address. */
  addresses?: number;
  socketsPerAddress?: number;
  /** Datagrams per window between Binding probes. */
  window?: number;
  /** The server already running; otherwise one is started (--no-auth, loopback peers only). */
  server?: Running;
  log?: (line: string) => void;
}

export interface FuzzResult {
  sent: number;
  sendErrors: number;
  sources: number;
  elapsedMs: number;
  /** Datagrams the server's listeners received during the run (recvmmsg packet counter). */
  serverReceived: number;
  /** Well-behaved relayed round trips during the run: [answered, tried]. */
  echoDuring: [number, number];
  /** ... and after it. */
  echoAfter: [number, number];
  probesAnswered: number;
  mutations: Record<Mutation, number>;
  before: ServerStats;
  after: ServerStats;
  rssBeforeKiB: number;
  rssAfterKiB: number;
  handlerFailedLines: number;
  serverOutput: string;
}

/**
 * The server flags the fuzzer wants: no credentials (so mutated Allocates succeed and later datagrams
 * reach real allocations, permissions and channels), recvmmsg on, and peers limited to loopback:
 * `--allowed-peer-ip` is checked before `--denied-peer-ip`, so nothing outside 127/8 and ::1 is ever
 * sent to, whatever address a mutation produces.
 */
export const FUZZ_SERVER_ARGS = [
  "--relay-threads", "2", "--udp-recvmmsg",
  "--allowed-peer-ip", "127.0.0.0/8", "--allowed-peer-ip", "::1",
  "--denied-peer-ip", "0.0.0.0/0", "--denied-peer-ip", "::/0",
];

export async function runFuzz(o: FuzzOptions): Promise<FuzzResult> {
  const log = o.log ?? (() => {});
  const ownServer = o.server === undefined;
  const server = o.server ?? (await startFixture(FUZZ_SERVER_ARGS, "none", false));
  const rng = new Rng(o.seed ?? 1);
  const sockets: number[] = [];
  const probes: TurnClient[] = [];
  let peer: EchoPeer | undefined;
  let good: TurnClient | undefined;
  try {
    const target = { host: "127.0.0.1", port: server.port };
    peer = await EchoPeer.open("127.0.0.1");
    good = await TurnClient.open({ server: target, bindHost: "127.0.0.2" });
    const echo = await relayedEcho(good, peer.endpoint);
    for (let i = 0; i < 16; i++) probes.push(await TurnClient.open({ server: target, bindHost: "127.0.0.3", attempts: 10, rtoMs: 200 }));

    const addresses = o.addresses ?? 16;
    const perAddress = o.socketsPerAddress ?? 16;
    for (let a = 0; a < addresses; a++) {
      for (let s = 0; s < perAddress; s++) {
        sockets.push(openUdpSocket({ family: 4, address: new Uint8Array([127, 0, 0, 10 + a]), port: 0 }));
      }
    }
    log(`fuzz: ${sockets.length} source sockets on 127.0.0.10-${9 + addresses}, first port ${boundPort(sockets[0]!)}`);
    const corpus = buildCorpus(rng, { peers: [peer.endpoint, parseEndpoint("::1", peer.port), parseEndpoint("::ffff:127.0.0.1", peer.port)] });
    const counts = emptyCounts();
    const batch = new SendBatch(64, 2048);
    const caps = new UdpCapabilities({ recvmmsg: false, sendmmsg: true });
    const stats = new Float64Array(STAT_COUNT);
    const serverAddress = new Uint8Array([127, 0, 0, 1]);

    const before = await serverStats(server);
    const rssBeforeKiB = rssKiB(server.proc.pid);
    const window = o.window ?? 1024;
    const started = performance.now();
    let sent = 0;
    let echoTried = 0;
    let echoAnswered = 0;
    let probesAnswered = 0;
    let windows = 0;
    while (sent < o.count) {
      const end = Math.min(o.count, sent + window);
      while (sent < end) {
        // A run of up to 8 datagrams from one source socket: sendmmsg batches, many 5-tuples overall.
        const fd = sockets[rng.below(sockets.length)]!;
        const run = Math.min(end - sent, 1 + rng.below(8));
        for (let k = 0; k < run; k++) {
          batch.push(fd, serverAddress, server.port, mutate(rng, corpus, counts));
          if (batch.full) flushSendBatch(batch, caps, stats, libc);
        }
        sent += run;
      }
      flushSendBatch(batch, caps, stats, libc);
      const answers = await Promise.all(probes.map((p) => p.request(StunMethod.Binding).then((r) => r.ok, () => false)));
      probesAnswered += answers.filter(Boolean).length;
      if (++windows % 50 === 0) {
        echoTried++;
        if ((await echo(1, 1000)) === 1) echoAnswered++;
        log(`fuzz: ${sent} sent, ${echoAnswered}/${echoTried} relayed round trips answered`);
      }
    }
    const elapsedMs = performance.now() - started;
    const echoAfterAnswered = await echo(20);
    const after = await serverStats(server);
    const output = server.output();
    return {
      sent,
      sendErrors: stats[STAT.sendErrors]!,
      sources: sockets.length,
      elapsedMs,
      serverReceived: after.packets - before.packets,
      echoDuring: [echoAnswered, echoTried],
      echoAfter: [echoAfterAnswered, 20],
      probesAnswered,
      mutations: counts,
      before,
      after,
      rssBeforeKiB,
      rssAfterKiB: rssKiB(server.proc.pid),
      handlerFailedLines: output.split("\n").filter((l) => l.includes("handler failed")).length,
      serverOutput: output,
    };
  } finally {
    for (const fd of sockets) closeSocket(fd);
    for (const p of probes) p.close();
    good?.close();
    peer?.close();
    if (ownServer) await server.stop();
  }
}
