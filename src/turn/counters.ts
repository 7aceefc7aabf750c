/**
 * The protocol core's counters, in one table: each name, whether it only grows (counter) or goes up and
 * down (gauge), and what it counts. The `ProtocolCounters` type is derived from it, so a counter the core
 * bumps is in the table by construction; the engine lays its shared block out from it and the metrics
 * endpoint publishes every entry (src/engine/counters.ts, src/metrics/prometheus.ts). Plain numbers: a
 * bump is one store, no allocation.
 */

export type CounterKind = "counter" | "gauge";

export interface CounterSpec {
  readonly kind: CounterKind;
  /** What it counts, in one line (the Prometheus help where one metric shows it alone). */
  readonly help: string;
}

export const PROTOCOL_COUNTERS = {
  bindingRequests: { kind: "counter", help: "Incoming STUN Binding requests" },
  allocationsCreated: { kind: "counter", help: "Allocations created" },
  allocationsDeleted: { kind: "counter", help: "Allocations ended (Refresh 0, expiry, shutdown)" },
  unauthorized: { kind: "counter", help: "401 Unauthenticated responses (the first one of every authenticated exchange is normal)" },
  errorsSent: { kind: "counter", help: "STUN error responses sent (including 401s)" },
  clientToPeerPackets: { kind: "counter", help: "Packets sent to peers" },
  clientToPeerBytes: { kind: "counter", help: "Bytes sent to peers" },
  peerToClientPackets: { kind: "counter", help: "Peer datagrams relayed to clients" },
  peerToClientBytes: { kind: "counter", help: "Payload bytes relayed from peers to clients" },
  dropped: { kind: "counter", help: "Datagrams dropped: malformed, no allocation, no permission, over --max-bps" },
  bindingResponses: { kind: "counter", help: "Outgoing STUN Binding responses" },
  bindingErrors: { kind: "counter", help: "STUN Binding errors" },
  /** Every datagram a client sent to a listener, STUN or ChannelData, and its bytes. */
  clientPacketsIn: { kind: "counter", help: "Packets received from clients" },
  clientBytesIn: { kind: "counter", help: "Bytes received from clients" },
  /** Every datagram sent to clients: responses, ChannelData and Data indications, and their bytes. */
  clientPacketsOut: { kind: "counter", help: "Packets sent to clients" },
  clientBytesOut: { kind: "counter", help: "Bytes sent to clients" },
  /** Every datagram a peer sent to a relay socket, relayed or not, and its bytes. */
  peerPacketsIn: { kind: "counter", help: "Packets received from peers" },
  peerBytesIn: { kind: "counter", help: "Bytes received from peers" },
  /** A dual allocation holds one of each. */
  relays4: { kind: "gauge", help: "Relayed IPv4 transport addresses open now" },
  relays6: { kind: "gauge", help: "Relayed IPv6 transport addresses open now" },
  /** Stored as it changes, so a reader never sees a response before its count. */
  allocations: { kind: "gauge", help: "Allocations live now" },
  /** Withheld by the per-source rate limit (./source-rate-limit.ts). */
  unauthenticatedRateLimited: { kind: "counter", help: "Error responses to unauthenticated requests (401, 400, 420) not sent: their source IP address was over --unauthorized-ratelimit-rps" },
  /** RFC 8656 §7.2, RFC 8489 §10: Allocates answered 300 Try Alternate (./redirect.ts). */
  redirected: { kind: "counter", help: "Allocates answered 300 Try Alternate with ALTERNATE-SERVER" },
  /** coturn's drain: Allocates answered 403 while draining with no alternate server to send them to. */
  drainRefused: { kind: "counter", help: "Allocates refused (403) while draining" },
  /** RFC 6062 TCP relays (./tcp-allocations.ts). */
  tcpPeerConnections: { kind: "gauge", help: "TCP relay (RFC 6062) peer data connections open now: connecting, waiting for ConnectionBind, or bound" },
  tcpConnects: { kind: "counter", help: "TCP relay Connect requests that connected to their peer" },
  tcpConnectFailures: { kind: "counter", help: "TCP relay Connect requests answered 447: the peer refused, or 30 s passed" },
  tcpConnectionAttempts: { kind: "counter", help: "TCP relay ConnectionAttempt indications sent: a peer connected to a relayed address" },
  tcpConnectionBinds: { kind: "counter", help: "TCP relay ConnectionBind requests that joined a client data connection to its peer" },
  tcpUnboundExpired: { kind: "counter", help: "TCP relay peer data connections closed because no ConnectionBind came within 30 s" },
} as const satisfies Record<string, CounterSpec>;

export type ProtocolCounterName = keyof typeof PROTOCOL_COUNTERS;

/** Counters the core bumps; the engine exposes them (stats line, Prometheus). */
export type ProtocolCounters = { [Name in ProtocolCounterName]: number };

export const PROTOCOL_COUNTER_NAMES = Object.keys(PROTOCOL_COUNTERS) as ProtocolCounterName[];

/** Plain-object counters, every one at 0 (what a TurnServer uses when not handed shared storage). */
export function zeroCounters(): ProtocolCounters {
  const counters = {} as ProtocolCounters;
  for (const name of PROTOCOL_COUNTER_NAMES) counters[name] = 0;
  return counters;
}
