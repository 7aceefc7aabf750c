/**
 * How close the relay is to what the kernel allows: the same closed-loop ChannelData load (bench/lib/
 * loadgen.ts: N client sockets, each keeping --window datagrams in flight, through the FFI layer) against
 *   forwarder: bench/lib/forwarder.ts, a minimal UDP relay through the same ffi/ (RecvBatch/SendBatch,
 *              receiveBatch/flushSendBatch, epoll): one relay socket per client, no protocol work;
 *   bunturn:   the real relay (allocation + ChannelBind first, then ChannelData), --relay-threads 1.
 * Runs alternated; CPU microseconds per relayed datagram of the server process over the data phase.
 */
import { join } from "node:path";
import { describeArgs, numberList, parseArgs, type ArgSpec } from "./lib/args.ts";
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
} satisfies ArgSpec;

export const usage = `bun run bench ceiling [options]\n${describeArgs(spec)}`;

interface GenResult {
  received: number;
  sent: number;
  seconds: number;
  serverCpuS: number;
  genCpuS: number;
  setupOk: number;
}

async function runOne(variant: "forwarder" | "bunturn", clients: number, a: { seconds: number; size: number; window: number; recvmmsg: boolean }) {
  const peer = await startEchoPeer(a.seconds + 60);
  let server: { pid: number; port: number; stop(): Promise<number> };
  if (variant === "bunturn") {
    server = await startServer({ kind: "bunturn", threads: 1, recvmmsg: a.recvmmsg });
  } else {
    const port = freePort();
    const s = spawn(["bun", join(ROOT, "bench/lib/forwarder.ts"), String(port), String(peer.port), a.recvmmsg ? "1" : "0", String(a.seconds + 60)], { stdin: "pipe" });
    await waitFor(s, "forwarder", () => s.output().includes("ready"), 10000);
    server = { pid: s.pid, port, stop: async () => {
      (s.proc.stdin as import("bun").FileSink).end();
      return s.stop(3000);
    } };
  }
  try {
    const window = Math.max(1, Math.min(a.window, Math.floor(512 / clients)));
    const gen = spawn(["bun", join(ROOT, "bench/lib/loadgen.ts"), variant === "bunturn" ? "turn" : "raw", String(server.port), String(peer.port),
      String(server.pid), String(clients), String(a.size), String(window), String(a.seconds)]);
    const timer = setTimeout(() => gen.proc.kill("SIGKILL"), (a.seconds + 60) * 1000);
    await gen.proc.exited;
    clearTimeout(timer);
    const line = gen.output().trim().split("\n").pop() ?? "";
    let g: GenResult;
    try {
      g = JSON.parse(line) as GenResult;
    } catch {
      throw new Error(`loadgen failed:\n${gen.output().slice(-2000)}`);
    }
    const p = await peer.finish();
    // Each round trip is two relayed datagrams (client->peer, peer->client).
    const relayed = p.rx + g.received;
    return {
      clients, window, size: a.size, recvmmsg: a.recvmmsg, setupOk: g.setupOk,
      relayed, seconds: round(g.seconds, 3), relayedPps: Math.round(relayed / g.seconds),
      serverCpuS: round(g.serverCpuS, 2), serverCpuUsPerPkt: round((g.serverCpuS / relayed) * 1e6, 3),
      serverCpuPct: round((100 * g.serverCpuS) / g.seconds, 1), loadgenCpuPct: round((100 * g.genCpuS) / g.seconds, 1),
      peerCpuPct: round((100 * p.cpu) / g.seconds, 1),
    };
  } finally {
    await server.stop();
    if (peer.proc.exitCode === null) await peer.finish();
  }
}

export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv, spec);
  for (const clients of numberList(a.clients)) {
    const res: Record<string, Awaited<ReturnType<typeof runOne>>[]> = { forwarder: [], bunturn: [] };
    for (let run = 0; run < a.runs; run++) {
      for (const variant of ["forwarder", "bunturn"] as const) {
        const r = await runOne(variant, clients, a);
        res[variant]!.push(r);
        emit({ bench: "ceiling", variant, run, ...r });
      }
    }
    const m = (v: string, f: "relayedPps" | "serverCpuUsPerPkt" | "serverCpuPct") => median(res[v]!.map((r) => r[f]));
    emit({
      bench: "ceiling", summary: true, clients, size: a.size, runs: a.runs, recvmmsg: a.recvmmsg, ratioOf: "bunturn/forwarder",
      serverCpuUsPerPkt: { forwarder: m("forwarder", "serverCpuUsPerPkt"), bunturn: m("bunturn", "serverCpuUsPerPkt"), ratio: ratio(m("bunturn", "serverCpuUsPerPkt"), m("forwarder", "serverCpuUsPerPkt")) },
      relayedPps: { forwarder: m("forwarder", "relayedPps"), bunturn: m("bunturn", "relayedPps"), ratio: ratio(m("bunturn", "relayedPps"), m("forwarder", "relayedPps")) },
      serverCpuPct: { forwarder: m("forwarder", "serverCpuPct"), bunturn: m("bunturn", "serverCpuPct") },
    });
  }
}

export { cpuSeconds };
