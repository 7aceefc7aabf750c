/**
 * How close the relay is to what the kernel allows, and how it does when saturated next to coturn: the
 * same closed-loop ChannelData load (bench/lib/loadgen.ts: N client sockets, each keeping --window
 * datagrams in flight, through the FFI layer; as fast as the server answers, unlike uclient) against
 *   forwarder: bench/lib/forwarder.ts, a minimal UDP relay through the same ffi/ (RecvBatch/SendBatch,
 *              receiveBatch/flushSendBatch, epoll): one relay socket per client, no protocol work;
 *   bunturn:   the real relay (allocation + ChannelBind first, then ChannelData);
 *   coturn:    coturn's turnserver (Debian's, or --coturn-bin PATH, e.g. 4.17.1 built from source),
 *              started by hand, the same allocation + ChannelBind and load;
 *   coturn-mp: the same turnserver with --multiplex-peer --udp-gso (coturn 4.17.1: one relay socket per
 *              thread, sendmmsg with UDP_SEGMENT; it tells sessions apart by peer, so --peers 0);
 *   base:      bunturn from another checkout (--base DIR).
 * The load (--load, bench/lib/load-shapes.ts): `window` (datagrams in flight, the default), `burst`
 * (bursts of --burst equal datagrams) or `call` (30 video frames a second cut into RTP-sized datagrams
 * plus 50 audio datagrams a second, per client, echoed back); --gso sends each burst or frame as one
 * UDP_SEGMENT message from the load generator and the echo peer: on loopback that models a NIC's GRO.
 * With --gro their own sockets receive with UDP_GRO too: on loopback a sender's system call pays the
 * delivery to the receiver (the cut, the queue, the wake-up), so a GSO message then costs its sender one
 * delivery instead of one per datagram, as on a network, where that work is the far host's.
 * Both relays with --relay-threads --threads and relay ranges outside the ephemeral ports the load
 * generator's sockets get. By default every run starts all variants and the load takes turns between
 * them in --slice-ms slices (on this noisy 2-core machine, separate runs moved ±15 % from one to the
 * next); --slice-ms 0 runs one variant at a time, alternated. CPU microseconds per relayed datagram of
 * the server process (all threads, /proc/PID/task/*\/schedstat) over the data phase, and relayed datagrams per second while it was loaded.
 */
import { join } from "node:path";
import { UsageError, describeArgs, numberList, parseArgs, wordList, type ArgSpec, type Args } from "./lib/args.ts";
import { ROOT, cpuSeconds, freePort, relayRange, spawn, waitFor } from "./lib/proc.ts";
import { coturnVersion, startServer } from "./lib/servers.ts";
import { emit, median, pairedRatio, ratio, round } from "./lib/stats.ts";
import { GSO_MAX_BYTES, GSO_MAX_SEGMENTS } from "./lib/gso.ts";
import type { LoadgenConfig } from "./lib/loadgen.ts";
import type { ShapeName } from "./lib/load-shapes.ts";
import { startEchoPeer } from "./lib/uclient-load.ts";

export const spec = {
  runs: { default: 3, help: "runs per variant (alternated)" },
  seconds: { default: 3, help: "seconds each variant is loaded per run" },
  clients: { default: "1,100", help: "comma-separated client counts" },
  size: { default: 100, help: "payload bytes (window and burst loads)" },
  window: { default: 8, help: "datagrams (burst load: bursts) in flight per client (total capped at 512 datagrams)" },
  load: { default: "window", help: "window | burst | call (bench/lib/load-shapes.ts)" },
  burst: { default: 16, help: "burst load: equal datagrams per burst" },
  gso: { default: false, help: "load generator and echo peer send bursts/frames with UDP_SEGMENT (on loopback: a NIC's GRO)" },
  gro: { default: false, help: "with --gso: the load generator's and echo peer's sockets receive with UDP_GRO (on loopback a sender pays the receiver's delivery: a GSO message then costs one, as on a network)" },
  peers: { default: 1, help: "echo peer ports, client k on port k mod peers (0: one per client)" },
  fps: { default: 30, help: "call load: video frames per second per client" },
  "frame-bytes": { default: 6250, help: "call load: bytes per video frame (6250 = 1.5 Mbit/s at 30 fps)" },
  "rtp-size": { default: 1200, help: "call load: video datagram payload bytes (the frame's last is shorter)" },
  "audio-size": { default: 160, help: "call load: audio datagram payload bytes" },
  "audio-pps": { default: 50, help: "call load: audio datagrams per second per client" },
  recvmmsg: { default: true, help: "recvmmsg in both the forwarder and bunturn (--udp-recvmmsg)" },
  variants: { default: "forwarder,bunturn,coturn", help: "comma-separated: forwarder, bunturn, coturn, coturn-mp, base (bunturn from --base)" },
  "coturn-bin": { default: "turnserver", help: "the coturn turnserver to run (e.g. one built from source)" },
  "bunturn-args": { default: "", help: "extra options of the bunturn variant, space-separated" },
  "base-args": { default: "", help: "extra options of the base variant, space-separated" },
  base: { default: "", help: "another checkout of bunturn (e.g. a git worktree of an earlier commit), variant 'base'" },
  threads: { default: 1, help: "--relay-threads of bunturn and coturn" },
  "warmup-s": { default: 5, help: "seconds of the same load first, not measured, taken in turns like the data phase (JIT tiering; 0: cold)" },
  "slice-ms": { default: 500, help: "the variants take turns within each run, this long each (0: one variant per run, runs alternated)" },
} satisfies ArgSpec;

const VARIANTS = ["forwarder", "bunturn", "coturn", "coturn-mp", "base"] as const;
type Variant = (typeof VARIANTS)[number];

export const usage = `bun run bench ceiling [options]\n${describeArgs(spec)}`;

interface GenResult {
  received: number;
  sent: number;
  seconds: number;
  serverCpuS: number;
  setupOk: number;
  sleeps: number;
  preemptions: number;
  threads: Record<string, { sleeps: number; preemptions: number; cpuS: number }>;
}

type RunOptions = Args<typeof spec>;

interface Started {
  variant: Variant;
  pid: number;
  port: number;
  stop(): Promise<number>;
}

/** Relay ranges out of the ephemeral range (no load generator socket holds a relay port), one per relay, taken once (a port slice each, test/ports.ts). */
const RELAY_RANGES = new Map<Exclude<Variant, "forwarder">, [number, number]>();
/** coturn-mp's per-thread relay sockets (--multiplex-peer-port: two ports per relay thread), taken once. */
let multiplexPeerPort = 0;


/** Each thread name's sleeps, preemptions and CPU ms per 1000 relayed datagrams; threads that did nothing are left out. */
function perThread(threads: GenResult["threads"], relayed: number): Record<string, { sleeps: number; preemptions: number; cpuMs: number }> {
  const out: Record<string, { sleeps: number; preemptions: number; cpuMs: number }> = {};
  for (const [name, t] of Object.entries(threads)) {
    if (t.sleeps === 0 && t.preemptions === 0 && t.cpuS === 0) continue;
    out[name] = { sleeps: round((1000 * t.sleeps) / relayed, 2), preemptions: round((1000 * t.preemptions) / relayed, 2), cpuMs: round((1e6 * t.cpuS) / relayed, 3) };
  }
  return out;
}

async function startVariant(variant: Variant, peerPort: number, lifetimeS: number, a: RunOptions): Promise<Started> {
  if (variant !== "forwarder") {
    if (!RELAY_RANGES.has(variant)) RELAY_RANGES.set(variant, relayRange(2000));
    const [minPort, maxPort] = RELAY_RANGES.get(variant)!;
    if (variant === "coturn-mp" && !multiplexPeerPort) multiplexPeerPort = relayRange(2 * a.threads)[0];
    const kind = variant.startsWith("coturn") ? "coturn" : "bunturn";
    const root = variant === "base" ? a.base : undefined;
    const extra = variant === "coturn-mp" ? ["--multiplex-peer", "--udp-gso", "--multiplex-peer-port", String(multiplexPeerPort)]
      : wordList(variant === "base" ? a["base-args"] : variant === "bunturn" ? a["bunturn-args"] : "");
    const server = await startServer({
      kind, threads: a.threads, recvmmsg: kind === "bunturn" && a.recvmmsg, minPort, maxPort, extra, coturnBin: a["coturn-bin"], ...(root ? { root } : {}),
    });
    return { variant, pid: server.pid, port: server.port, stop: () => server.stop() };
  }
  const port = freePort();
  const s = spawn(["bun", join(ROOT, "bench/lib/forwarder.ts"), String(port), String(peerPort), a.recvmmsg ? "1" : "0", String(lifetimeS)], { stdin: "pipe" });
  await waitFor(s, "forwarder", () => s.output().includes("ready"), 10000);
  return { variant, pid: s.pid, port, stop: async () => {
    (s.proc.stdin as import("bun").FileSink).end();
    return s.stop(3000);
  } };
}

/**
 * One run of the given variants under one load generator: a single variant is loaded alone; several
 * take turns in slices within the run (loadgen.ts), all on the same echo peer.
 */
async function runTogether(variants: Variant[], clients: number, a: RunOptions) {
  const wall = a.seconds * variants.length;
  // Helpers stop by themselves at the latest this long after their start, whatever happens here.
  const lifetimeS = wall + a["warmup-s"] + 60;
  // One peer per client: the warm-up's clients (whose allocations are left to expire) get peers of their
  // own, since coturn-mp refuses a peer endpoint another session holds.
  const phases = a["warmup-s"] > 0 ? 2 : 1;
  const sockets = a.peers > 0 ? a.peers : clients * phases;
  const peer = await startEchoPeer(lifetimeS, sockets, a.gso ? Math.max(a.size, a["rtp-size"], a["audio-size"]) : 0, a.gso && a.gro);
  const started: Started[] = [];
  try {
    for (const v of variants) started.push(await startVariant(v, peer.port, lifetimeS, a));
    const perUnit = a.load === "burst" ? a.burst : 1;
    const window = Math.max(1, Math.min(a.window, Math.floor(512 / clients / perUnit)));
    const generate = async (seconds: number, phase: number) => {
      const peerPorts = a.peers > 0 ? peer.ports : peer.ports.slice(phase * clients, (phase + 1) * clients);
      const config: LoadgenConfig = {
        clients, seconds, sliceMs: a["slice-ms"], peerPorts, gso: a.gso, gro: a.gso && a.gro, shape: a.load as ShapeName, size: a.size, window,
        burst: a.burst, fps: a.fps, frameBytes: a["frame-bytes"], rtpSize: a["rtp-size"], audioSize: a["audio-size"], audioPps: a["audio-pps"],
        targets: started.map((s) => ({ mode: s.variant === "forwarder" ? "raw" : "turn", port: s.port, pid: s.pid })),
      };
      const gen = spawn(["bun", join(ROOT, "bench/lib/loadgen.ts"), JSON.stringify(config)]);
      const timer = setTimeout(() => gen.proc.kill("SIGKILL"), (seconds + 60) * 1000);
      await gen.proc.exited;
      clearTimeout(timer);
      const line = gen.output().trim().split("\n").pop() ?? "";
      try {
        return (JSON.parse(line) as { targets: GenResult[]; genCpuS: number; gso: boolean });
      } catch {
        throw new Error(`loadgen failed:\n${gen.output().slice(-2000)}`);
      }
    };
    // Warm-up with allocations of its own, left to expire as a client that went away would leave them.
    if (a["warmup-s"] > 0) await generate(a["warmup-s"], 0);
    const peerCpu0 = cpuSeconds(peer.pid);
    const gen = await generate(wall, phases - 1);
    const peerCpuS = cpuSeconds(peer.pid) - peerCpu0;
    return gen.targets.map((g, k) => {
      // Each datagram back at the load generator was relayed twice (client->peer, peer->client); those
      // still in flight at the end of a slice (at most the window) are not counted, the same for every variant.
      const relayed = 2 * g.received;
      return {
        variant: variants[k]!, clients, load: a.load, window: a.load === "call" ? 0 : window, size: a.load === "call" ? `${a["frame-bytes"]}/${a["rtp-size"]}+${a["audio-size"]}` : a.size,
        gso: gen.gso, gro: a.gso && a.gro, recvmmsg: a.recvmmsg, setupOk: g.setupOk, lossPct: round(100 * (1 - g.received / g.sent), 2),
        relayed, seconds: round(g.seconds, 3), relayedPps: Math.round(relayed / g.seconds),
        serverCpuS: round(g.serverCpuS, 2), serverCpuUsPerPkt: round((g.serverCpuS / relayed) * 1e6, 3),
        serverCpuPct: round((100 * g.serverCpuS) / g.seconds, 1),
        // Per 1000 relayed datagrams: how often the server slept for want of work, and was preempted with work.
        sleepsPerKpkt: round((1000 * g.sleeps) / relayed, 2), preemptionsPerKpkt: round((1000 * g.preemptions) / relayed, 2),
        // Which threads sleep and wake, and what each costs, per 1000 relayed datagrams.
        threadsPerKpkt: perThread(g.threads, relayed),
        // Shared by the variants of an interleaved run: the whole data phase.
        loadgenCpuPct: round((100 * gen.genCpuS) / wall, 1), peerCpuPct: round((100 * peerCpuS) / wall, 1),
      };
    });
  } finally {
    for (const s of started) await s.stop();
    if (peer.proc.exitCode === null) await peer.finish();
  }
}

export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv, spec);
  const variants = a.variants.split(",").filter(Boolean) as Variant[];
  for (const v of variants) if (!VARIANTS.includes(v)) throw new UsageError(`unknown variant ${v}`);
  if (variants.includes("base") && !a.base) throw new UsageError("variant base needs --base DIR");
  if (!["window", "burst", "call"].includes(a.load)) throw new UsageError(`unknown load ${a.load}`);
  const frameSegments = Math.ceil(a["frame-bytes"] / a["rtp-size"]);
  if (a.gso && (a.load === "burst" ? a.burst > GSO_MAX_SEGMENTS || a.burst * (a.size + 4) > GSO_MAX_BYTES
    : a.load === "call" && (frameSegments > GSO_MAX_SEGMENTS || a["frame-bytes"] + 4 * frameSegments > GSO_MAX_BYTES || a["audio-size"] > a["rtp-size"]))) {
    throw new UsageError("--gso: a burst or frame must fit one UDP_SEGMENT message (64 segments, 65507 bytes; audio no larger than a video datagram)");
  }
  for (const clients of numberList(a.clients)) {
    const res: Record<string, Awaited<ReturnType<typeof runTogether>>> = {};
    for (const v of variants) res[v] = [];
    const groups = a["slice-ms"] > 0 ? [variants] : variants.map((v) => [v]);
    for (let run = 0; run < a.runs; run++) {
      for (const group of groups) {
        for (const r of await runTogether(group, clients, a)) {
          res[r.variant]!.push(r);
          emit({ bench: "ceiling", run, threads: a.threads, interleaved: group.length > 1, ...r });
        }
      }
    }
    if (variants.includes("coturn-mp") && a.peers > 0 && a.peers < clients) throw new UsageError("coturn-mp tells sessions apart by peer: --peers 0 (one per client)");
    const fields = ["serverCpuUsPerPkt", "relayedPps", "lossPct", "serverCpuPct", "sleepsPerKpkt", "preemptionsPerKpkt", "loadgenCpuPct", "peerCpuPct"] as const;
    const summary: Record<string, unknown> = {
      bench: "ceiling", summary: true, clients, load: a.load, gso: a.gso, gro: a.gso && a.gro, peers: a.peers, size: a.size, runs: a.runs,
      ...(variants.some((v) => v.startsWith("coturn")) ? { coturn: coturnVersion(a["coturn-bin"]) } : {}), threads: a.threads, recvmmsg: a.recvmmsg, sliceMs: a["slice-ms"] };
    for (const f of fields) {
      const medians: Record<string, number> = {};
      for (const v of variants) medians[v] = median(res[v]!.map((r) => r[f]));
      const out: Record<string, number | string> = { ...medians };
      if (f === "serverCpuUsPerPkt" || f === "relayedPps") {
        if (medians.bunturn !== undefined && medians.forwarder !== undefined) out["bunturn/forwarder"] = ratio(medians.bunturn, medians.forwarder);
        for (const other of ["coturn", "coturn-mp", "base"] as const) {
          if (medians.bunturn === undefined || medians[other] === undefined) continue;
          out[`bunturn/${other}`] = ratio(medians.bunturn, medians[other]);
          const paired = pairedRatio(res.bunturn!.map((r) => r[f]), res[other]!.map((r) => r[f]));
          out[`bunturn/${other} paired`] = paired.median;
          out[`bunturn below ${other} in pairs`] = `${paired.below}/${paired.pairs}`;
        }
      }
      summary[f] = out;
    }
    emit(summary);
  }
}

export { cpuSeconds };
