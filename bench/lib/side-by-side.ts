/**
 * Several servers measured at the same time under identical paced uclient loads (`--side-by-side` of
 * `bench vs-coturn` and `bench builds`). On this shared 2-core machine the machine's own speed drifts by
 * 15-25 % between consecutive one-minute runs, more than the few % two servers differ by; two servers
 * loaded in the same wall-clock window meet the same machine, so their per-run ratio is paired in time.
 * Each server gets its own echo peer and its own uclients; the warm-ups run together, then all peers are
 * started, then all uclients are spawned in one turn of the event loop. Each server's CPU is read from
 * just before its uclients start to just after they end, as in a run alone (bench/lib/uclient-load.ts).
 */
import { MACHINE_CORES } from "./proc.ts";
import type { Server } from "./servers.ts";
import { round } from "./stats.ts";
import { measureLoad, startMeasurePeer, warmUp, type LoadOptions, type LoadResult } from "./uclient-load.ts";

export async function runUclientLoadsSideBySide(servers: Server[], o: LoadOptions): Promise<LoadResult[]> {
  if (o.warmupSeconds) await Promise.all(servers.map((s) => warmUp(s, o, o.warmupSeconds!)));
  const peers = await Promise.all(servers.map(() => startMeasurePeer(o)));
  return Promise.all(servers.map((s, k) => measureLoad(s, o, peers[k]!)));
}

/** What a side-by-side run says about itself: the machine's total load, and why its ratio may not hold. */
export interface SideBySideCheck {
  /** CPU % of one core of everything measured (all servers, uclients and echo peers) together. */
  machineCpuPct: number;
  /** The time all measured windows have in common, over the longest window (1: the loads ran exactly together). */
  overlap: number;
  /** Empty when the run is a fair comparison. */
  notes: string[];
}

/**
 * A side-by-side run compares CPU per message at the same offered load only if nothing was the limit:
 * no loss, each run complete, the machine as a whole well under its cores, and the loads' windows (each
 * echo peer's first to last datagram) nearly the same span of time: paced loads of the same size run
 * together unless one started late or one server fell behind.
 */
export function checkSideBySide(results: LoadResult[], minOverlap = 0.95): SideBySideCheck {
  const notes: string[] = [];
  let machine = 0;
  results.forEach((r, k) => {
    machine += r.serverCpuPct + (100 * r.uclientCpuS) / r.windowS + r.peerCpuPct;
    if (!r.ok) notes.push(`load ${k}: incomplete (${r.note ?? "no summary"})`);
    if (r.lost > 0) notes.push(`load ${k}: ${r.lost} lost (${r.lossPct} %): the load, not the pacing, was the limit`);
  });
  const from = Math.max(...results.map((r) => r.windowFromMs));
  const to = Math.min(...results.map((r) => r.windowToMs));
  const longest = Math.max(...results.map((r) => r.windowToMs - r.windowFromMs));
  const windowsKnown = results.length > 0 && results.every((r) => r.windowFromMs > 0 && r.windowToMs > r.windowFromMs);
  const overlap = windowsKnown ? Math.max(0, to - from) / longest : NaN;
  if (!(overlap >= minOverlap)) notes.push(`the windows overlap by ${round(100 * overlap, 1)} % of the longest: the loads did not run together`);
  if (!(machine < 0.85 * MACHINE_CORES * 100)) notes.push(`the machine was near its ${MACHINE_CORES} cores (${round(machine, 1)} % of one core measured)`);
  return { machineCpuPct: round(machine, 1), overlap: round(overlap, 3), notes };
}

/**
 * Run `run` of a two-variant bench side by side: both started, loaded together, checked and stopped.
 * Which is spawned first alternates from run to run, in case the first of two spawns has an edge. Returns
 * each variant's result with the run's check, in the order the variants were given.
 */
export async function runPairSideBySide<K extends string>(
  run: number,
  variants: readonly [K, K],
  start: (variant: K) => Promise<Server>,
  o: LoadOptions,
): Promise<{ variant: K; result: LoadResult; extra: SideBySideCheck & { spawnedFirst: K } }[]> {
  const order = run % 2 ? [variants[1], variants[0]] : [variants[0], variants[1]];
  const servers: Server[] = [];
  try {
    for (const v of order) servers.push(await start(v));
    const results = await runUclientLoadsSideBySide(servers, o);
    const extra = { ...checkSideBySide(results), spawnedFirst: order[0]! };
    return variants.map((variant) => ({ variant, result: results[order.indexOf(variant)]!, extra }));
  } finally {
    for (const s of servers) await s.stop();
  }
}
