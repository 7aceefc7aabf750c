/**
 * The shared counter block of one engine: the ffi batch statistics first, then the protocol counters
 * and gauges. The Worker writes, the main thread reads (stats line, metrics, tests); Float64 slots in a
 * SharedArrayBuffer, so publishing costs no copies and no messages.
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
  "allocations",
] as const satisfies ReadonlyArray<keyof ProtocolCounters>;

export const GAUGE = {
  relaySockets: STAT_COUNT + PROTOCOL_COUNTER_NAMES.length,
  icmpErrors: STAT_COUNT + PROTOCOL_COUNTER_NAMES.length + 1,
  ttlDropped: STAT_COUNT + PROTOCOL_COUNTER_NAMES.length + 2,
  crashes: STAT_COUNT + PROTOCOL_COUNTER_NAMES.length + 3,
} as const;

export const ENGINE_SLOTS = STAT_COUNT + PROTOCOL_COUNTER_NAMES.length + 4;

export function protocolSlot(name: (typeof PROTOCOL_COUNTER_NAMES)[number]): number {
  return STAT_COUNT + PROTOCOL_COUNTER_NAMES.indexOf(name);
}

/**
 * The protocol core's counters stored in an engine's shared block: each field is an accessor on its
 * Float64 slot, so the core's `counters.x++` is a store the main thread can read at once, and nothing is
 * copied per loop turn (the JIT inlines the accessors). The slots must start at 0.
 */
class SharedProtocolCounters {
  constructor(readonly block: Float64Array) {}
}
PROTOCOL_COUNTER_NAMES.forEach((name, i) => {
  const slot = STAT_COUNT + i;
  Object.defineProperty(SharedProtocolCounters.prototype, name, {
    get(this: SharedProtocolCounters) {
      return this.block[slot]!;
    },
    set(this: SharedProtocolCounters, value: number) {
      this.block[slot] = value;
    },
  });
});

export function sharedProtocolCounters(block: Float64Array): ProtocolCounters {
  return new SharedProtocolCounters(block) as unknown as ProtocolCounters;
}

export function engineBlocks(shared: SharedArrayBuffer, engines: number): Float64Array[] {
  return Array.from({ length: engines }, (_, i) => new Float64Array(shared, i * ENGINE_SLOTS * 8, ENGINE_SLOTS));
}

/** Sums whole engine blocks, every slot: batch statistics, protocol counters and gauges. */
export function sumEngineBlocks(blocks: readonly Float64Array[], into = new Float64Array(ENGINE_SLOTS)): Float64Array {
  into.fill(0);
  for (const b of blocks) for (let i = 0; i < ENGINE_SLOTS; i++) into[i]! += b[i]!;
  return into;
}
