/**
 * What the first seconds of traffic cost a freshly started relay, against its own steady state, and two
 * configurations side by side (e.g. with and without the start-up warm-up). Each run starts both
 * variants at once (fresh processes: JSC has compiled nothing of the relay path yet), measures the time
 * from launch to the "listening on" line, then loads both at the same time with the same paced load
 * (bench/lib/loadgen.ts, one load generator per server, each client its own echo peer port), so the two
 * see the same machine moment by moment and their ratio is paired.
 *
 * The load generator records each server's CPU per thread name (/proc/PID/task/*\/schedstat: the engine
 * "Worker" threads run the relay, "JITWorker" threads compile it, "HeapHelper" collects) before the
 * first Allocate, once the allocations and channel bindings are done (0 s), and at each --marks second
 * of the data phase. Reported per variant: the CPU of the setup, and CPU microseconds per relayed
 * datagram over the first N seconds (setup excluded) and over the steady window (the last
 * --steady-s seconds of the run), with each thread name's share.
 */
import { join } from "node:path";
import { UsageError, describeArgs, numberList, parseArgs, wordList, type ArgSpec } from "./lib/args.ts";
import { ROOT, relayRange, spawn } from "./lib/proc.ts";
import { startServer, type Server } from "./lib/servers.ts";
import { emit, median, pairedRatio, round } from "./lib/stats.ts";
import type { LoadgenConfig } from "./lib/loadgen.ts";
import type { ShapeName } from "./lib/load-shapes.ts";
import { startEchoPeer } from "./lib/uclient-load.ts";

export const spec = {
  runs: { default: 3, help: "runs (each starts both variants afresh)" },
  clients: { default: 5, help: "clients per server" },
  load: { default: "call", help: "window | burst | call (bench/lib/load-shapes.ts)" },
  size: { default: 100, help: "payload bytes (window and burst loads)" },
  window: { default: 1, help: "window/burst loads: datagrams (bursts) in flight per client" },
  burst: { default: 16, help: "burst load: equal datagrams per burst" },
  marks: { default: "1,2,5", help: "seconds into the traffic at which the cost so far is reported" },
  seconds: { default: 25, help: "seconds of traffic per run" },
  "steady-s": { default: 5, help: "the steady state: the last this many seconds of the run" },
  threads: { default: 1, help: "--relay-threads of both" },
  "a-args": { default: "--no-warmup", help: "extra relay options of variant A, space-separated" },
  "b-args": { default: "", help: "extra relay options of variant B, space-separated" },
  "a-root": { default: "", help: "checkout of variant A (default: this one)" },
  "b-root": { default: "", help: "checkout of variant B (default: this one)" },
} satisfies ArgSpec;

export const usage = `bun run bench coldstart [options]\n${describeArgs(spec)}`;

interface Mark {
  atS: number;
  received: number;
  sent: number;
  cpu: Record<string, number>;
}

const total = (cpu: Record<string, number>) => Object.values(cpu).reduce((t, s) => t + s, 0);

/** CPU µs per relayed datagram between two marks, in all and per thread name (each datagram back at a client was relayed twice). */
function costBetween(from: Mark, to: Mark) {
  const relayed = 2 * (to.received - from.received);
  const byThread: Record<string, number> = {};
  for (const [name, s] of Object.entries(to.cpu)) {
    const used = s - (from.cpu[name] ?? 0);
    if (used > 0.0005) byThread[name] = round((used / relayed) * 1e6, 2);
  }
  return { relayed, usPerPkt: round(((total(to.cpu) - total(from.cpu)) / relayed) * 1e6, 3), byThread };
}

async function oneRun(a: ReturnType<typeof parseArgs<typeof spec>>, run: number) {
  const marks = numberList(a.marks);
  const steadyFrom = a.seconds - a["steady-s"];
  const lifetimeS = a.seconds + 120;
  const peer = await startEchoPeer(lifetimeS, 2 * a.clients, 0);
  const variants = [
    { name: "A", root: a["a-root"] || undefined, extra: wordList(a["a-args"]) },
    { name: "B", root: a["b-root"] || undefined, extra: wordList(a["b-args"]) },
  ];
  // Alternate which variant is launched first.
  if (run % 2) variants.reverse();
  const servers: Server[] = [];
  const startupMs: number[] = [];
  try {
    await Promise.all(variants.map(async (v, k) => {
      const [minPort, maxPort] = relayRange(200);
      const launched = performance.now();
      servers[k] = await startServer({ kind: "bunturn", threads: a.threads, minPort, maxPort, extra: v.extra, ...(v.root ? { root: v.root } : {}) });
      startupMs[k] = performance.now() - launched;
    }));
    const results = await Promise.all(servers.map(async (server, k) => {
      const config: LoadgenConfig = {
        clients: a.clients, seconds: a.seconds + 0.05, sliceMs: 0, peerPorts: peer.ports.slice(k * a.clients, (k + 1) * a.clients), gso: false,
        shape: a.load as ShapeName, size: a.size, window: a.window, burst: a.burst, fps: 30, frameBytes: 6250, rtpSize: 1200, audioSize: 160, audioPps: 50,
        targets: [{ mode: "turn", port: server.port, pid: server.pid }], marksS: [...marks, steadyFrom, a.seconds],
      };
      const gen = spawn(["bun", join(ROOT, "bench/lib/loadgen.ts"), JSON.stringify(config)]);
      const timer = setTimeout(() => gen.proc.kill("SIGKILL"), (a.seconds + 60) * 1000);
      await gen.proc.exited;
      clearTimeout(timer);
      const line = gen.output().trim().split("\n").pop() ?? "";
      try {
        return (JSON.parse(line) as { targets: { marks: Mark[]; setupOk: number; sent: number; received: number }[] }).targets[0]!;
      } catch {
        throw new Error(`loadgen failed:\n${gen.output().slice(-2000)}`);
      }
    }));
    return variants.map((v, k) => {
      const r = results[k]!;
      const at = (s: number) => r.marks.find((m) => m.atS === s)!;
      const zero = at(0);
      const first = Object.fromEntries(marks.map((s) => [`first${s}s`, costBetween(zero, at(s))]));
      return {
        variant: v.name, args: v.extra.join(" "), startupMs: Math.round(startupMs[k]!), setupOk: r.setupOk, lossPct: round(100 * (1 - r.received / r.sent), 2),
        setupCpuMs: round(total(zero.cpu) * 1000, 1), ...first, steady: costBetween(at(steadyFrom), at(a.seconds)),
      };
    });
  } finally {
    for (const s of servers) if (s) await s.stop();
    if (peer.proc.exitCode === null) await peer.finish();
  }
}

export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv, spec);
  if (!["window", "burst", "call"].includes(a.load)) throw new UsageError(`unknown load ${a.load}`);
  const marks = numberList(a.marks);
  if (marks.some((s) => s <= 0 || s >= a.seconds - a["steady-s"])) throw new UsageError("--marks must fall before the steady window");
  const rows: Record<string, Awaited<ReturnType<typeof oneRun>>> = { A: [], B: [] };
  for (let run = 0; run < a.runs; run++) {
    for (const r of await oneRun(a, run)) {
      rows[r.variant]!.push(r);
      emit({ bench: "coldstart", run, clients: a.clients, load: a.load, ...r });
    }
  }
  const windows = [...marks.map((s) => `first${s}s`), "steady"];
  const cost = (v: string, w: string) => rows[v]!.map((r) => (r as unknown as Record<string, { usPerPkt: number }>)[w]!.usPerPkt);
  const summary: Record<string, unknown> = { bench: "coldstart", summary: true, clients: a.clients, load: a.load, runs: a.runs, aArgs: a["a-args"], bArgs: a["b-args"] };
  for (const v of ["A", "B"]) {
    const steady = cost(v, "steady");
    summary[v] = {
      startupMs: median(rows[v]!.map((r) => r.startupMs)),
      setupCpuMs: median(rows[v]!.map((r) => r.setupCpuMs)),
      ...Object.fromEntries(windows.map((w) => [w, median(cost(v, w))])),
      // Each run's first seconds against its own steady state.
      ...Object.fromEntries(marks.map((s) => [`first${s}s/steady`, pairedRatio(cost(v, `first${s}s`), steady).median])),
    };
  }
  for (const w of windows) {
    const p = pairedRatio(cost("B", w), cost("A", w));
    summary[`B/A ${w}`] = `${p.median} (B lower in ${p.below}/${p.pairs})`;
  }
  const p = pairedRatio(rows.B!.map((r) => r.startupMs), rows.A!.map((r) => r.startupMs));
  summary["B/A startupMs"] = p.median;
  emit(summary);
}
