/**
 * The shared counter block of one engine, composed from three tables: ffi's batch statistics first
 * (ffi writes them from slot 0), then the protocol core's counters, then the engine's own. `COUNTERS` is
 * that composition: one name, kind and help per slot, read by the stats line, the metrics endpoint and
 * the tests. The Worker writes, the main thread reads; Float64 slots in a SharedArrayBuffer, so
 * publishing costs no copies and no messages.
 */
import { BATCH_STATS, STAT_COUNT, slotsInOrder } from "../../ffi/stats.ts";
import { PROTOCOL_COUNTERS, PROTOCOL_COUNTER_NAMES, type CounterSpec, type ProtocolCounters } from "../turn/counters.ts";

/** What the engine itself counts: its sockets, the error queues, TTL and its own failures. */
export const ENGINE_COUNTERS = {
  relaySockets: { kind: "gauge", help: "Relay sockets open now" },
  icmpErrors: { kind: "counter", help: "ICMP errors read from socket error queues" },
  ttlDropped: { kind: "counter", help: "Datagrams dropped because they arrived with TTL 0" },
  crashes: { kind: "counter", help: "Exceptions caught in an engine's loop (a bug: the datagrams in hand were lost)" },
  tcpConnections: { kind: "gauge", help: "TCP and TLS client connections open now in the engines" },
  tcpRefused: { kind: "counter", help: "TCP and TLS connections reset at accept: over --max-tcp-connections or --max-tcp-connections-per-ip" },
  tcpClosedByLimit: { kind: "counter", help: "TCP and TLS connections closed for a limit: buffered bytes, a timeout, a first message that is not STUN" },
  tcpListenerParked: { kind: "counter", help: "Times a TCP listener was parked for 100 ms because accept ran out of descriptors or memory" },
  /** RFC 6062 TCP relays (./tcp-relay-pipes.ts, ./tcp-relay-peer.ts). */
  tcpRelayBuffered: { kind: "gauge", help: "Bytes TCP relay connections hold for a side that reads slower than the other sends (at most --max-tcp-buffer per connection)" },
  tcpRelayBytesToPeer: { kind: "counter", help: "Bytes piped from clients' data connections to TCP peers" },
  tcpRelayBytesToClient: { kind: "counter", help: "Bytes piped from TCP peers to clients' data connections" },
  tcpRelayHandoffs: { kind: "counter", help: "TCP relay data connections whose ConnectionBind reached another engine, moved to the engine holding their peer connection" },
  tcpRelayRefused: { kind: "counter", help: "Connections to a TCP relayed address closed at once: no permission for the peer's IP, or no room" },
  dtlsSessions: { kind: "gauge", help: "DTLS associations held now (in their handshake or established); none before a client's cookie proves its address" },
  dtlsHelloVerifies: { kind: "counter", help: "DTLS ClientHellos answered with a HelloVerifyRequest (the stateless cookie exchange)" },
  dtlsHandshakes: { kind: "counter", help: "DTLS handshakes completed" },
  dtlsFailed: { kind: "counter", help: "DTLS associations or records that failed in OpenSSL (a bad handshake, a record that does not decrypt)" },
  dtlsRefused: { kind: "counter", help: "DTLS clients dropped after their cookie proved their address, because the engine held --dtls-max-sessions associations" },
  dtlsClosedByTimeout: { kind: "counter", help: "DTLS associations closed for a timeout: an unfinished handshake, or silence without an allocation" },
  tlsHandshakes: { kind: "counter", help: "TLS handshakes completed in the engines" },
  tlsKernel: { kind: "counter", help: "TLS connections whose records the kernel encrypts and decrypts (kTLS)" },
} as const satisfies Record<string, CounterSpec>;

type Tables = typeof BATCH_STATS & typeof PROTOCOL_COUNTERS & typeof ENGINE_COUNTERS;
export type CounterName = keyof Tables;

/** Two tables sharing a name would give two counters one slot: the type refuses it. */
type Shared = (keyof typeof BATCH_STATS & keyof typeof PROTOCOL_COUNTERS) |
  (keyof typeof BATCH_STATS & keyof typeof ENGINE_COUNTERS) |
  (keyof typeof PROTOCOL_COUNTERS & keyof typeof ENGINE_COUNTERS);
const namesAreDistinct: [Shared] extends [never] ? true : Shared = true;
void namesAreDistinct;

/** Every counter of the block, in slot order. */
export const COUNTERS: { readonly [Name in CounterName]: CounterSpec } = { ...BATCH_STATS, ...PROTOCOL_COUNTERS, ...ENGINE_COUNTERS };
export const COUNTER_NAMES = Object.keys(COUNTERS) as CounterName[];

/** Slot of each counter in a block. ffi's statistics keep their own indices (they come first). */
export const SLOT = slotsInOrder(COUNTERS);
/** Float64 slots per engine block. */
export const BLOCK_SLOTS = COUNTER_NAMES.length;

if (SLOT.calls !== 0 || SLOT.bindingRequests !== STAT_COUNT) throw new Error("counter block: ffi's statistics must come first");

/**
 * The protocol core's counters stored in an engine's shared block: each field is an accessor on its
 * Float64 slot, so the core's `counters.x++` is a store the main thread can read at once, and nothing is
 * copied per loop turn (the JIT inlines the accessors). The slots must start at 0.
 */
class SharedProtocolCounters {
  constructor(readonly block: Float64Array) {}
}
for (const name of PROTOCOL_COUNTER_NAMES) {
  const slot = SLOT[name];
  Object.defineProperty(SharedProtocolCounters.prototype, name, {
    get(this: SharedProtocolCounters) {
      return this.block[slot]!;
    },
    set(this: SharedProtocolCounters, value: number) {
      this.block[slot] = value;
    },
  });
}

export function sharedProtocolCounters(block: Float64Array): ProtocolCounters {
  return new SharedProtocolCounters(block) as unknown as ProtocolCounters;
}

/** One block per engine, side by side in `shared`. */
export function counterBlocks(shared: SharedArrayBuffer, engines: number): Float64Array[] {
  return Array.from({ length: engines }, (_, i) => new Float64Array(shared, i * BLOCK_SLOTS * 8, BLOCK_SLOTS));
}

/** Sums whole engine blocks, every slot: batch statistics, protocol counters and engine counters. */
export function sumCounterBlocks(blocks: readonly Float64Array[], into = new Float64Array(BLOCK_SLOTS)): Float64Array {
  into.fill(0);
  for (const b of blocks) for (let i = 0; i < BLOCK_SLOTS; i++) into[i]! += b[i]!;
  return into;
}
