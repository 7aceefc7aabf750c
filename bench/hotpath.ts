/**
 * The user-space cost of relaying one datagram, without the kernel: bench/lib/hotpath-child.ts runs the
 * real Engine with the data path's system calls replaced by a fake that hands it `batch` datagrams per
 * wake-up (1: one datagram per epoll_wait, the 1-client case; 16: a full recvmmsg batch). Nanoseconds per
 * relayed datagram, wall clock of a CPU-bound loop, so it is the JavaScript (and runtime) share of the
 * per-packet cost that kernel-bound benches cannot separate from noise. With --base DIR, the same for
 * another checkout, runs alternated A B A B, and the ratio B/A (e.g. before/after a change).
 */
import { join } from "node:path";
import { describeArgs, numberList, parseArgs, type ArgSpec } from "./lib/args.ts";
import { ROOT, spawn } from "./lib/proc.ts";
import { emit, median, ratio, round } from "./lib/stats.ts";

export const spec = {
  base: { default: "", help: "checkout to compare with (A); B is this checkout" },
  runs: { default: 5, help: "runs per checkout (alternated)" },
  batches: { default: "1,16", help: "comma-separated datagrams per wake-up" },
  size: { default: 100, help: "payload bytes" },
  packets: { default: 1_500_000, help: "measured datagrams per run (after 300 000 of warm-up)" },
  recvmmsg: { default: true, help: "engine with --udp-recvmmsg (off: one recvmsg per datagram)" },
  "b-args": { default: "", help: "extra relay flags for this checkout's engine only, space-separated (e.g. \"--no-udp-gso --no-udp-gro\"; a --base may not know them)" },
} satisfies ArgSpec;

export const usage = `bun run bench hotpath [options]\n${describeArgs(spec)}`;

interface ChildResult {
  nsPerPkt: number;
  relayed: number;
  crashes: number;
}

async function runChild(root: string, batch: number, a: { size: number; packets: number; recvmmsg: boolean }, extraArgs: string): Promise<ChildResult> {
  const warm = Math.ceil(300_000 / batch);
  const wakes = Math.ceil(a.packets / batch);
  const child = spawn(["bun", join(ROOT, "bench/lib/hotpath-child.ts"), root, String(batch), String(a.size), String(warm), String(wakes), a.recvmmsg ? "1" : "0", extraArgs]);
  const timer = setTimeout(() => child.proc.kill("SIGKILL"), 120_000);
  await child.proc.exited;
  clearTimeout(timer);
  const line = child.output().trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as ChildResult;
  } catch {
    throw new Error(`hotpath child failed (${root}):\n${child.output().slice(-2000)}`);
  }
}

export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv, spec);
  const builds = a.base ? [{ name: "A", root: a.base }, { name: "B", root: ROOT }] : [{ name: "B", root: ROOT }];
  for (const batch of numberList(a.batches)) {
    const results: Record<string, number[]> = { A: [], B: [] };
    for (let run = 0; run < a.runs; run++) {
      for (const b of builds) {
        const r = await runChild(b.root, batch, a, b.name === "B" ? a["b-args"] : "");
        results[b.name]!.push(r.nsPerPkt);
        emit({ bench: "hotpath", variant: b.name, root: b.root, run, batch, size: a.size, recvmmsg: a.recvmmsg, ...r });
      }
    }
    const mb = median(results.B!);
    const summary: Record<string, unknown> = { bench: "hotpath", summary: true, batch, size: a.size, runs: a.runs, recvmmsg: a.recvmmsg, nsPerPkt: { b: round(mb, 1) } };
    if (a.base) {
      const ma = median(results.A!);
      summary.nsPerPkt = { a: round(ma, 1), b: round(mb, 1), ratio: ratio(mb, ma) };
      summary.ratioOf = "B/A (this checkout / --base)";
    }
    emit(summary);
  }
}
