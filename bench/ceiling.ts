/**
 * How close the relay is to what the kernel allows, and how it does when saturated next to coturn: the
 * same closed-loop ChannelData load (bench/lib/loadgen.ts: N client sockets, each keeping --window
 * datagrams in flight, through the FFI layer; as fast as the server answers, unlike uclient) against
 *   forwarder: bench/lib/forwarder.ts, a minimal UDP relay through the same ffi/ (RecvBatch/SendBatch,
 *              receiveBatch/flushSendBatch, epoll): one relay socket per client, no protocol work;
 *   bunturn:   the real relay (allocation + ChannelBind first, then ChannelData);
 *   coturn:    Debian's turnserver, started by hand, the same allocation + ChannelBind and load.
 * Both relays with --relay-threads --threads and the same relay range (outside the ephemeral ports the
 * load generator's sockets get). Runs alternated; CPU microseconds per relayed datagram of the server
 * process over the data phase, and relayed datagrams per second.
 */
import { join } from "node:path";
import { UsageError, describeArgs, numberList, parseArgs, type ArgSpec } from "./lib/args.ts";
import { ROOT, cpuSeconds, freePort, spawn, waitFor } from "./lib/proc.ts";
import { startServer } from "./lib/servers.ts";
import { emit, median, ratio, round } from "./lib/stats.ts";
import { startEchoPeer } from "./lib/uclient-load.ts";

export const spec = {
  runs: { default: 3, help: "runs per variant (alternated)" },
  seconds: { default: 3, help: "data phase length per run" },
  clients: { default: "1,100", help: "comma-separated client counts" },
  size: { default: 100, help: "payload bytes" },
  window: { default: 8, help: "datagrams in flight per client (total capped at 512)" },
  recvmmsg: { default: true, help: "recvmmsg in both the forwarder and bunturn (--udp-recvmmsg)" },
  variants: { default: "forwarder,bunturn,coturn", help: "comma-separated: forwarder, bunturn, coturn" },
  threads: { default: 1, help: "--relay-threads of bunturn and coturn" },
  "warmup-s": { default: 5, help: "seconds of the same load first, not measured (JIT tiering; 0: cold)" },
} satisfies ArgSpec;

type Variant = "forwarder" | "bunturn" | "coturn";

export const usage = `bun run bench ceiling [options]\n${describeArgs(spec)}`;

interface GenResult {
  received: number;
  sent: number;
  seconds: number;
  serverCpuS: number;
  genCpuS: number;
  setupOk: number;
}

interface RunOptions {
  seconds: number;
  size: number;
  window: number;
  recvmmsg: boolean;
  threads: number;
  "warmup-s": number;
}

async function runOne(variant: Variant, clients: number, a: RunOptions) {
  const peer = await startEchoPeer(a.seconds + a["warmup-s"] + 60);
  let server: { pid: number; port: number; stop(): Promise<number> };
  if (variant !== "forwarder") {
    // 20000-29999: below the ephemeral range, so no load generator socket holds a relay port.
    server = await startServer({ kind: variant, threads: a.threads, recvmmsg: variant === "bunturn" && a.recvmmsg, minPort: 20000, maxPort: 29999 });
  } else {
    const port = freePort();
    const s = spawn(["bun", join(ROOT, "bench/lib/forwarder.ts"), String(port), String(peer.port), a.recvmmsg ? "1" : "0", String(a.seconds + a["warmup-s"] + 60)], { stdin: "pipe" });
    await waitFor(s, "forwarder", () => s.output().includes("ready"), 10000);
    server = { pid: s.pid, port, stop: async () => {
      (s.proc.stdin as import("bun").FileSink).end();
      return s.stop(3000);
    } };
  }
  try {
    const window = Math.max(1, Math.min(a.window, Math.floor(512 / clients)));
    const generate = async (seconds: number, peerPort: number) => {
      const gen = spawn(["bun", join(ROOT, "bench/lib/loadgen.ts"), variant === "forwarder" ? "raw" : "turn", String(server.port), String(peerPort),
        String(server.pid), String(clients), String(a.size), String(window), String(seconds)]);
      const timer = setTimeout(() => gen.proc.kill("SIGKILL"), (seconds + 60) * 1000);
      await gen.proc.exited;
      clearTimeout(timer);
      return gen;
    };
    if (a["warmup-s"] > 0) {
      // The relays warm up with their own peer and allocations (left to expire, as a client that went
      // away would leave them); the forwarder knows one peer only, so it warms up with the measured one.
      const warm = variant === "forwarder" ? peer : await startEchoPeer(a["warmup-s"] + 60);
      await generate(a["warmup-s"], warm.port);
      if (warm !== peer) await warm.finish();
    }
    const peerCpu0 = cpuSeconds(peer.pid);
    const gen = await generate(a.seconds, peer.port);
    const peerCpuS = cpuSeconds(peer.pid) - peerCpu0;
    const line = gen.output().trim().split("\n").pop() ?? "";
    let g: GenResult;
    try {
      g = JSON.parse(line) as GenResult;
    } catch {
      throw new Error(`loadgen failed:\n${gen.output().slice(-2000)}`);
    }
    await peer.finish();
    // Each datagram back at the load generator was relayed twice (client->peer, peer->client); those
    // still in flight at the end (at most the window) are not counted, the same for every variant.
    const relayed = 2 * g.received;
    return {
      clients, window, size: a.size, recvmmsg: a.recvmmsg, setupOk: g.setupOk,
      relayed, seconds: round(g.seconds, 3), relayedPps: Math.round(relayed / g.seconds),
      serverCpuS: round(g.serverCpuS, 2), serverCpuUsPerPkt: round((g.serverCpuS / relayed) * 1e6, 3),
      serverCpuPct: round((100 * g.serverCpuS) / g.seconds, 1), loadgenCpuPct: round((100 * g.genCpuS) / g.seconds, 1),
      peerCpuPct: round((100 * peerCpuS) / g.seconds, 1),
    };
  } finally {
    await server.stop();
    if (peer.proc.exitCode === null) await peer.finish();
  }
}

export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv, spec);
  const variants = a.variants.split(",").filter(Boolean) as Variant[];
  for (const v of variants) if (!["forwarder", "bunturn", "coturn"].includes(v)) throw new UsageError(`unknown variant ${v}`);
  for (const clients of numberList(a.clients)) {
    const res: Record<string, Awaited<ReturnType<typeof runOne>>[]> = {};
    for (const v of variants) res[v] = [];
    for (let run = 0; run < a.runs; run++) {
      for (const variant of variants) {
        const r = await runOne(variant, clients, a);
        res[variant]!.push(r);
        emit({ bench: "ceiling", variant, run, threads: a.threads, ...r });
      }
    }
    const fields = ["serverCpuUsPerPkt", "relayedPps", "serverCpuPct", "loadgenCpuPct", "peerCpuPct"] as const;
    const summary: Record<string, unknown> = { bench: "ceiling", summary: true, clients, size: a.size, runs: a.runs, threads: a.threads, recvmmsg: a.recvmmsg };
    for (const f of fields) {
      const medians: Record<string, number> = {};
      for (const v of variants) medians[v] = median(res[v]!.map((r) => r[f]));
      if (f === "serverCpuUsPerPkt" || f === "relayedPps") {
        if (medians.bunturn !== undefined && medians.forwarder !== undefined) medians["bunturn/forwarder"] = ratio(medians.bunturn, medians.forwarder);
        if (medians.bunturn !== undefined && medians.coturn !== undefined) medians["bunturn/coturn"] = ratio(medians.bunturn, medians.coturn);
      }
      summary[f] = medians;
    }
    emit(summary);
  }
}

export { cpuSeconds };
