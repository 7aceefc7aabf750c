/**
 * One server under the call-shaped load (bench/lib/load-shapes.ts, sent with UDP_SEGMENT as in
 * `ceiling --load call --gso`, which on loopback models a NIC's GRO), alone, with a command of yours
 * attached to its process for the data phase: `strace -f -c -p PID`, `perf record -g -p PID`, … (the
 * word PID in the command becomes the server's pid). The command starts after a warm-up and once the
 * data phase is under way, and gets SIGINT at its end; the load generator's JSON line follows (the
 * server's sleeps and preemptions per thread name among it). Run it under the bench lock like any
 * measurement.
 *
 *   bun run bench under-load --server bunturn --clients 20 --seconds 8 -- perf record -g -p PID -o /tmp/x.data
 */
import { join } from "node:path";
import { UsageError, describeArgs, parseArgs, type ArgSpec } from "./lib/args.ts";
import { ROOT, relayRange, spawn } from "./lib/proc.ts";
import { startServer } from "./lib/servers.ts";
import { startEchoPeer } from "./lib/uclient-load.ts";
import type { LoadgenConfig } from "./lib/loadgen.ts";

export const spec = {
  server: { default: "bunturn", help: "bunturn | coturn" },
  clients: { default: 20, help: "calls" },
  seconds: { default: 8, help: "seconds of load while the command runs" },
  "warmup-s": { default: 6, help: "seconds of the same load first (other allocations), nothing attached" },
  gro: { default: false, help: "the load generator's and echo peer's sockets receive with UDP_GRO (as ceiling --gro)" },
  "coturn-bin": { default: "turnserver", help: "the coturn turnserver to run" },
  "bunturn-args": { default: "", help: "extra options of bunturn, space-separated" },
} satisfies ArgSpec;

export const usage = `bun run bench under-load [options] -- COMMAND WITH PID ...\n${describeArgs(spec)}`;

export async function main(argv: string[]): Promise<void> {
  const split = argv.indexOf("--");
  const a = parseArgs(split < 0 ? argv : argv.slice(0, split), spec);
  const hook = split < 0 ? [] : argv.slice(split + 1);
  if (a.server !== "bunturn" && a.server !== "coturn") throw new UsageError(`unknown server ${a.server}`);
  const [minPort, maxPort] = relayRange(2000);
  const server = await startServer({
    kind: a.server, threads: 1, recvmmsg: a.server === "bunturn", minPort, maxPort, coturnBin: a["coturn-bin"],
    extra: a.server === "bunturn" ? a["bunturn-args"].split(" ").filter(Boolean) : [],
  });
  const lifetimeS = a["warmup-s"] + a.seconds + 60;
  // One peer port per client and phase (the warm-up's allocations are left to expire), segment 1200: the RTP size.
  const peer = await startEchoPeer(lifetimeS, 2 * a.clients, 1200, a.gro);
  const load = (seconds: number, phase: number) => {
    const config: LoadgenConfig = {
      clients: a.clients, seconds, sliceMs: 0, peerPorts: peer.ports.slice(phase * a.clients, (phase + 1) * a.clients), gso: true, gro: a.gro,
      shape: "call", size: 100, window: 1, burst: 16, fps: 30, frameBytes: 6250, rtpSize: 1200, audioSize: 160, audioPps: 50,
      targets: [{ mode: "turn", port: server.port, pid: server.pid }],
    };
    return spawn(["bun", join(ROOT, "bench/lib/loadgen.ts"), JSON.stringify(config)]);
  };
  try {
    if (a["warmup-s"] > 0) await load(a["warmup-s"], 0).proc.exited;
    const gen = load(a.seconds, 1);
    await Bun.sleep(500); // allocations made, calls under way
    const command = hook.map((word) => word.replaceAll("PID", String(server.pid)));
    const attached = command.length ? Bun.spawn(command, { stdout: "inherit", stderr: "inherit" }) : undefined;
    await gen.proc.exited;
    attached?.kill("SIGINT");
    await attached?.exited;
    console.log(gen.output().trim().split("\n").pop() ?? "");
  } finally {
    await server.stop();
    await peer.finish();
  }
}
