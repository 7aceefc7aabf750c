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
  RecvBatch, SendBatch, STAT, STAT_COUNT, UdpCapabilities, UdpSocketState, boundPort, flushSendBatch, libc,
  receiveBatch,
} from "../../ffi/index.ts";
import { StunMethod } from "../../src/stun/index.ts";
import { parseEndpoint } from "../../src/net/endpoint.ts";
import { PASSWORD, REALM, USER, startBunturn, type Running } from "../e2e/harness.ts";
import { Rng, buildCorpus, emptyCounts, mutate, type Mutation } from "./mutate.ts";
import { EchoPeer, TurnClient, relayedEcho } from "./turn-client.ts";
import type { ServerStats } from "./server-fixture.ts";
import type { HeapCensus } from "../../src/engine/heap-census.ts";
import { SignedMutator, nonceFrom, type SignedMutation, type SourceNonce } from "./signed.ts";

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

/** Each engine's heap census (RelayServer.heapCensus), asked of the fixture with SIGUSR1. */
export async function serverHeap(server: Running, timeoutMs = 5000): Promise<HeapCensus[]> {
  const before = server.output().split("HEAP ").length;
  server.proc.kill("SIGUSR1");
  const deadline = Date.now() + timeoutMs;
  while (server.output().split("HEAP ").length === before) {
    if (Date.now() > deadline) throw new Error(`no HEAP line from the server:\n${server.output().slice(-2000)}`);
    await Bun.sleep(5);
  }
  const parts = server.output().split("HEAP ");
  const line = parts[parts.length - 1]!.split("\n")[0]!;
  if (line.startsWith("failed")) throw new Error(`heap census: ${line}`);
  return JSON.parse(line) as HeapCensus[];
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
  /**
   * Run against `--lt-cred-mech --user alice:...`: every source first gets a nonce (401 round), then
   * most datagrams are validly signed mutated requests (test/fuzz/signed.ts), the rest the unsigned
   * mutations above (ChannelData on the channels the signed ChannelBinds made, among them).
   */
  auth?: boolean;
  /** Auth mode, at the end: how long to wait for reserved relay ports (RFC 8656 §7.2, 30 s) to return. */
  releaseWaitMs?: number;
}

export interface AuthFuzzResult {
  signed: number;
  signedMutations: Record<SignedMutation, number>;
  /** Requests corrupted after signing, the answers seen to them, and how many of those were not 401. */
  afterSigning: number;
  afterSigningAnswered: number;
  afterSigningWrong: number;
  /** Largest allocation count seen at the probes (the well-behaved client's included). */
  maxAllocations: number;
  /** After Refresh(0) from every source and the client: allocations, relay sockets, ports, fds. */
  released: { allocations: number; relaySockets: number; relayPorts: number; fdsBefore: number; fdsAfter: number; waitedMs: number };
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
  auth?: AuthFuzzResult;
}

/**
 * The server flags the fuzzer wants: no credentials (so mutated Allocates succeed and later datagrams
 * reach real allocations, permissions and channels), recvmmsg on, and peers limited to loopback:
 * `--allowed-peer-ip` is checked before `--denied-peer-ip`, so nothing outside 127/8 and ::1 is ever
 * sent to, whatever address a mutation produces.
 */
export const FUZZ_SERVER_ARGS = [
  // The fuzzers count every answer; the per-source limit on unauthenticated errors would withhold some.
  "--relay-threads", "2", "--udp-recvmmsg", "--no-unauthorized-ratelimit",
  "--allowed-peer-ip", "127.0.0.0/8", "--allowed-peer-ip", "::1",
  "--denied-peer-ip", "0.0.0.0/0", "--denied-peer-ip", "::/0",
];

/** Reads every datagram waiting on the source sockets (non-blocking) and hands each to `seen`. */
function drain(sockets: readonly UdpSocketState[], batch: RecvBatch, stats: Float64Array, seen: (fd: number, d: Uint8Array) => void): number {
  let n = 0;
  for (const socket of sockets) {
    const fd = socket.fd;
    for (let rounds = 0; rounds < 64; rounds++) {
      const got = receiveBatch(socket, batch, stats);
      if (got <= 0) break;
      for (let i = 0; i < got; i++) seen(fd, batch.datagram(i));
      n += got;
    }
  }
  return n;
}

function tidKey(m: Uint8Array): string {
  return Buffer.from(m.subarray(8, 20)).toString("hex");
}

/** ERROR-CODE of an error response (class 11), or 0. */
function errorCodeOf(m: Uint8Array): number {
  if (m.length < 20 || (m[0]! & 0x01) === 0 || (m[1]! & 0x10) === 0) return 0;
  let at = 20;
  while (at + 8 <= m.length) {
    const type = (m[at]! << 8) | m[at + 1]!;
    const len = (m[at + 2]! << 8) | m[at + 3]!;
    if (type === 0x0009) return (m[at + 6]! & 7) * 100 + m[at + 7]!;
    at += 4 + ((len + 3) & ~3);
  }
  return 0;
}

export async function runFuzz(o: FuzzOptions): Promise<FuzzResult> {
  const log = o.log ?? (() => {});
  const ownServer = o.server === undefined;
  const auth = o.auth === true;
  const server = o.server ?? (await startFixture(FUZZ_SERVER_ARGS, auth ? "users" : "none", false));
  const rng = new Rng(o.seed ?? 1);
  /** Source sockets, by fd (nonces are kept by fd) and in order. */
  const sockets: number[] = [];
  const states: UdpSocketState[] = [];
  const stateOf = new Map<number, UdpSocketState>();
  const caps = new UdpCapabilities({ recvmmsg: false, sendmmsg: true });
  const probes: TurnClient[] = [];
  let peer: EchoPeer | undefined;
  let good: TurnClient | undefined;
  try {
    const target = { host: "127.0.0.1", port: server.port };
    const fdsBefore = fdCount(server.proc.pid);
    peer = await EchoPeer.open("127.0.0.1");
    good = await TurnClient.open({ server: target, bindHost: "127.0.0.2", ...(auth ? { username: USER, password: PASSWORD } : {}) });
    const echo = await relayedEcho(good, peer.endpoint);
    for (let i = 0; i < 16; i++) probes.push(await TurnClient.open({ server: target, bindHost: "127.0.0.3", attempts: 10, rtoMs: 200 }));

    // Auth mode: fewer sources, so the allocations they can make (one per 5-tuple) stay well inside the
    // relay port range and the good client always gets its own.
    const addresses = o.addresses ?? (auth ? 8 : 16);
    const perAddress = o.socketsPerAddress ?? (auth ? 8 : 16);
    for (let a = 0; a < addresses; a++) {
      for (let s = 0; s < perAddress; s++) {
        const socket = UdpSocketState.open({ family: 4, address: new Uint8Array([127, 0, 0, 10 + a]), port: 0 }, caps);
        states.push(socket);
        stateOf.set(socket.fd, socket);
        sockets.push(socket.fd);
      }
    }
    log(`fuzz: ${sockets.length} source sockets on 127.0.0.10-${9 + addresses}, first port ${boundPort(sockets[0]!)}`);
    const peers = [peer.endpoint, parseEndpoint("::1", peer.port), parseEndpoint("::ffff:127.0.0.1", peer.port)];
    const corpus = buildCorpus(rng, { peers });
    const counts = emptyCounts();
    const batch = new SendBatch(64, 2048);
    const recv = new RecvBatch(64, 2048);
    const stats = new Float64Array(STAT_COUNT);
    const serverAddress = new Uint8Array([127, 0, 0, 1]);

    // RFC 8489 §9.2.3: every source learns its own nonce (they are bound to the 5-tuple) from a 401.
    const nonces = new Map<number, SourceNonce>();
    const signer = auth ? new SignedMutator(rng, { username: USER, password: PASSWORD, realm: REALM }, peers) : undefined;
    const afterSigningTids = new Set<string>();
    let afterSigningAnswered = 0;
    let afterSigningWrong = 0;
    const seen = (fd: number, d: Uint8Array) => {
      const code = errorCodeOf(d);
      if (afterSigningTids.delete(tidKey(d))) {
        afterSigningAnswered++;
        if (code !== 401) afterSigningWrong++;
      }
      if (code === 401 && !nonces.has(fd) || code === 438) {
        const n = nonceFrom(d);
        if (n) nonces.set(fd, n);
      }
    };
    if (auth) {
      for (let round = 0; round < 20 && nonces.size < sockets.length; round++) {
        for (const fd of sockets) if (!nonces.has(fd)) batch.push(stateOf.get(fd)!, serverAddress, server.port, SignedMutator.challenge(rng));
        flushSendBatch(batch, stats, libc);
        await Bun.sleep(50);
        drain(states, recv, stats, seen);
      }
      if (nonces.size < sockets.length) throw new Error(`only ${nonces.size}/${sockets.length} sources got a nonce`);
      log(`fuzz: ${nonces.size} nonces, SHA-256 ${nonces.get(sockets[0]!)!.algorithms ? "offered" : "not offered"}`);
    }

    const before = await serverStats(server);
    const rssBeforeKiB = rssKiB(server.proc.pid);
    const window = o.window ?? 1024;
    const started = performance.now();
    let sent = 0;
    let signed = 0;
    let echoTried = 0;
    let echoAnswered = 0;
    let probesAnswered = 0;
    let windows = 0;
    let maxAllocations = 0;
    while (sent < o.count) {
      const end = Math.min(o.count, sent + window);
      while (sent < end) {
        // A run of up to 8 datagrams from one source socket: sendmmsg batches, many 5-tuples overall.
        const fd = sockets[rng.below(sockets.length)]!;
        const run = Math.min(end - sent, 1 + rng.below(8));
        for (let k = 0; k < run; k++) {
          if (signer && rng.below(5) !== 0) {
            const m = signer.next(nonces.get(fd)!);
            if (m.kind === "after-signing") afterSigningTids.add(tidKey(m.bytes));
            batch.push(stateOf.get(fd)!, serverAddress, server.port, m.bytes);
            signed++;
          } else {
            batch.push(stateOf.get(fd)!, serverAddress, server.port, mutate(rng, corpus, counts));
          }
          if (batch.full) flushSendBatch(batch, stats, libc);
        }
        sent += run;
      }
      flushSendBatch(batch, stats, libc);
      const answers = await Promise.all(probes.map((p) => p.request(StunMethod.Binding).then((r) => r.ok, () => false)));
      probesAnswered += answers.filter(Boolean).length;
      if (auth) drain(states, recv, stats, seen);
      if (++windows % 50 === 0) {
        echoTried++;
        if ((await echo(1, 1000)) === 1) echoAnswered++;
        if (auth) maxAllocations = Math.max(maxAllocations, (await serverStats(server)).allocations);
        log(`fuzz: ${sent} sent, ${echoAnswered}/${echoTried} relayed round trips answered, server RSS ${rssKiB(server.proc.pid)} KiB`);
      }
    }
    const elapsedMs = performance.now() - started;
    const echoAfterAnswered = await echo(20);
    const after = await serverStats(server);
    maxAllocations = Math.max(maxAllocations, after.allocations);

    let authResult: AuthFuzzResult | undefined;
    if (auth) {
      await Bun.sleep(50);
      drain(states, recv, stats, seen);
      // Release: a valid Refresh(0) (RFC 8656 §7.3) from every source until only the client's is left,
      // then the client's own; reserved ports (EVEN-PORT R) come back when their 30 s run out.
      let stats2 = after;
      for (let round = 0; round < 10 && stats2.allocations > 1; round++) {
        for (const fd of sockets) batch.push(stateOf.get(fd)!, serverAddress, server.port, signer!.refreshZero(nonces.get(fd)!));
        flushSendBatch(batch, stats, libc);
        await Bun.sleep(100);
        drain(states, recv, stats, seen);
        stats2 = await serverStats(server);
      }
      const r0 = await good.refresh(0);
      if (!r0.ok) throw new Error(`the client's Refresh(0) failed: ${r0.errorCode}`);
      const releaseStarted = Date.now();
      stats2 = await waitFor(() => serverStats(server), (v) => v.allocations === 0 && v.relaySockets === 0 && v.relayPortsInUse === 0, o.releaseWaitMs ?? 2000, 200);
      const waitedMs = Date.now() - releaseStarted;
      authResult = {
        signed,
        signedMutations: signer!.counts,
        afterSigning: signer!.afterSigning,
        afterSigningAnswered,
        afterSigningWrong,
        maxAllocations,
        released: {
          allocations: stats2.allocations, relaySockets: stats2.relaySockets, relayPorts: stats2.relayPortsInUse,
          fdsBefore, fdsAfter: fdCount(server.proc.pid), waitedMs,
        },
      };
    }
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
      auth: authResult,
    };
  } finally {
    for (const socket of states) socket.close();
    for (const p of probes) p.close();
    good?.close();
    peer?.close();
    if (ownServer) await server.stop();
  }
}
