/**
 * Which Prometheus metric publishes which counter of the engines' blocks (src/engine/counters.ts).
 * Names are coturn's where coturn has the metric (prom_server.c), `bunturn_*` otherwise; a metric's type
 * is its counters' kind and its help, unless given, its counter's help. Every counter of the block is
 * published at least once: the type check below refuses a table that leaves one out.
 */
import { COUNTERS, type CounterName } from "../engine/counters.ts";
import type { CounterKind } from "../turn/counters.ts";

type Sample = readonly [labels: string, counter: CounterName];

interface CounterFamily {
  readonly name: string;
  /** Absent: the help of its one counter. */
  readonly help?: string;
  /** One counter without labels, or labelled samples. */
  readonly samples: CounterName | readonly Sample[];
  /** The one sample carries coturn's realm label. */
  readonly byRealm?: true;
  /** One sample per engine (`engine="i"`), each from the engine's own block instead of the sum. */
  readonly perEngine?: true;
}

/** coturn's traffic metrics: `turn_traffic_<suffix>{realm}` and `turn_total_traffic_<suffix>`. */
const TRAFFIC = [
  ["rcvp", "clientPacketsIn"],
  ["rcvb", "clientBytesIn"],
  ["sentp", "clientPacketsOut"],
  ["sentb", "clientBytesOut"],
  ["peer_rcvp", "peerPacketsIn"],
  ["peer_rcvb", "peerBytesIn"],
  ["peer_sentp", "clientToPeerPackets"],
  ["peer_sentb", "clientToPeerBytes"],
] as const satisfies ReadonlyArray<readonly [string, CounterName]>;

const FAMILIES = [
  { name: "turn_total_allocations", help: "Represents current allocations number", samples: [['type="UDP"', "allocations"]] },
  { name: "bunturn_relay_addresses", help: "Relayed transport addresses open now, by family (a dual allocation has one of each)", samples: [['family="ipv4"', "relays4"], ['family="ipv6"', "relays6"]] },
  { name: "bunturn_allocations_created_total", samples: "allocationsCreated" },
  { name: "bunturn_allocations_deleted_total", samples: "allocationsDeleted" },
  { name: "stun_binding_request", samples: "bindingRequests" },
  { name: "stun_binding_response", samples: "bindingResponses" },
  { name: "stun_binding_error", samples: "bindingErrors" },
  // coturn adds a session's traffic when it ends; bunturn counts as it goes (see docs/metrics.md).
  ...TRAFFIC.map(([suffix, counter]) => ({ name: `turn_traffic_${suffix}`, help: `${COUNTERS[counter].help}, by realm`, samples: counter, byRealm: true as const })),
  ...TRAFFIC.map(([suffix, counter]) => ({ name: `turn_total_traffic_${suffix}`, samples: counter })),
  { name: "bunturn_relayed_packets_total", help: "Datagrams relayed, by direction", samples: [['direction="client_to_peer"', "clientToPeerPackets"], ['direction="peer_to_client"', "peerToClientPackets"]] },
  { name: "bunturn_relayed_bytes_total", help: "Payload bytes relayed (without ChannelData or Data indication framing), by direction", samples: [['direction="client_to_peer"', "clientToPeerBytes"], ['direction="peer_to_client"', "peerToClientBytes"]] },
  { name: "bunturn_unauthorized_total", samples: "unauthorized" },
  { name: "bunturn_allocates_turned_away_total", help: "Allocates not served here: reason=alternate (300 Try Alternate), reason=draining (403 while draining)", samples: [['reason="alternate"', "redirected"], ['reason="draining"', "drainRefused"]] },
  { name: "bunturn_error_responses_total", samples: "errorsSent" },
  { name: "bunturn_unauthenticated_responses_limited_total", samples: "unauthenticatedRateLimited" },
  { name: "bunturn_packets_dropped_total", help: "Datagrams dropped: protocol = malformed, no allocation, no permission, over --max-bps; ttl = arrived with TTL 0", samples: [['reason="protocol"', "dropped"], ['reason="ttl"', "ttlDropped"]] },
  { name: "bunturn_icmp_errors_total", samples: "icmpErrors" },
  { name: "bunturn_engine_crashes_total", samples: "crashes" },
  { name: "bunturn_relay_sockets", samples: "relaySockets" },
  { name: "bunturn_tcp_connections", samples: "tcpConnections" },
  { name: "bunturn_tcp_connections_refused_total", samples: "tcpRefused" },
  { name: "bunturn_tcp_connections_closed_by_limit_total", samples: "tcpClosedByLimit" },
  { name: "bunturn_tcp_listener_parked_total", samples: "tcpListenerParked" },
  { name: "bunturn_tcp_relay_connections", samples: "tcpPeerConnections" },
  { name: "bunturn_tcp_relay_connects_total", help: "TCP relay Connect requests by outcome: ok (CONNECTION-ID), failed (447)", samples: [['result="ok"', "tcpConnects"], ['result="failed"', "tcpConnectFailures"]] },
  { name: "bunturn_tcp_relay_connection_attempts_total", samples: "tcpConnectionAttempts" },
  { name: "bunturn_tcp_relay_binds_total", samples: "tcpConnectionBinds" },
  { name: "bunturn_tcp_relay_unbound_expired_total", samples: "tcpUnboundExpired" },
  { name: "bunturn_tcp_relay_refused_total", samples: "tcpRelayRefused" },
  { name: "bunturn_tcp_relay_handoffs_total", samples: "tcpRelayHandoffs" },
  { name: "bunturn_tcp_relay_buffered_bytes", samples: "tcpRelayBuffered" },
  { name: "bunturn_tcp_relay_bytes_total", help: "Bytes piped between TCP relay data connections, by direction", samples: [['direction="client_to_peer"', "tcpRelayBytesToPeer"], ['direction="peer_to_client"', "tcpRelayBytesToClient"]] },
  { name: "bunturn_dtls_sessions", samples: "dtlsSessions" },
  { name: "bunturn_dtls_hello_verify_requests_total", samples: "dtlsHelloVerifies" },
  { name: "bunturn_dtls_handshakes_total", samples: "dtlsHandshakes" },
  { name: "bunturn_dtls_failures_total", samples: "dtlsFailed" },
  { name: "bunturn_dtls_refused_total", samples: "dtlsRefused" },
  { name: "bunturn_dtls_closed_by_timeout_total", samples: "dtlsClosedByTimeout" },
  { name: "bunturn_tls_handshakes_total", samples: "tlsHandshakes" },
  { name: "bunturn_tls_kernel_connections_total", samples: "tlsKernel" },
  { name: "turn_udp_recvmmsg_calls", samples: "calls" },
  { name: "turn_udp_recvmmsg_packets", samples: "packets" },
  { name: "bunturn_udp_recvmmsg_wouldblock_total", samples: "wouldblock" },
  { name: "bunturn_udp_recvmmsg_unavailable_total", samples: "unavailable" },
  { name: "bunturn_udp_recvmmsg_no_buffer_total", samples: "noBuffer" },
  { name: "bunturn_udp_recvmmsg_batches_total", help: "recvmmsg calls by number of datagrams returned", samples: [['size="1"', "hist1"], ['size="2"', "hist2"], ['size="3-4"', "hist3to4"], ['size="5-8"', "hist5to8"], ['size="9-16"', "hist9to16"]] },
  { name: "turn_udp_sendmmsg_flushes", samples: "sendCalls" },
  { name: "turn_udp_sendmmsg_datagrams", samples: "sendPackets" },
  { name: "bunturn_udp_send_errors_total", samples: "sendErrors" },
  { name: "bunturn_udp_sendmmsg_unavailable_total", samples: "sendUnavailable" },
  { name: "bunturn_udp_send_refused_total", samples: "sendRefused" },
  { name: "bunturn_udp_receive_segments_total", samples: "segments" },
  { name: "bunturn_udp_gro_buffers_total", samples: "groBuffers" },
  { name: "bunturn_udp_gso_sends_total", samples: "gsoSends" },
  { name: "bunturn_udp_gso_segments_total", samples: "gsoSegments" },
  { name: "bunturn_udp_gso_refused_total", samples: "gsoRefused" },
  { name: "bunturn_udp_gso_disabled_total", samples: "gsoDisabled" },
  { name: "bunturn_engine_allocations", help: "Allocations per relay engine (thread)", samples: "allocations", perEngine: true },
  { name: "bunturn_engine_relay_sockets", help: "Relay sockets per relay engine (thread)", samples: "relaySockets", perEngine: true },
] as const satisfies readonly CounterFamily[];

type CountersOf<F> = F extends { readonly samples: infer S }
  ? S extends CounterName ? S : S extends ReadonlyArray<readonly [string, infer C]> ? C : never
  : never;
/** Counters no metric publishes: must be none (a missing one is named in the type error). */
type Unpublished = Exclude<CounterName, CountersOf<(typeof FAMILIES)[number]>>;
const everyCounterIsPublished: Record<Unpublished, never> = {};
void everyCounterIsPublished;

export interface MetricFamily {
  readonly name: string;
  readonly kind: CounterKind;
  readonly help: string;
  /** Labels (without the realm or engine label) and the counter of each sample. */
  readonly samples: readonly Sample[];
  readonly byRealm: boolean;
  readonly perEngine: boolean;
}

/** The table resolved once: kinds and helps from the counters, one shape for every family. */
export const METRIC_FAMILIES: readonly MetricFamily[] = (FAMILIES as readonly CounterFamily[]).map((f) => {
  const samples: readonly Sample[] = typeof f.samples === "string" ? [["", f.samples]] : f.samples;
  const kind = COUNTERS[samples[0]![1]].kind;
  if (samples.some(([, counter]) => COUNTERS[counter].kind !== kind)) throw new Error(`metric ${f.name} mixes counters and gauges`);
  const help = f.help ?? COUNTERS[samples[0]![1]].help;
  return { name: f.name, kind, help, samples, byRealm: f.byRealm === true, perEngine: f.perEngine === true };
});
