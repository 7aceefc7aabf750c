/**
 * Memory and fds with many live allocations: for each server (bunturn, coturn), VmRSS and open fds
 * (/proc/PID/status, /proc/PID/fd) idle, with --levels live allocations (one UDP socket per allocation,
 * authenticated Allocate through bench/lib/turn-client.ts), then after Refresh LIFETIME=0 for all.
 * One JSON line per measurement; `left` lines say what stayed behind after the release (must be 0 fds).
 */
import { readFileSync } from "node:fs";
import { describeArgs, numberList, parseArgs, type ArgSpec } from "./lib/args.ts";
import { openFds, rssKiB, threads } from "./lib/proc.ts";
import { PASSWORD, USER, coturnVersion, startServer } from "./lib/servers.ts";
import { emit } from "./lib/stats.ts";
import { TurnClients } from "./lib/turn-client.ts";

export const spec = {
  servers: { default: "bunturn,coturn", help: "which servers, in order" },
  levels: { default: "1000,5000", help: "live allocation counts to measure, increasing" },
  runs: { default: 1, help: "rounds (servers alternated within each)" },
  threads: { default: 2, help: "--relay-threads" },
  settle: { default: 1000, help: "ms to wait before each measurement" },
} satisfies ArgSpec;

export const usage = `bun run bench memory [options]\n${describeArgs(spec)}`;

function fdLimit(): number {
  const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync("/proc/self/limits", "utf8"));
  return !m || m[1] === "unlimited" ? Infinity : Number(m[1]);
}

export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv, spec);
  const levels = numberList(a.levels).sort((x, y) => x - y);
  const max = levels[levels.length - 1] ?? 0;
  const limit = fdLimit();
  if (limit < max + 200) {
    throw new Error(`open-file limit ${limit} < ${max + 200}: run as  bash -c 'ulimit -n 65536; bun run bench memory ...'  (or prlimit --nofile=65536 -p $$)`);
  }
  const kinds = a.servers.split(",").filter(Boolean) as ("bunturn" | "coturn")[];
  for (let run = 0; run < a.runs; run++) {
    for (const kind of kinds) {
      const server = await startServer({ kind, threads: a.threads, minPort: kind === "bunturn" ? 40000 : 50000, maxPort: kind === "bunturn" ? 49999 : 59999 });
      const clients = new TurnClients(server.port, max, { username: USER, password: PASSWORD });
      const base = { bench: "memory", server: kind, run, threads: a.threads, ...(kind === "coturn" ? { version: coturnVersion() } : {}) };
      const measure = async (phase: string, live: number, extra: Record<string, unknown> = {}) => {
        await Bun.sleep(a.settle);
        const r = { rssKiB: rssKiB(server.pid), fds: openFds(server.pid), osThreads: threads(server.pid) };
        emit({ ...base, phase, allocations: live, ...r, ...extra });
        return r;
      };
      try {
        const idle = await measure("idle", 0);
        let live = 0;
        for (const level of levels) {
          const t0 = Date.now();
          const got = clients.allocate(clients.clients.slice(live, level));
          live += got.length;
          const seconds = (Date.now() - t0) / 1000;
          await measure("live", live, { wanted: level, allocateSeconds: seconds, allocationsPerSecond: Math.round(got.length / seconds) });
        }
        const t0 = Date.now();
        const released = clients.release();
        const seconds = (Date.now() - t0) / 1000;
        const after = await measure("released", live - released.length, { released: released.length, releaseSeconds: seconds });
        emit({ ...base, phase: "left", fdsLeft: after.fds - idle.fds, rssKiBAboveIdle: after.rssKiB - idle.rssKiB });
      } finally {
        clients.close();
        await server.stop();
      }
    }
  }
}
