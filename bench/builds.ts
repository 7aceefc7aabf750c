/**
 * A/B of two bunturn builds under identical turnutils_uclient load, runs alternated A B A B …:
 * A = the checkout given by --base (e.g. `git worktree add /tmp/base HEAD`), B = --other or this checkout.
 * Besides the usual load record, each run reports the server's CPU per thread name during the measured
 * phase (from /proc/PID/task/*: the engine Workers, the main thread, JSC's GC and JIT helper threads), as
 * µs per relayed packet, so the summary says which threads a change moved.
 */
import { readdirSync, readFileSync } from "node:fs";
import { describeArgs, numberList, parseArgs, type ArgSpec } from "./lib/args.ts";
import { CLK_TCK } from "./lib/proc.ts";
import { startServer } from "./lib/servers.ts";
import { emit, median, ratio, round } from "./lib/stats.ts";
import { runUclientLoad, type LoadResult } from "./lib/uclient-load.ts";
import { messagesFor, summarize } from "./ab.ts";

export const spec = {
  base: { default: "", help: "checkout of build A (required)" },
  other: { default: "", help: "checkout of build B (default: this one)" },
  runs: { default: 3, help: "runs per build (alternated)" },
  clients: { default: "1,100", help: "comma-separated client counts" },
  sizes: { default: "100", help: "comma-separated message lengths (bytes)" },
  procs: { default: 8, help: "uclient processes in parallel when clients > 1" },
  messages: { default: 0, help: "messages per client (0: 50000 for 1 client, 200000/clients otherwise)" },
  interval: { default: 0, help: "uclient -z, ms" },
  threads: { default: 2, help: "--relay-threads" },
  recvmmsg: { default: false, help: "--udp-recvmmsg for both builds" },
  warmup: { default: 0.25, help: "warm-up run first, as a fraction of --messages" },
  timeout: { default: 60, help: "seconds before a run is cut" },
} satisfies ArgSpec;

export const usage = `bun run bench builds --base DIR [options]\n${describeArgs(spec)}`;

/** CPU seconds per thread, keyed by "comm" (threads of the same name summed). */
export function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const cpu = (Number(f[11]) + Number(f[12])) / CLK_TCK;
      out.set(name, (out.get(name) ?? 0) + cpu);
    } catch {
      // the thread ended between readdir and read
    }
  }
  return out;
}

export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv, spec);
  if (!a.base) throw new Error("--base DIR is required (a checkout of build A)");
  const builds = [{ name: "A", root: a.base }, { name: "B", root: a.other || undefined }];
  for (const clients of numberList(a.clients)) {
    for (const size of numberList(a.sizes)) {
      const results: Record<string, LoadResult[]> = { A: [], B: [] };
      const perThread: Record<string, Record<string, number>[]> = { A: [], B: [] };
      const messages = messagesFor(clients, a.messages);
      for (let run = 0; run < a.runs; run++) {
        for (const b of builds) {
          const server = await startServer({ kind: "bunturn", threads: a.threads, recvmmsg: a.recvmmsg, root: b.root });
          let before = new Map<string, number>();
          let after = new Map<string, number>();
          try {
            const r = await runUclientLoad(server, {
              clients, procs: clients === 1 ? 1 : Math.min(a.procs, clients), messages, size,
              intervalMs: a.interval, timeoutMs: a.timeout * 1000, warmupMessages: Math.round(messages * a.warmup),
              around: { start: () => (before = threadCpu(server.pid)), end: () => (after = threadCpu(server.pid)) },
            });
            const threads: Record<string, number> = {};
            for (const [name, cpu] of after) {
              const us = ((cpu - (before.get(name) ?? 0)) / r.relayed) * 1e6;
              if (us > 0) threads[name] = round(us, 3);
            }
            results[b.name]!.push(r);
            perThread[b.name]!.push(threads);
            emit({ bench: "builds", variant: b.name, root: b.root ?? ".", run, clients, size, messages, threads: a.threads, recvmmsg: a.recvmmsg, ...r, cpuUsPerPktByThread: threads });
          } finally {
            await server.stop();
          }
        }
      }
      const summary = summarize("builds", { clients, size, runs: a.runs, recvmmsg: a.recvmmsg }, results.A!, results.B!, "B/A");
      const names = new Set([...perThread.A!, ...perThread.B!].flatMap((t) => Object.keys(t)));
      const byThread: Record<string, unknown> = {};
      for (const n of names) {
        const ma = median(perThread.A!.map((t) => t[n] ?? 0));
        const mb = median(perThread.B!.map((t) => t[n] ?? 0));
        byThread[n] = { a: round(ma, 3), b: round(mb, 3), ratio: ratio(mb, ma) };
      }
      emit({ ...summary, cpuUsPerPktByThread: byThread });
    }
  }
}
