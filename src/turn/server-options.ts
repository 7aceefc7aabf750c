/**
 * What an embedder hands a TurnServer: the realm, credentials and nonce key, the lifetimes and limits,
 * coturn's switches, and the hooks into the engine (relay sockets, sink, quota, admission). Kept apart
 * from ./state.ts, which turns these into the running core's fields, so that the contract an engine fills
 * in reads on its own. Defaults are applied there and documented here.
 */
import type {
  AllocateAdmission, AllocationQuota, CredentialStore, NatDiscovery, ProtocolCounters, RelayAllocator, TcpRelayIo, TurnSink,
} from "./api.ts";
import type { PeerJudge } from "./peer-policy.ts";
import type { SessionInfo, StreamKind } from "./sessions.ts";

export interface TurnServerOptions {
  realm: string;
  /** SOFTWARE attribute in responses, e.g. "bunturn". */
  software?: string;
  /** null = no authentication (coturn without --lt-cred-mech). */
  credentials: CredentialStore | null;
  /** HMAC key for stateless nonces; the same on every engine. */
  nonceSecret: Uint8Array;
  nonceLifetimeSeconds?: number;
  defaultLifetimeSeconds?: number;
  /** coturn --max-allocate-lifetime. */
  maxLifetimeSeconds?: number;
  permissionLifetimeSeconds?: number;
  channelLifetimeSeconds?: number;
  peerPolicy: PeerJudge;
  relays: RelayAllocator;
  sink: TurnSink;
  /** 486 hook (RFC 8656 §7.2); absent = unlimited. */
  quota?: AllocationQuota;
  /** 300 Try Alternate and drain (./redirect.ts); absent = every Allocate is served here. */
  admission?: AllocateAdmission;
  /**
   * coturn --max-bps: bytes per second one allocation may relay in each direction (client->peer and
   * peer->client are counted separately, as coturn does); datagrams beyond it are dropped. 0/absent = unlimited.
   */
  maxBytesPerSecond?: number;
  /**
   * Offer PASSWORD-ALGORITHMS and the nonce cookie (RFC 8489 §9.2.1). Default true. Turning it off keeps
   * 401s 12 bytes smaller and presents a plain RFC 5389 server.
   */
  passwordAlgorithms?: boolean;
  /**
   * Beyond this many permissions an allocation's CreatePermission or ChannelBind gets 508 (RFC 8656 §9.2,
   * §11.2). Default 1000 (coturn caps at 1024): a client talks to a handful of peer hosts.
   */
  maxPermissionsPerAllocation?: number;
  /** Beyond this many channels an allocation's ChannelBind for a new one gets 508 (RFC 8656 §11.2). Default 1000. */
  maxChannelsPerAllocation?: number;
  /**
   * Channel numbers ChannelBind accepts: "rfc5766" = 0x4000-0x7FFF (coturn, and what turnutils_uclient
   * picks from), "rfc8656" = 0x4000-0x4FFF only. Default "rfc5766".
   */
  channelRange?: "rfc5766" | "rfc8656";
  /**
   * coturn --unauthorized-ratelimit-rps: error responses per second one source IP address may get to
   * requests that prove no key (./source-rate-limit.ts). 0/absent = no limit.
   */
  unauthenticatedRateLimit?: number;
  /** Relay family of an Allocate without REQUESTED-ADDRESS-FAMILY: "keep" = the client's (coturn -A/-K). Default ipv4. */
  defaultFamily?: "ipv4" | "ipv6" | "keep";
  /** coturn --no-udp-relay: UDP relays are refused with 442. */
  noUdpRelay?: boolean;
  /** RFC 6062 TCP relays: the engine's connections; absent = TCP allocations get 442 (coturn --no-tcp-relay). */
  tcpRelays?: TcpRelayIo;
  /** RFC 6062 §5.2-5.3's 30 s (a Connect's attempt, a connection waiting for ConnectionBind); for tests only. */
  tcpConnectionTimeoutMs?: number;
  /** coturn --stun-only: TURN requests get 400. */
  stunOnly?: boolean;
  /** coturn --no-stun: Binding requests are not answered. */
  noStun?: boolean;
  /** coturn --rfc5780: the listeners' alternate addresses (RFC 5780); absent = off. */
  natDiscovery?: NatDiscovery;
  /**
   * Where the counters live, all starting at 0 (default: a plain object). An engine passes storage that
   * its readers see directly (shared memory), so nothing has to be copied out after each datagram.
   */
  counters?: ProtocolCounters;
  /**
   * Told once when an allocation ends, however it ends (expiry, Refresh 0, its connection closing, an
   * operator's kill, shutdown), with what it relayed: the usage record for billing. Absent = nobody asked.
   */
  allocationEnded?(session: SessionInfo): void;
  /** Whether a connection is TCP or TLS, for the sessions list and usage records; absent = "tcp". */
  streamKind?: StreamKind;
}
