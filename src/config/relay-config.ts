/**
 * What the configuration resolves to (resolve.ts): everything an engine needs, as plain data, so that
 * it crosses into the Workers unchanged.
 */
import type { ExternalIp, ListenAddress, RelayAddress } from "./addresses.ts";
import type { Alternates } from "./alternates.ts";
import type { StreamLimits } from "./stream-limits.ts";
import type { NatDiscoveryConfig } from "./resolve-rfc5780.ts";
import type { RedisTarget } from "./redis-target.ts";
import type { PeerPolicyOptions } from "../turn/peer-policy.ts";
import type { NetworkDb } from "../userdb/connection.ts";

export type AuthConfig =
  | { kind: "none" }
  | {
      kind: "long-term";
      /** `--user` entries; a password of the form 0x + 32 hex digits is a ready MD5 key (coturn). */
      users: Array<[name: string, password: string]>;
      /** `--userdb`: SQLite file with coturn's turnusers_lt table, read by each engine. */
      userdb?: string;
      /** `--psql-userdb` / `--mysql-userdb`: mirrored by the main thread into a file set as `userdb`. */
      networkUserdb?: NetworkDb;
    }
  | {
      kind: "rest";
      /** `--static-auth-secret`, repeatable: a username is valid under any of them. */
      secrets: string[];
      /** `--rest-api-separator`: between the expiry timestamp and the user in a REST username. */
      separator: string;
      /** `--userdb`: its turn_secret rows for the realm are secrets too, read live. */
      userdb?: string;
      /** `--psql-userdb` / `--mysql-userdb`: its turn_secret rows count too (through the mirror, as `userdb`). */
      networkUserdb?: NetworkDb;
    };

/** Everything an engine needs; plain data so it crosses into Workers unchanged. */
export interface RelayConfig {
  listeningIps: string[];
  listeningPort: number;
  relayIps: string[];
  externalIps: ExternalIp[];
  /** listeningIps parsed, with labels: the Workers bind these bytes and parse nothing. */
  listenAddresses: ListenAddress[];
  /** Per family, the relay address to bind and the one to advertise (--external-ip already matched). */
  relayAddresses: RelayAddress[];
  minPort: number;
  maxPort: number;
  realm: string;
  auth: AuthConfig;
  /** Set when no credentials were configured and bunturn made a user up, so the operator can log in. */
  generatedUser?: { name: string; password: string };
  /** Which peers clients may reach: the operator's ranges plus this host's own addresses (resolved once, here). */
  peerPolicy: PeerPolicyOptions;
  /** Whether the user database's allowed_peer_ip/denied_peer_ip rows add to peerPolicy (coturn's --no-dynamic-ip-list turns it off). */
  dynamicIpList: boolean;
  maxAllocateLifetime: number;
  defaultAllocateLifetime: number;
  permissionLifetime: number;
  channelLifetime: number;
  staleNonce: number;
  /** coturn --user-quota, --total-quota (allocations; 0 = unlimited). */
  userQuota: number;
  totalQuota: number;
  /** coturn --max-bps (per session, each direction) and --bps-capacity (server), bytes per second; 0 = unlimited. */
  maxBps: number;
  bpsCapacity: number;
  /** coturn --unauthorized-ratelimit(-rps): responses per second per source IP to unauthenticated requests; 0 = off. */
  unauthorizedRatelimit: number;
  relayThreads: number;
  sockBufSize: number;
  udpRecvmmsg: boolean;
  udpRecvmmsgLog: boolean;
  udpSendmmsg: boolean;
  /** UDP_SEGMENT on send (--udp-gso): per socket, where the kernel takes it. */
  udpGso: boolean;
  /** UDP_GRO on the listener and relay sockets (--udp-gro). */
  udpGro: boolean;
  /** Milliseconds of start-up warm-up per engine before the listeners open (src/engine/warmup.ts); 0 = off (--no-warmup). */
  warmupMs: number;
  /** Tests only, set by no option: the warm-up fails with this message (start-up must go on without it). */
  warmupFault?: string;
  /** TURN over UDP on the listening port (coturn --no-udp turns it off). */
  udp: boolean;
  /** TURN over TCP on the listening port (RFC 8656 §3.1); relays stay UDP. */
  tcp: boolean;
  /** --tls-proxy-port (bunturn's own): TLS passed through a load balancer, each connection prefixed with a PROXY v1/v2 header. */
  tlsProxyPort?: number;
  /** coturn --tcp-proxy-port: TCP connections from a load balancer, each prefixed with a PROXY v1/v2 header. */
  tcpProxyPort?: number;
  /** TURN over TLS (RFC 8656 §3.1): set when --cert and --pkey are given and --no-tls is not. */
  tls?: TlsConfig;
  /** TURN over DTLS (coturn --dtls, ./resolve-dtls.ts): set with --dtls, --cert and --pkey. */
  dtls?: DtlsConfig;
  /** Relay family of an Allocate without REQUESTED-ADDRESS-FAMILY (coturn -A / -K); "keep" = the client's. */
  defaultFamily: "ipv4" | "ipv6" | "keep";
  /** coturn --no-udp-relay: an Allocate for UDP gets 442. */
  noUdpRelay: boolean;
  /** coturn --no-tcp-relay: an Allocate for TCP (RFC 6062) gets 442. */
  noTcpRelay: boolean;
  /**
   * RFC 6062's 30 s (a Connect's attempt, a connection waiting for ConnectionBind), in ms. Only tests
   * shorten it, through the environment (BUNTURN_TEST_TCP_RELAY_TIMEOUT_MS): no option offers it.
   */
  tcpRelayTimeoutMs?: number;
  /** coturn --stun-only: TURN requests get 400. */
  stunOnly: boolean;
  /** coturn --no-stun: Binding requests are not answered. */
  noStun: boolean;
  /** coturn --rfc5780 (RFC 5780 NAT behaviour discovery, ./resolve-rfc5780.ts); absent = off. */
  rfc5780?: NatDiscoveryConfig;
  /** Accepted coturn keys that change nothing, one line each (logged at -v). */
  notes: string[];
  /** Caps on TCP/TLS clients: connections, handshake time, buffered bytes (stream-limits.ts). */
  streams: StreamLimits;
  /** SOFTWARE attribute value; empty = none (--no-software-attribute). */
  serverName: string;
  verbose: boolean;
  logStatsInterval: number;
  /** `--prometheus`: where the metrics endpoint listens; absent = off. */
  prometheus?: { address: string; port: number; path: string };
  log: LogConfig;
  /** `--control-socket`: the operator's local control channel (src/metrics/control-socket.ts). */
  controlSocket?: string;
  /** `--usage-log`: where usage records go; absent = the log. */
  usageLog?: string;
  /** `--pidfile` */
  pidfile?: string;
  /** `--alternate-server` and its per-transport forms (./alternates.ts): where Allocates are redirected. */
  alternates: Alternates;
  /** `--drain-min-allocations`: a draining server exits once allocations fall to this many. */
  drainMinAllocations: number;
  /** What a fleet of relays shares (docs/fleet.md); both absent = this relay alone. */
  fleet: FleetConfig;
}

export interface FleetConfig {
  /** `--fleet-redis`: nonce secret, fleet-wide quotas, load. */
  redis?: RedisTarget;
  /** `--fleet-capacity`: allocations before redirecting to the least-loaded peer (0 = no limit). */
  capacity: number;
  /** Where peers send clients to reach this relay: `--fleet-address` or the defaults, one per family. */
  addresses: string[];
  /** The ports behind those addresses: the listening port, and the TLS port when TLS is served. */
  port: number;
  tlsPort?: number;
  /** `--redis-statsdb`: coturn's status and traffic events, and the usage records. */
  statsdb?: RedisTarget;
  /** `--nonce-secret-file`: the nonce key, the same file on every relay. */
  nonceSecretFile?: string;
}

export interface TlsConfig {
  port: number;
  cert: string;
  key: string;
  /** coturn --pkey-pwd */
  passphrase?: string;
  /** coturn --cipher-list (TLS 1.2 suites, OpenSSL syntax) */
  ciphers?: string;
  /** coturn --CA-file: clients must present a certificate signed by one of these. */
  caFile?: string;
  /** coturn --no-tlsv1_2: TLS 1.3 only. */
  tls13Only: boolean;
}

export interface DtlsConfig {
  /** --tls-listening-port: DTLS is served on UDP there too (and on the listening port's UDP listeners). */
  port: number;
  cert: string;
  key: string;
  passphrase?: string;
  /** coturn --cipher-list (OpenSSL syntax) */
  ciphers?: string;
  /** --tls-handshake-timeout */
  handshakeTimeoutMs: number;
  /** --dtls-max-sessions: associations per engine. */
  maxSessions: number;
  /** --dtls-max-sessions-per-ip: of those, from one IPv4 address or IPv6 /64. */
  maxSessionsPerIp: number;
}

export interface LogConfig {
  /** A file to append to; absent with `--log-file stdout` or none. */
  file?: string;
  /** Log to standard output too (false only with a file and --no-stdout-log). */
  stdout: boolean;
  format: "text" | "json";
  /** coturn --syslog: datagrams to this Unix socket with this facility (RFC 3164). */
  syslog?: { socket: string; facility: number };
}
