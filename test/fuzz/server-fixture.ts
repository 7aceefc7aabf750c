#!/usr/bin/env bun
/**
 * bunturn as the e2e tests run it (the same RelayServer, engines and option parsing as src/cli/main.ts),
 * plus one test-only window onto its shared counters: on SIGUSR2 it prints one line
 * `STATS {json}` with every engine's counters summed, the relay ports taken and its pid; on SIGUSR1 one
 * line `HEAP {json}` with each engine's heap census (RelayServer.heapCensus: what survives a full
 * collection). The tests read the server process's RSS and fds from /proc themselves.
 */
import { parseArgv } from "../../src/cli/argv.ts";
import { resolveConfig } from "../../src/config/resolve.ts";
import { SLOT } from "../../src/engine/counters.ts";
import { PROTOCOL_COUNTER_NAMES } from "../../src/turn/counters.ts";
import { RelayServer } from "../../src/engine/relay-server.ts";

const logger = {
  info: (m: string) => console.log(`[info] ${m}`),
  warn: (m: string) => console.log(`[warn] ${m}`),
  error: (m: string) => console.log(`[error] ${m}`),
  debug: (m: string) => console.log(`[debug] ${m}`),
};

const config = resolveConfig(parseArgv(process.argv.slice(2)).raw);
const server = await RelayServer.start(config, logger);
console.log(`[info] fixture listening on ${server.listeners.join(", ")} (${config.relayThreads} engine(s))`);

export interface ServerStats {
  pid: number;
  relayPortsInUse: number;
  allocations: number;
  relaySockets: number;
  icmpErrors: number;
  ttlDropped: number;
  crashes: number;
  packets: number;
  calls: number;
  noBuffer: number;
  sendPackets: number;
  sendErrors: number;
  protocol: Record<string, number>;
}

process.on("SIGUSR2", () => {
  // Every slot of every engine's block, summed (the crash counter included).
  const t = server.totals();
  const protocol: Record<string, number> = {};
  for (const name of PROTOCOL_COUNTER_NAMES) protocol[name] = t[SLOT[name]]!;
  const stats: ServerStats = {
    pid: process.pid,
    relayPortsInUse: server.relayPortsInUse,
    allocations: t[SLOT.allocations]!,
    relaySockets: t[SLOT.relaySockets]!,
    icmpErrors: t[SLOT.icmpErrors]!,
    ttlDropped: t[SLOT.ttlDropped]!,
    crashes: t[SLOT.crashes]!,
    packets: t[SLOT.packets]!,
    calls: t[SLOT.calls]!,
    noBuffer: t[SLOT.noBuffer]!,
    sendPackets: t[SLOT.sendPackets]!,
    sendErrors: t[SLOT.sendErrors]!,
    protocol,
  };
  if (server.engineCounters().length !== config.relayThreads) throw new Error("engine counter blocks not found");
  console.log(`STATS ${JSON.stringify(stats)}`);
});
process.on("SIGUSR1", () => {
  server.heapCensus().then(
    (engines) => console.log(`HEAP ${JSON.stringify(engines)}`),
    (error: Error) => console.log(`HEAP failed: ${error.message}`),
  );
});
const stop = () => server.stop().then(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
