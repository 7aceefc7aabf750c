/**
 * One measured run of turnutils_uclient load through a server: a fresh echo peer, `procs` uclient
 * processes in parallel (`clients` split between them), and the CPU of everyone involved, so the record
 * says who the bottleneck was. uclient exits 0 even on failure: its summary is parsed, and a run cut by a
 * signal (no summary) is reported with ok=false.
 */
import type { ArgSpec, Args } from "./args.ts";
import { MACHINE_CORES, cpuSeconds, spawn, threadCpu, threadCpuDelta, watchThreadCpu, type Spawned } from "./proc.ts";
import { startEchoPeer, type EchoPeer } from "./echo-peer-process.ts";
import { PASSWORD, USER, type Server } from "./servers.ts";
import { round } from "./stats.ts";

/** The load options every uclient bench takes (ab, vs-coturn, builds). */
export const UCLIENT_LOAD_SPEC = {
  procs: { default: 8, help: "uclient processes in parallel when clients > 1" },
  messages: { default: 0, help: "messages per client (0: 200000 for 1 client, 400000/clients otherwise)" },
  interval: { default: 0, help: "uclient -z, ms" },
  "warmup-s": { default: 15, help: "seconds of the same load first, thrown away, so JIT tiering is over (0: the server is measured cold)" },
  timeout: { default: 60, help: "seconds before a run is cut" },
  transport: { default: "udp", help: "client transport: udp, tcp (uclient -t) or tls (-t -S, to the servers' TLS port)" },
} satisfies ArgSpec;

/** Long enough that /proc's 10 ms ticks are noise at 1 client (~8 s at uclient's pace) and at 100. */
export function messagesFor(clients: number, given: number): number {
  return given > 0 ? given : clients === 1 ? 200000 : Math.max(100, Math.round(400000 / clients));
}

/** The LoadOptions of one (clients, size) configuration from a bench's parsed UCLIENT_LOAD_SPEC options. */
export function loadOptionsFor(a: Args<typeof UCLIENT_LOAD_SPEC>, clients: number, size: number): LoadOptions {
  return {
    clients, procs: clients === 1 ? 1 : Math.min(a.procs, clients), messages: messagesFor(clients, a.messages), size,
    intervalMs: a.interval, timeoutMs: a.timeout * 1000, warmupSeconds: a["warmup-s"], transport: transportOf(a.transport),
  };
}

export type Transport = "udp" | "tcp" | "tls";

function transportOf(name: string): Transport {
  if (name === "udp" || name === "tcp" || name === "tls") return name;
  throw new Error(`--transport: udp, tcp or tls, not ${name}`);
}

export interface LoadOptions {
  clients: number;
  /** uclient processes in parallel (clients are split between them). */
  procs: number;
  /** -n: messages per client. */
  messages: number;
  /** -l: message length. */
  size: number;
  /** -z: per-session interval, ms. */
  intervalMs: number;
  timeoutMs: number;
  /**
   * Seconds of the same load (same clients, its own peer), stopped and thrown away before the measured
   * run, so that the measurement sees a server in the state it spends its life in, not its first
   * seconds (for bunturn: JIT tiering; for both: first allocations, page faults). 0: measured cold.
   */
  warmupSeconds?: number;
  /** How uclient reaches the server: UDP (default), TCP (-t) or TLS (-t -S, the server's tlsPort). */
  transport?: Transport;
  /** uclient -S: TLS/DTLS to the server (DTLS over UDP). */
  secure?: boolean;
  /** uclient -s: Send and Data indications instead of channels. */
  indications?: boolean;
}


export interface UclientSummary {
  sent: number;
  received: number;
  lost: number;
  rttMs: number;
  errors: number;
  complete: boolean;
  cpu: number;
}

export function parseUclient(output: string): Omit<UclientSummary, "cpu"> {
  const last = (re: RegExp): number => {
    const all = [...output.matchAll(new RegExp(re.source, "g"))];
    return all.length ? Number(all[all.length - 1]![1]) : NaN;
  };
  // The final summary is "start_mclient: tot_send_msgs=N, tot_recv_msgs=M" (without msz=).
  const final = /start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)/.exec(output);
  return {
    sent: final ? Number(final[1]) : last(/tot_send_msgs=(\d+)/),
    received: final ? Number(final[2]) : last(/tot_recv_msgs=(\d+)/),
    lost: last(/Total lost packets (\d+)/),
    rttMs: last(/Average round trip delay ([\d.]+) ms/),
    errors: output.split("\n").filter((l) => /ERROR/i.test(l)).length,
    complete: final !== null && /Total lost packets/.test(output),
  };
}

export interface LoadResult {
  ok: boolean;
  sent: number;
  roundTrips: number;
  lost: number;
  lossPct: number;
  rttMs: number;
  /** Datagrams the server relayed: client->peer (counted at the peer) + peer->client (counted by uclient). */
  relayed: number;
  windowS: number;
  /** The window: the echo peer's first and last datagram, epoch ms (side-by-side runs check they overlap). */
  windowFromMs: number;
  windowToMs: number;
  relayedPps: number;
  serverCpuS: number;
  /** Server CPU seconds per million relayed datagrams (= CPU microseconds per datagram), /proc ticks. */
  serverCpuSPerMpkt: number;
  /** The same from the threads' nanosecond counters (threads alive at the end of the run). */
  serverCpuUsPerPktFine: number;
  /** CPU µs per relayed datagram by thread name (bunturn: "Worker" = engines, "bun" = main thread, JSC's helpers). */
  serverCpuUsPerPktByThread: Record<string, number>;
  /** bunturn: each engine thread ("Worker") on its own, CPU µs per relayed datagram (of all the server relayed), by thread id. */
  serverCpuUsPerPktByEngine: number[];
  serverCpuPct: number;
  uclientCpuS: number;
  uclientCpuPctMax: number;
  peerCpuS: number;
  peerCpuPct: number;
  bottleneck: string;
  note?: string;
}

export { startEchoPeer, type PeerStats } from "./echo-peer-process.ts";

export async function runUclientLoad(server: Server, o: LoadOptions): Promise<LoadResult> {
  if (o.warmupSeconds) await warmUp(server, o, o.warmupSeconds);
  return measureLoad(server, o, await startMeasurePeer(o));
}

/** The echo peer of one measured run: alive until the run's timeout and a margin. */
export function startMeasurePeer(o: LoadOptions): Promise<EchoPeer> {
  return startEchoPeer(Math.ceil(o.timeoutMs / 1000) + 30);
}

/**
 * The measured run on a started peer. Nothing is awaited before the uclients are spawned, so several
 * of these started in one turn of the event loop (bench/lib/side-by-side.ts) start their loads together.
 */
export async function measureLoad(server: Server, o: LoadOptions, peer: EchoPeer): Promise<LoadResult> {
  let uclients: Spawned[] = [];
  const threads0 = threadCpu(server.pid);
  // Every thread of the window, those that exited in it included (their last reading).
  const watching = watchThreadCpu(server.pid);
  let threads1 = threads0;
  const cpu0 = cpuSeconds(server.pid);
  const started = Date.now();
  try {
    uclients = spawnUclients(server, peer.port, o, o.clients, o.procs);
    const timer = setTimeout(() => {
      for (const u of uclients) u.proc.kill("SIGKILL");
    }, o.timeoutMs);
    await Promise.all(uclients.map((u) => u.proc.exited));
    clearTimeout(timer);
  } finally {
    for (const u of uclients) await u.stop(1000);
    threads1 = watching.stop();
  }
  const cpu1 = cpuSeconds(server.pid);
  const byThread = threadCpuDelta(threads0, threads1);
  const p = await peer.finish();
  const wall = (Date.now() - started) / 1000;
  const sums = uclients.map((u) => ({ ...parseUclient(u.output()), cpu: cpuOf(u) }));
  const sent = sums.reduce((a, s) => a + s.sent, 0);
  const roundTrips = sums.reduce((a, s) => a + s.received, 0);
  const lost = sums.reduce((a, s) => a + (Number.isFinite(s.lost) ? s.lost : 0), 0);
  const rtts = sums.map((s) => s.rttMs).filter(Number.isFinite);
  const windowS = p.last > p.first ? (p.last - p.first) / 1000 : NaN;
  const relayed = p.rx + roundTrips;
  const serverCpuS = cpu1 - cpu0;
  const threadsCpuS = [...byThread.values()].reduce((x, y) => x + y, 0);
  const serverCpuUsPerPktByThread: Record<string, number> = {};
  for (const [name, cpu] of byThread) if (cpu > 0) serverCpuUsPerPktByThread[name] = round((cpu / relayed) * 1e6, 3);
  const serverCpuUsPerPktByEngine = [...threads1].filter(([, t]) => t.name === "Worker").sort(([a], [b]) => a - b)
    .map(([tid, t]) => round(((t.seconds - (threads0.get(tid)?.seconds ?? 0)) / relayed) * 1e6, 3));
  const uclientCpuS = sums.reduce((a, s) => a + s.cpu, 0);
  const uclientCpuPctMax = Math.max(...sums.map((s) => (100 * s.cpu) / wall));
  const serverCpuPct = (100 * serverCpuS) / windowS;
  const peerCpuPct = (100 * p.cpu) / windowS;
  const ok = sums.every((s) => s.complete) && sent > 0;
  if (!ok) {
    for (const u of uclients) if (!parseUclient(u.output()).complete) console.error(`uclient without a summary:\n${u.output().slice(-1500)}`);
  }
  // Which side ran out first: a single-threaded process near 100 % of a core, or the server near its
  // thread count x 100 %; otherwise the load was paced (uclient's own timer), not CPU-bound.
  const threadsPct = 100 * serverThreadsOf(server);
  let bottleneck = "paced (nobody near a full core)";
  if (serverCpuPct > 0.85 * threadsPct || serverCpuPct + (100 * uclientCpuS) / windowS + peerCpuPct > 85 * MACHINE_CORES) bottleneck = serverCpuPct > 0.85 * threadsPct ? "server" : `machine (${MACHINE_CORES} cores shared by all)`;
  else if (uclientCpuPctMax > 85) bottleneck = "uclient";
  else if (peerCpuPct > 85) bottleneck = "peer";
  return {
    ok,
    sent,
    roundTrips,
    lost,
    lossPct: sent > 0 ? round((100 * lost) / sent, 3) : NaN,
    rttMs: rtts.length ? round(rtts.reduce((a, b) => a + b, 0) / rtts.length, 4) : NaN,
    relayed,
    windowS: round(windowS, 3),
    windowFromMs: p.first,
    windowToMs: p.last,
    relayedPps: Math.round(relayed / windowS),
    serverCpuS: round(serverCpuS, 2),
    serverCpuSPerMpkt: round((serverCpuS / relayed) * 1e6, 2),
    serverCpuUsPerPktFine: round((threadsCpuS / relayed) * 1e6, 3),
    serverCpuUsPerPktByThread,
    serverCpuUsPerPktByEngine,
    serverCpuPct: round(serverCpuPct, 1),
    uclientCpuS: round(uclientCpuS, 2),
    uclientCpuPctMax: round(uclientCpuPctMax, 1),
    peerCpuS: round(p.cpu, 2),
    peerCpuPct: round(peerCpuPct, 1),
    bottleneck,
    ...(ok ? {} : { note: "a uclient printed no summary (timed out or failed)" }),
  };
}

/**
 * Warm-up: the load for `seconds`, then stopped; its allocations are left to expire, as a killed client's
 * would. At least WARMUP_CLIENTS clients: the kernel hashes each 5-tuple to one engine (SO_REUSEPORT), each
 * engine is a Worker with its own JIT, and one warm-up client would leave the other engines cold for a
 * measured client that lands on them (seen: 0.3 µs/pkt of JIT compilation in half the 1-client runs).
 */
const WARMUP_CLIENTS = 16;
export async function warmUp(server: Server, o: LoadOptions, seconds: number): Promise<void> {
  const peer = await startEchoPeer(seconds + 30);
  const clients = Math.max(o.clients, WARMUP_CLIENTS);
  const us = spawnUclients(server, peer.port, { ...o, messages: 10_000_000 }, clients, Math.min(Math.max(o.procs, 2), clients));
  await Bun.sleep(seconds * 1000);
  for (const u of us) u.proc.kill("SIGKILL");
  await Promise.all(us.map((u) => u.proc.exited));
  await peer.finish();
  await Bun.sleep(200); // datagrams still in flight reach the dead clients' ports (ICMP), not the measurement
}

/** `clients` split over `procs` uclient processes. */
export function spawnUclients(server: Server, peerPort: number, o: LoadOptions, clients: number, procs: number): Spawned[] {
  const per = Math.ceil(clients / procs);
  const out: Spawned[] = [];
  for (let left = clients; left > 0; left -= per) out.push(spawn(uclientCommand(server, peerPort, o, Math.min(per, left))));
  return out;
}

function uclientCommand(server: Server, peerPort: number, o: LoadOptions, clients: number): string[] {
  const tls = o.transport === "tls";
  if (tls && server.tlsPort === undefined) throw new Error("--transport tls: this bench starts its servers without TLS (vs-coturn has it)");
  return [
    "turnutils_uclient", "-c", ...(o.secure || tls ? ["-S"] : []), ...(o.transport === "tcp" || tls ? ["-t"] : []), ...(o.indications ? ["-s"] : []),
    "-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(peerPort),
    "-p", String(tls ? server.tlsPort! : server.port), "-n", String(o.messages), "-l", String(o.size), "-m", String(clients),
    "-z", String(o.intervalMs), "127.0.0.1",
  ];
}

function cpuOf(s: Spawned): number {
  const u = s.proc.resourceUsage();
  if (!u) return NaN;
  return (Number(u.cpuTime.user) + Number(u.cpuTime.system)) / 1e6;
}

function serverThreadsOf(server: Server): number {
  return Math.min(MACHINE_CORES, server.threads);
}
