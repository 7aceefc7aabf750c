/**
 * Memory and fds with many live allocations: for each server (bunturn, coturn), VmRSS and open fds
 * (/proc/PID/status, /proc/PID/fd) idle, with --levels live allocations (one UDP socket per allocation,
 * authenticated Allocate through bench/lib/turn-client.ts), then after Refresh LIFETIME=0 for all.
 * One JSON line per measurement; `left` lines say what stayed behind after the release (must be 0 fds;
 * fdsLeftAtSettle is the count at the `released` measurement, before waiting up to 10 s for late closes).
 *
 * Both servers get the same relay range, by default one from test/ports.ts as large as the top level:
 * outside the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 here) that the
 * driver's own sockets (port 0) get their ports from, and apart from the listener. With a relay range inside the
 * ephemeral range the driver holds some of the relay ports, the server's bind() fails on them
 * (EADDRINUSE) and coturn logs two lines per failure to its stdout/stderr; the driver's synchronous
 * transaction loop does not let the event loop drain those pipes, so coturn's relay threads block in
 * write() once the socket buffer is full and stop answering. The script refuses overlapping ranges and
 * reports, per server, how many driver ports fell in the relay range and how many bind failures the
 * server logged (both must be 0).
 */
import { readFileSync } from "node:fs";
import { describeArgs, numberList, parseArgs, type ArgSpec } from "./lib/args.ts";
import { ephemeralRange, openFds, relayRange, rssKiB, threads } from "./lib/proc.ts";
import { PASSWORD, USER, coturnVersion, startServer } from "./lib/servers.ts";
import { emit } from "./lib/stats.ts";
import { TurnClients } from "./lib/turn-client.ts";

export const spec = {
  servers: { default: "bunturn,coturn", help: "which servers, in order" },
  levels: { default: "1000,5000", help: "live allocation counts to measure, increasing" },
  runs: { default: 1, help: "rounds (servers alternated within each)" },
  threads: { default: 2, help: "--relay-threads" },
  settle: { default: 1000, help: "ms to wait before each measurement" },
  minPort: { default: 0, help: "relay range start, both servers (must be outside the ephemeral range; 0: one test/ports.ts picks)" },
  maxPort: { default: 0, help: "relay range end, both servers (with --minPort)" },
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
  if (a.minPort === 0) [a.minPort, a.maxPort] = relayRange(max);
  const [ephLo, ephHi] = ephemeralRange();
  if (a.minPort <= ephHi && a.maxPort >= ephLo) {
    throw new Error(`relay range ${a.minPort}-${a.maxPort} overlaps the ephemeral range ${ephLo}-${ephHi} the driver's sockets use: pick one outside it (--minPort/--maxPort)`);
  }
  if (a.maxPort - a.minPort + 1 < max) throw new Error(`relay range ${a.minPort}-${a.maxPort} is smaller than ${max} allocations`);
  const kinds = a.servers.split(",").filter(Boolean) as ("bunturn" | "coturn")[];
  for (let run = 0; run < a.runs; run++) {
    for (const kind of kinds) {
      const server = await startServer({ kind, threads: a.threads, minPort: a.minPort, maxPort: a.maxPort });
      const clients = new TurnClients(server.port, max, { username: USER, password: PASSWORD });
      const base = {
        bench: "memory", server: kind, run, threads: a.threads, relayPorts: `${a.minPort}-${a.maxPort}`,
        ...(kind === "coturn" ? { version: coturnVersion() } : {}),
      };
      const driverPortsInRelayRange = clients.clients.filter((c) => c.port >= a.minPort && c.port <= a.maxPort).length;
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
        // coturn closes released relay sockets on its own timer, a second or more after answering the
        // Refresh: wait (up to 10 s) for the fds to come back to idle before calling any left over.
        const waitStart = Date.now();
        let fds = after.fds;
        while (fds > idle.fds && Date.now() - waitStart < 10000) {
          await Bun.sleep(100);
          fds = openFds(server.pid);
        }
        const bindFailures = (server.output().match(/Address already in use|EADDRINUSE/g) ?? []).length;
        emit({
          ...base, phase: "left", fdsLeft: fds - idle.fds, fdsLeftAtSettle: after.fds - idle.fds, fdsWaitMs: Date.now() - waitStart,
          rssKiBAboveIdle: after.rssKiB - idle.rssKiB, driverPortsInRelayRange, bindFailures,
        });
      } finally {
        clients.close();
        await server.stop();
      }
    }
  }
}
