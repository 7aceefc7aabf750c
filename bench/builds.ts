/**
 * A/B of two bunturn builds under identical turnutils_uclient load, runs alternated A B A B …:
 * A = the checkout given by --base (e.g. `git worktree add /tmp/base HEAD`), B = --other or this checkout.
 * Besides the usual load record, each run reports the server's CPU per thread name during the measured
 * phase (from /proc/PID/task/*: the engine Workers, the main thread, JSC's GC and JIT helper threads), as
 * µs per relayed packet, so the summary says which threads a change moved. --transport tls: both builds
 * serve TLS with one self-signed certificate. --side-by-side: each run starts both builds and loads them at the
 * same moment (bench/lib/side-by-side.ts); with --base naming this checkout too, an A/A of that method.
 */
import { describeArgs, numberList, parseArgs, type ArgSpec } from "./lib/args.ts";
import { relayRange } from "./lib/proc.ts";
import { startServer } from "./lib/servers.ts";
import { runPairSideBySide } from "./lib/side-by-side.ts";
import { emit } from "./lib/stats.ts";
import { UCLIENT_LOAD_SPEC, loadOptionsFor, runUclientLoad, type LoadResult } from "./lib/uclient-load.ts";
import { summarize } from "./ab.ts";
import { selfSignedPair } from "./vs-coturn.ts";

export const spec = {
  base: { default: "", help: "checkout of build A (required)" },
  other: { default: "", help: "checkout of build B (default: this one)" },
  runs: { default: 3, help: "runs per build (alternated)" },
  clients: { default: "1,100", help: "comma-separated client counts" },
  sizes: { default: "100", help: "comma-separated message lengths (bytes)" },
  threads: { default: 2, help: "--relay-threads" },
  recvmmsg: { default: false, help: "--udp-recvmmsg for both builds" },
  "side-by-side": { default: false, help: "run both builds at once, each under its own identical load started at the same moment (paced loads: --interval > 0)" },
  ...UCLIENT_LOAD_SPEC,
} satisfies ArgSpec;

/** The TLS certificate (--transport tls), made once, the same for both builds. */
let certificate: { cert: string; key: string } | undefined;
/** Each build's relay range, claimed once. */
const ranges: Record<string, [number, number]> = {};

export const usage = `bun run bench builds --base DIR [options]\n${describeArgs(spec)}`;

export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv, spec);
  if (!a.base) throw new Error("--base DIR is required (a checkout of build A)");
  const builds = [{ name: "A", root: a.base }, { name: "B", root: a.other || undefined }];
  for (const clients of numberList(a.clients)) {
    for (const size of numberList(a.sizes)) {
      const results: Record<string, LoadResult[]> = { A: [], B: [] };
      const load = loadOptionsFor(a, clients, size);
      const tls = load.transport === "tls" ? (certificate ??= selfSignedPair()) : undefined;
      const messages = load.messages;
      const startOne = (b: (typeof builds)[number]) => {
        const [minPort, maxPort] = (ranges[b.name] ??= relayRange(3900)); // two bunturns at once: a range each, kept for the process
        return startServer({ kind: "bunturn", threads: a.threads, recvmmsg: a.recvmmsg, root: b.root, minPort, maxPort, ...(tls ? { tls } : {}) });
      };
      const record = (b: (typeof builds)[number], run: number, r: LoadResult, extra: object = {}) => {
        results[b.name]!.push(r);
        emit({ bench: "builds", variant: b.name, root: b.root ?? ".", run, clients, size, messages, threads: a.threads, recvmmsg: a.recvmmsg, sideBySide: a["side-by-side"], ...extra, ...r });
      };
      for (let run = 0; run < a.runs; run++) {
        if (a["side-by-side"]) {
          const named = (name: string) => builds.find((b) => b.name === name)!;
          for (const { variant, result, extra } of await runPairSideBySide(run, ["A", "B"], (name) => startOne(named(name)), load)) record(named(variant), run, result, extra);
          continue;
        }
        for (const b of builds) {
          const server = await startOne(b);
          try {
            record(b, run, await runUclientLoad(server, load));
          } finally {
            await server.stop();
          }
        }
      }
      emit(summarize("builds", { clients, size, runs: a.runs, sideBySide: a["side-by-side"], warmupS: a["warmup-s"], transport: load.transport, recvmmsg: a.recvmmsg }, results.A!, results.B!, "B/A"));
    }
  }
}
