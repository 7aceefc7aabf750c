/**
 * Does a second engine carry a second engine's worth of load? On a machine whose cores the load
 * generator needs too (2 cores here), a relay that is not CPU-bound shows nothing: the generator sets the
 * rate. So each engine thread is given a core of its own in miniature: a Linux CPU cgroup (v1, `cpu`
 * controller) per engine thread, capped at --quota-pct of a core (CFS bandwidth, --period-us slices).
 * The engines become the limit at a rate the generator can offer (unpaced uclient), and the datagrams
 * per second N engines relay against one (the server's own counters, over a window after a warm-up)
 * say whether anything they share (the main thread, a lock, the kernel's SO_REUSEPORT spread) holds
 * them back. Needs root and a writable /sys/fs/cgroup/cpu; bunturn only.
 *
 *   bun run bench engine-scaling --transport tls --threads 1,2 --quota-pct 10 --runs 2
 */
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describeArgs, numberList, parseArgs, type ArgSpec } from "./lib/args.ts";
import { freePort, threadCpu, type Spawned } from "./lib/proc.ts";
import { startServer, type Server } from "./lib/servers.ts";
import { emit, median, pairedRatio, ratio, round } from "./lib/stats.ts";
import { spawnUclients, startEchoPeer, type Transport } from "./lib/uclient-load.ts";
import { selfSignedPair } from "./vs-coturn.ts";

const CGROUP_CPU = "/sys/fs/cgroup/cpu";
/** The kernel refuses a smaller cpu.cfs_quota_us: small caps get a longer period. */
const CFS_MIN_QUOTA_US = 1000;

export const spec = {
  runs: { default: 2, help: "runs per engine count (alternated)" },
  threads: { default: "1,2", help: "comma-separated --relay-threads values" },
  clients: { default: 20, help: "uclient sessions, unpaced (spread over the engines by the kernel)" },
  procs: { default: 4, help: "uclient processes" },
  size: { default: 100, help: "message length (bytes)" },
  transport: { default: "tls", help: "udp, tcp or tls" },
  "quota-pct": { default: 10, help: "each engine thread's CPU cap, % of one core" },
  "period-us": { default: 10000, help: "CFS period of the cap (the engine runs at most quota-pct of each period; longer when the quota would be under 1 ms)" },
  "warmup-s": { default: 8, help: "seconds of load before the window (JIT tiering, allocations)" },
  seconds: { default: 10, help: "the measured window" },
} satisfies ArgSpec;

export const usage = `bun run bench engine-scaling [options]\n${describeArgs(spec)}`;

/** One cgroup per engine thread of `server`, each capped; returns the directories (removed by release()). */
function capEngines(server: Server, engines: number[], quotaPct: number, periodUs: number): string[] {
  periodUs = Math.max(periodUs, Math.ceil((CFS_MIN_QUOTA_US * 100) / quotaPct));
  return engines.map((tid) => {
    const dir = join(CGROUP_CPU, `bunturn-bench-${server.pid}-${tid}`);
    mkdirSync(dir);
    writeFileSync(join(dir, "cpu.cfs_period_us"), String(periodUs));
    writeFileSync(join(dir, "cpu.cfs_quota_us"), String(Math.round((periodUs * quotaPct) / 100)));
    writeFileSync(join(dir, "tasks"), String(tid));
    return dir;
  });
}

/** Periods and throttled periods of a capped engine so far. */
function periods(dir: string): { all: number; throttled: number } {
  const stat = Object.fromEntries(readFileSync(join(dir, "cpu.stat"), "utf8").trim().split("\n").map((l) => l.split(" ")).map(([k, v]) => [k, Number(v)]));
  return { all: stat.nr_periods ?? 0, throttled: stat.nr_throttled ?? 0 };
}

function release(dirs: string[]): void {
  for (const dir of dirs) {
    try {
      rmdirSync(dir); // empty once the server's threads are gone
    } catch {
      /* a thread still exiting: the empty group is harmless and named after a dead pid */
    }
  }
}

/** Datagrams relayed so far, both directions, from the server's own Prometheus counters. */
async function relayedSoFar(metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  let total = 0;
  for (const m of text.matchAll(/^bunturn_relayed_packets_total\{[^}]*\} (\d+)/gm)) total += Number(m[1]);
  return total;
}

interface Window {
  relayedPps: number;
  /** Each engine's CPU over the window, % of a core. */
  enginePct: number[];
  /** Each engine's share of CFS periods in which it hit its cap. */
  throttled: number[];
  /** Everything else of the server (main thread, JIT, GC), % of a core. */
  otherPct: number;
}

async function measure(threads: number, a: ReturnType<typeof parseArgs<typeof spec>>, tls: { cert: string; key: string } | undefined): Promise<Window> {
  const metricsPort = freePort();
  const server = await startServer({
    kind: "bunturn", threads, ...(tls ? { tls } : {}),
    extra: ["--prometheus", "--prometheus-address", "127.0.0.1", "--prometheus-port", String(metricsPort)],
  });
  const peer = await startEchoPeer(a["warmup-s"] + a.seconds + 60);
  let dirs: string[] = [];
  let uclients: Spawned[] = [];
  try {
    const engines = [...threadCpu(server.pid)].filter(([, t]) => t.name === "Worker").map(([tid]) => tid);
    if (engines.length !== threads) throw new Error(`expected ${threads} engine threads, found ${engines.length}`);
    dirs = capEngines(server, engines, a["quota-pct"], a["period-us"]);
    const load = { clients: a.clients, procs: a.procs, messages: 10_000_000, size: a.size, intervalMs: 0, timeoutMs: 0, transport: a.transport as Transport };
    uclients = spawnUclients(server, peer.port, load, a.clients, Math.min(a.procs, a.clients));
    await Bun.sleep(a["warmup-s"] * 1000);
    const cpu0 = threadCpu(server.pid);
    const p0 = dirs.map(periods);
    const r0 = await relayedSoFar(metricsPort);
    const t0 = performance.now();
    await Bun.sleep(a.seconds * 1000);
    const r1 = await relayedSoFar(metricsPort);
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = threadCpu(server.pid);
    const p1 = dirs.map(periods);
    const used = (tid: number) => (cpu1.get(tid)?.seconds ?? 0) - (cpu0.get(tid)?.seconds ?? 0);
    const enginePct = engines.map((tid) => round((100 * used(tid)) / seconds, 1));
    const otherPct = round((100 * [...cpu1.keys()].filter((tid) => !engines.includes(tid)).reduce((s, tid) => s + used(tid), 0)) / seconds, 1);
    const throttled = p1.map((p, i) => round((p.throttled - p0[i]!.throttled) / Math.max(1, p.all - p0[i]!.all), 3));
    if (r1 - r0 <= 0) throw new Error(`no datagram relayed in the window (${threads} engines):\n${server.output().slice(-1500)}`);
    return { relayedPps: Math.round((r1 - r0) / seconds), enginePct, throttled, otherPct };
  } finally {
    for (const u of uclients) u.proc.kill("SIGKILL");
    await Promise.all(uclients.map((u) => u.proc.exited));
    await peer.finish();
    await server.stop();
    release(dirs);
  }
}

export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv, spec);
  try {
    mkdirSync(join(CGROUP_CPU, "bunturn-bench-probe"));
    rmdirSync(join(CGROUP_CPU, "bunturn-bench-probe"));
  } catch (error) {
    throw new Error(`engine-scaling needs a writable ${CGROUP_CPU} (cgroup v1 cpu controller, root): ${(error as Error).message}`);
  }
  const tls = a.transport === "tls" ? selfSignedPair() : undefined;
  const counts = numberList(a.threads);
  const results = new Map<number, Window[]>(counts.map((t) => [t, []]));
  for (let run = 0; run < a.runs; run++) {
    for (const threads of counts) {
      const w = await measure(threads, a, tls);
      results.get(threads)!.push(w);
      emit({ bench: "engine-scaling", run, threads, quotaPct: a["quota-pct"], transport: a.transport, clients: a.clients, ...w });
    }
  }
  const relayed = (t: number) => results.get(t)!.map((w) => w.relayedPps);
  // Runs alternate, so run k of N engines and run k of the first count share the machine's state: per-run ratios.
  const byRun = (t: number) => relayed(t).map((pps, run) => ratio(pps, relayed(counts[0]!)[run]!));
  emit({
    bench: "engine-scaling", summary: true, quotaPct: a["quota-pct"], transport: a.transport, clients: a.clients,
    relayedPps: Object.fromEntries(counts.map((t) => [t, median(relayed(t))])),
    [`over${counts[0]}`]: Object.fromEntries(counts.map((t) => [t, pairedRatio(relayed(t), relayed(counts[0]!)).median])),
    [`over${counts[0]}ByRun`]: Object.fromEntries(counts.map((t) => [t, byRun(t)])),
  });
}
