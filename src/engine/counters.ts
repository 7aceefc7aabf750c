/**
 * The shared counter block of one engine: the ffi batch statistics first, then the protocol counters
 * and gauges. The Worker writes, the main thread reads (stats line, metrics, tests); Float64 slots in a
 * SharedArrayBuffer, so publishing is a few stores per loop turn and no messages.
 */
import { STAT_COUNT } from "../../ffi/stats.ts";
import type { ProtocolCounters } from "../turn/api.ts";

export const PROTOCOL_COUNTER_NAMES = [
  "bindingRequests",
  "allocationsCreated",
  "allocationsDeleted",
  "unauthorized",
  "errorsSent",
  "clientToPeerPackets",
  "clientToPeerBytes",
  "peerToClientPackets",
  "peerToClientBytes",
  "dropped",
  "bindingResponses",
  "bindingErrors",
  "clientPacketsIn",
  "clientBytesIn",
  "clientPacketsOut",
  "clientBytesOut",
  "peerPacketsIn",
  "peerBytesIn",
  "relays4",
  "relays6",
] as const satisfies ReadonlyArray<keyof ProtocolCounters>;

export const GAUGE = {
  allocations: STAT_COUNT + PROTOCOL_COUNTER_NAMES.length,
  relaySockets: STAT_COUNT + PROTOCOL_COUNTER_NAMES.length + 1,
  icmpErrors: STAT_COUNT + PROTOCOL_COUNTER_NAMES.length + 2,
  ttlDropped: STAT_COUNT + PROTOCOL_COUNTER_NAMES.length + 3,
  crashes: STAT_COUNT + PROTOCOL_COUNTER_NAMES.length + 4,
} as const;

export const ENGINE_SLOTS = STAT_COUNT + PROTOCOL_COUNTER_NAMES.length + 5;

export function protocolSlot(name: (typeof PROTOCOL_COUNTER_NAMES)[number]): number {
  return STAT_COUNT + PROTOCOL_COUNTER_NAMES.indexOf(name);
}

/**
 * Copies the protocol counters into their slots. Runs every loop turn, so it is generated once with one
 * fixed property access per counter: a loop over the names (`counters[name]`) is a keyed lookup per
 * field, several times slower (bench/publish.ts).
 */
export const publishProtocolCounters = new Function(
  "counters",
  "block",
  PROTOCOL_COUNTER_NAMES.map((name, i) => `block[${STAT_COUNT + i}] = counters.${name};`).join("\n"),
) as (counters: ProtocolCounters, block: Float64Array) => void;

export function engineBlocks(shared: SharedArrayBuffer, engines: number): Float64Array[] {
  return Array.from({ length: engines }, (_, i) => new Float64Array(shared, i * ENGINE_SLOTS * 8, ENGINE_SLOTS));
}

/** Sums whole engine blocks, every slot: batch statistics, protocol counters and gauges. */
export function sumEngineBlocks(blocks: readonly Float64Array[], into = new Float64Array(ENGINE_SLOTS)): Float64Array {
  into.fill(0);
  for (const b of blocks) for (let i = 0; i < ENGINE_SLOTS; i++) into[i]! += b[i]!;
  return into;
}
