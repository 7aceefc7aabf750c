/**
 * Builds the protocol core of one engine from the resolved configuration: credentials, peer policy,
 * the cross-engine quota and the counters in the engine's shared block. The engine receives the core
 * ready-made (see Engine's constructor), so a test or bench can build or wrap its own.
 */
import type { RelayConfig } from "../config/resolve.ts";
import type { ConnectionId, NatDiscovery, RelayAllocator, TcpRelayIo, TurnSink } from "../turn/api.ts";
import { CONTROL_CELLS, EngineAdmission } from "./admission.ts";
import type { SessionInfo } from "../turn/sessions.ts";
import { PeerPolicy, type PeerJudge } from "../turn/peer-policy.ts";
import { LivePeerPolicy } from "../userdb/peer-tables.ts";
import { TurnServer } from "../turn/server.ts";
import { credentialStoreFor } from "./credentials.ts";
import { sharedProtocolCounters } from "./counters.ts";
import { SharedQuota, localAllocations, type QuotaShared } from "./quota.ts";

export interface CoreInputs {
  config: RelayConfig;
  /** The engine's shared counter block (the core's counters are accessors on its slots). */
  counters: Float64Array;
  nonceSecret: Uint8Array;
  quota: QuotaShared;
  /** The main thread's control cells (./admission.ts: stop, drain); absent = never draining. */
  control?: Int32Array;
  /** The fleet's redirect target (./fleet-redirect.ts), with --fleet-redis; absent = no fleet. */
  fleetRedirect?: Int32Array;
}

/** What the engine hands the core: where output goes and where relay sockets come from. */
export interface CoreIo {
  sink: TurnSink;
  relays: RelayAllocator;
  /** Whether a TCP connection is TLS (for --tls-alternate-server). */
  isTls?(connection: ConnectionId): boolean;
  /** Whether a connection is a DTLS association (for the sessions list and usage records). */
  isDtls?(connection: ConnectionId): boolean;
  /** Each allocation's end, with what it relayed (the usage record). */
  allocationEnded?(session: SessionInfo): void;
  /** --rfc5780: the engine's listeners by address (src/turn/nat-discovery.ts). */
  natDiscovery?: NatDiscovery;
  /** RFC 6062 TCP relays; absent = refused (442). */
  tcpRelays?: TcpRelayIo;
}

/** The configured ranges, plus the user database's allowed_peer_ip/denied_peer_ip rows when there is one. */
function peerPolicyFor(config: RelayConfig, warn?: (message: string) => void): PeerJudge {
  const userdb = config.auth.kind !== "none" ? config.auth.userdb : undefined;
  if (userdb === undefined || !config.dynamicIpList) return new PeerPolicy(config.peerPolicy);
  const live = new LivePeerPolicy(config.peerPolicy, userdb, config.realm);
  live.onWarning = warn;
  return live;
}

/** `warn` receives the credential store's complaints (e.g. an unreadable --userdb). */
export function buildTurnServer(inputs: CoreInputs, io: CoreIo, warn?: (message: string) => void): TurnServer {
  const { config } = inputs;
  const control = inputs.control ?? new Int32Array(CONTROL_CELLS);
  return new TurnServer({
    admission: new EngineAdmission(
      config.alternates,
      control,
      (id) => io.isTls?.(id) ?? false,
      inputs.fleetRedirect && { cells: inputs.fleetRedirect, capacity: config.fleet.capacity, allocations: () => localAllocations(inputs.quota) },
    ),
    realm: config.realm,
    software: config.serverName,
    credentials: credentialStoreFor(config, warn),
    nonceSecret: inputs.nonceSecret,
    nonceLifetimeSeconds: config.staleNonce,
    defaultLifetimeSeconds: config.defaultAllocateLifetime,
    maxLifetimeSeconds: config.maxAllocateLifetime,
    permissionLifetimeSeconds: config.permissionLifetime,
    channelLifetimeSeconds: config.channelLifetime,
    peerPolicy: peerPolicyFor(config, warn),
    relays: io.relays,
    sink: io.sink,
    quota: new SharedQuota(inputs.quota, {
      userQuota: config.userQuota,
      totalQuota: config.totalQuota,
      bpsCapacity: config.bpsCapacity,
      restUsernames: config.auth.kind === "rest",
      ...(config.auth.kind === "rest" ? { restSeparator: config.auth.separator } : {}),
    }),
    maxBytesPerSecond: config.maxBps,
    unauthenticatedRateLimit: config.unauthorizedRatelimit,
    counters: sharedProtocolCounters(inputs.counters),
    defaultFamily: config.defaultFamily,
    noUdpRelay: config.noUdpRelay,
    ...(io.tcpRelays && !config.noTcpRelay ? { tcpRelays: io.tcpRelays } : {}),
    ...(config.tcpRelayTimeoutMs !== undefined ? { tcpConnectionTimeoutMs: config.tcpRelayTimeoutMs } : {}),
    stunOnly: config.stunOnly,
    noStun: config.noStun,
    ...(io.allocationEnded ? { allocationEnded: io.allocationEnded } : {}),
    ...(io.natDiscovery ? { natDiscovery: io.natDiscovery } : {}),
    streamKind: (id) => (io.isDtls?.(id) ? "dtls" : io.isTls?.(id) ? "tls" : "tcp"),
  });
}
