#!/usr/bin/env bun
/**
 * bunturn as the e2e tests run it (the same RelayServer, engines and option parsing as src/cli/main.ts),
 * plus one test-only window onto its shared counters: on SIGUSR2 it prints one line
 * `STATS {json}` with every engine's counters summed, the relay ports taken and its pid. The tests
 * read the server process's RSS and fds from /proc themselves.
 */
import { parseArgv } from "../../src/cli/argv.ts";
import { resolveConfig } from "../../src/config/resolve.ts";
import { ENGINE_SLOTS, GAUGE, PROTOCOL_COUNTER_NAMES, protocolSlot } from "../../src/engine/counters.ts";
import { RelayServer } from "../../src/engine/relay-server.ts";
import { STAT } from "../../ffi/stats.ts";

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
  // Summed here over every slot of every engine's block (RelayServer.totals() once summed only the
  // batch statistics, which would have hidden the crash counter).
  const blocks = (server as unknown as { blocks: Float64Array[] }).blocks;
  const t = new Float64Array(ENGINE_SLOTS);
  for (const b of blocks) for (let i = 0; i < ENGINE_SLOTS; i++) t[i]! += b[i]!;
  const protocol: Record<string, number> = {};
  for (const name of PROTOCOL_COUNTER_NAMES) protocol[name] = t[protocolSlot(name)]!;
  const stats: ServerStats = {
    pid: process.pid,
    relayPortsInUse: server.relayPortsInUse,
    allocations: t[protocolSlot("allocations")]!,
    relaySockets: t[GAUGE.relaySockets]!,
    icmpErrors: t[GAUGE.icmpErrors]!,
    ttlDropped: t[GAUGE.ttlDropped]!,
    crashes: t[GAUGE.crashes]!,
    packets: t[STAT.packets]!,
    calls: t[STAT.calls]!,
    noBuffer: t[STAT.noBuffer]!,
    sendPackets: t[STAT.sendPackets]!,
    sendErrors: t[STAT.sendErrors]!,
    protocol,
  };
  if (blocks.length !== config.relayThreads) throw new Error("engine counter blocks not found");
  console.log(`STATS ${JSON.stringify(stats)}`);
});
const stop = () => server.stop().then(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
