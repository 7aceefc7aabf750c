/**
 * Micro-benchmark of the engine's per-loop-turn counter publication (src/engine/counters.ts): copying the
 * protocol counters into the shared block by name lookup (`counters[name]` in a loop, the old way) versus
 * the generated copier with one fixed property access per counter. Prints ns per publication, median of
 * --runs, alternated.
 */
import { describeArgs, parseArgs, type ArgSpec } from "./lib/args.ts";
import { emit, median, ratio, round } from "./lib/stats.ts";
import { ENGINE_SLOTS, PROTOCOL_COUNTER_NAMES, publishProtocolCounters } from "../src/engine/counters.ts";
import { STAT_COUNT } from "../ffi/stats.ts";
import type { ProtocolCounters } from "../src/turn/api.ts";

export const spec = {
  runs: { default: 5, help: "runs per variant (alternated)" },
  iterations: { default: 2_000_000, help: "publications per run" },
} satisfies ArgSpec;

export const usage = `bun run bench publish [options]\n${describeArgs(spec)}`;

function byName(counters: ProtocolCounters, block: Float64Array): void {
  for (let i = 0; i < PROTOCOL_COUNTER_NAMES.length; i++) block[STAT_COUNT + i] = counters[PROTOCOL_COUNTER_NAMES[i]!];
}

export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv, spec);
  const counters = Object.fromEntries(PROTOCOL_COUNTER_NAMES.map((n) => [n, 0])) as unknown as ProtocolCounters;
  const block = new Float64Array(new SharedArrayBuffer(ENGINE_SLOTS * 8));
  const variants = { byName, generated: publishProtocolCounters };
  const ns: Record<string, number[]> = { byName: [], generated: [] };
  for (let run = 0; run < a.runs; run++) {
    for (const [name, f] of Object.entries(variants)) {
      const t0 = Bun.nanoseconds();
      for (let i = 0; i < a.iterations; i++) {
        counters.clientToPeerPackets++; // the core changes a counter between two publications
        f(counters, block);
      }
      const per = (Bun.nanoseconds() - t0) / a.iterations;
      ns[name]!.push(per);
      emit({ bench: "publish", variant: name, run, nsPerPublish: round(per, 1) });
    }
  }
  const ma = median(ns.byName!);
  const mb = median(ns.generated!);
  emit({ bench: "publish", summary: true, nsPerPublish: { byName: round(ma, 1), generated: round(mb, 1), ratio: ratio(mb, ma) } });
}
