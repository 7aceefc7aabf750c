/**
 * `bun run bench <name> [options]`: the benchmark dispatcher. Each bench prints one JSON line per run
 * (and one summary line per configuration) on stdout; progress goes to stderr.
 */
import { UsageError } from "./lib/args.ts";

const benches: Record<string, { what: string; load: () => Promise<{ main(argv: string[]): Promise<void>; usage: string }> }> = {
  ab: { what: "A/B of --udp-recvmmsg off/on (or --udp-sendmmsg) under turnutils_uclient load", load: () => import("./ab.ts") },
  "vs-coturn": { what: "bunturn vs coturn's turnserver, identical uclient load, alternated", load: () => import("./vs-coturn.ts") },
  ceiling: { what: "closed-loop (window, burst) or call-shaped load: FFI forwarder, bunturn and coturn taking turns in one run", load: () => import("./ceiling.ts") },
  builds: { what: "A/B of two bunturn checkouts (--base DIR vs this one), with CPU per thread", load: () => import("./builds.ts") },
  hotpath: { what: "user-space ns per relayed datagram: the real engine with the kernel faked (--base DIR for A/B)", load: () => import("./hotpath.ts") },
  coldstart: { what: "the first seconds of traffic against the steady state, two configurations started and loaded side by side", load: () => import("./coldstart.ts") },
  "gro-single": { what: "kernel CPU per datagram of UDP_GRO / UDP_SEGMENT sockets when no train forms (one datagram in flight)", load: () => import("./gro-single.ts") },
  "under-load": { what: "one server under the call-shaped load with a command (strace, perf) attached to its pid", load: () => import("./under-load.ts") },
  "engine-scaling": { what: "relayed datagrams per second of N engines against one, each engine thread capped by a CPU cgroup (root)", load: () => import("./engine-scaling.ts") },
  memory: { what: "RSS and open fds with N live allocations, then after all are released", load: () => import("./memory.ts") },
};

function usage(): string {
  return [
    "usage: bun run bench <name> [options]    (bun run bench <name> --help for its options)",
    "",
    ...Object.entries(benches).map(([name, b]) => `  ${name.padEnd(10)} ${b.what}`),
  ].join("\n");
}

const [name, ...rest] = process.argv.slice(2);
if (!name || name === "--help" || name === "-h") {
  console.log(usage());
  process.exit(name ? 0 : 2);
}
const bench = benches[name];
if (!bench) {
  console.error(`unknown bench: ${name}\n\n${usage()}`);
  process.exit(2);
}
const mod = await bench.load();
if (rest.includes("--help") || rest.includes("-h")) {
  console.log(mod.usage);
  process.exit(0);
}
try {
  await mod.main(rest);
  process.exit(0);
} catch (error) {
  if (error instanceof UsageError) {
    console.error(`${error.message}\n\n${mod.usage}`);
    process.exit(2);
  }
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exit(1);
}
