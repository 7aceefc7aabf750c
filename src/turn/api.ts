/**
 * The boundary between the sans-IO protocol core (src/stun, src/turn) and whatever drives it
 * (src/engine in production, fakes in tests). The core never touches a socket: it is handed
 * datagrams, 5-tuples and the time, and answers through a TurnSink and a RelayAllocator.
 */
import type { Endpoint, Family } from "../net/endpoint.ts";

/**
 * Milliseconds of Unix time (Date.now() style), passed in by the engine: the core never reads a clock
 * itself. It must be wall-clock time, not a monotonic counter, because nonces and TURN REST usernames
 * carry Unix expiry timestamps.
 */
export type Millis = number;

declare const idKind: unique symbol;
/**
 * A number of one kind: ids of two kinds do not mix in the type checker (a TCP connection cannot pass
 * for a UDP listener). The brand is for the type checker only: at run time an id is a plain number, so
 * the hot path allocates nothing for it.
 */
type Id<Kind extends string> = number & { readonly [idKind]: Kind };

/** A UDP listening socket of the engine: the client's datagrams arrived there, its replies leave from it. */
export type ListenerId = Id<"listener">;
/** A TCP or TLS connection (RFC 8656 §3.1): its own 5-tuple, so it stands for a listener of its own. */
export type ConnectionId = Id<"connection">;
/** Where a client's messages come in and its answers go out: a UDP listener or a stream connection. */
export type ClientPath = ListenerId | ConnectionId;
/** A relay socket of the engine (RelayHandle.id); the engine hands it back with each peer datagram. */
export type RelayId = Id<"relay">;

/** Connection ids are minted from here up and listener ids below it, so the number tells them apart. */
export const FIRST_CONNECTION_ID = 1 << 20;
export const listenerId = (index: number): ListenerId => index as ListenerId;
export const connectionId = (n: number): ConnectionId => n as ConnectionId;
export const relayId = (n: number): RelayId => n as RelayId;
export function isConnection(path: ClientPath): path is ConnectionId {
  return path >= FIRST_CONNECTION_ID;
}

/**
 * The 5-tuple an allocation belongs to (RFC 8656 §2): the server side (a UDP listener, or a stream
 * connection, which stands for the protocol and both of its addresses) and the client's transport address.
 * The core keys allocations by it: `listener`, then `client.key`.
 */
export interface FiveTuple {
  readonly listener: ClientPath;
  readonly client: Endpoint;
}

/** An opened relay transport address: one UDP socket in the engine, bound to a port from the pool. */
export interface RelayHandle {
  /** Engine-chosen id, unique among live relays of one engine; the engine passes it back with peer traffic. */
  readonly id: RelayId;
  /** The XOR-RELAYED-ADDRESS advertised to the client (already mapped through --external-ip). */
  readonly address: Endpoint;
}

export type RelayOpenResult =
  | { ok: true; relay: RelayHandle; /** set when reserveNext was asked (EVEN-PORT R bit) */ reservationToken?: bigint }
  | { ok: false; /** 508 Insufficient Capacity or 440 Address Family not Supported */ code: 508 | 440 };

/** A new relay port (RFC 8656 §7.2 steps 4 and 9). */
export interface FreshRelayRequest {
  readonly kind: "fresh";
  readonly family: Family;
  /** EVEN-PORT present: the port must be even (RFC 8656 §7.2 step 4). */
  readonly evenPort: boolean;
  /** EVEN-PORT R bit: also hold port+1, and return a reservation token for it. */
  readonly reserveNext: boolean;
  /** RFC 6062 §5.1: a TCP allocation's relayed address is a listening TCP socket. Absent = UDP. */
  readonly transport?: "udp" | "tcp";
}

/**
 * RESERVATION-TOKEN present: the port held under this token (RFC 8656 §7.2 step 3), in the family it was
 * reserved with. No family here: the token may come from another engine, whose reservation this core
 * never saw; the allocator that issued it knows.
 */
export interface ReservedRelayRequest {
  readonly kind: "token";
  readonly reservationToken: bigint;
}

export type RelayOpenRequest = FreshRelayRequest | ReservedRelayRequest;

/** Hands out relay sockets. The engine implements it over its shared port pool. */
export interface RelayAllocator {
  open(request: RelayOpenRequest, now: Millis): RelayOpenResult;
  close(relay: RelayHandle): void;
  /**
   * Gives back the port held under an EVEN-PORT reservation token that no Allocate claimed within
   * 30 s (RFC 8656 §7.2 step 4). Called at most once per token the core received from `open`, and never
   * for a token that a later `open({ kind: "token", reservationToken })` consumed.
   */
  releaseReservation?(token: bigint): void;
}

/**
 * The 486 (Allocation Quota Reached) hook (RFC 8656 §7.2 step 8). `acquire` is called once per new
 * allocation after authentication; `release` exactly once when that allocation ends.
 */
export interface AllocationQuota {
  acquire(username: string | undefined, client: Endpoint): boolean;
  release(username: string | undefined, client: Endpoint): void;
  /**
   * coturn --bps-capacity: reserves up to `bytesPerSecond` (the session's --max-bps) from the server's
   * bandwidth and returns what was granted, which may be less; 0 means none is left and the Allocate gets
   * 486 "Allocation Bandwidth Quota Reached" (coturn's allocate_bps). Absent = every session gets its full
   * --max-bps. Called only when a per-session cap is configured.
   */
  reserveBandwidth?(bytesPerSecond: number): number;
  /** Gives back exactly what reserveBandwidth granted, once, when the allocation ends. */
  releaseBandwidth?(bytesPerSecond: number): void;
  /**
   * EVEN-PORT reservations (RFC 8656 §7.2, R bit) count against the quota while their token lives: the
   * core `acquire`s a second unit for an Allocate with the R bit and hands it to the token here once the
   * allocator reserved the port; false = no room to record it, the Allocate gets 486. Absent =
   * reservations are not counted.
   */
  holdReservation?(username: string | undefined, client: Endpoint, token: bigint): boolean;
  /** The token expired unclaimed (called by the core that issued it): its unit goes back, unless redeemed. */
  releaseReservation?(token: bigint): void;
  /** In place of `acquire` for an Allocate with RESERVATION-TOKEN: takes over the reservation's unit. */
  acquireReserved?(username: string | undefined, client: Endpoint, token: bigint): boolean;
}

/**
 * Where the core's output goes. Every `data` view is valid only during the call: the engine copies it
 * (into a sendmmsg slot) before returning. Calls happen synchronously inside handle* methods.
 */
/**
 * Where the core's output goes. The relay methods take a buffer and a range instead of a view, so the
 * data path allocates no view per datagram; the range may point into the buffer the datagram came in.
 * Bytes are only valid during the call: a sink that keeps them copies them.
 */
export interface TurnSink {
  /** A STUN response or error for a client, sent from the listener it talked to. */
  reply(listener: ClientPath, client: Endpoint, data: Uint8Array): void;
  /** Relayed peer data for a client (ChannelData or Data indication): bytes[offset, offset + length), sent from the listener. */
  relayToClient(listener: ClientPath, client: Endpoint, bytes: Uint8Array, offset: number, length: number): void;
  /** Relayed client data for a peer: bytes[offset, offset + length), sent from the allocation's relay socket. */
  relayToPeer(relay: RelayHandle, peer: Endpoint, bytes: Uint8Array, offset: number, length: number, dontFragment: boolean): void;
}

/**
 * Where new allocations go (RFC 8656 §7.2: the server MAY answer an Allocate with 300 Try Alternate,
 * RFC 8489 §10), and whether this server still takes any (coturn's drain). Asked once per Allocate that
 * has no allocation yet; Refresh, CreatePermission, ChannelBind and relayed data never ask.
 */
export interface AllocateAdmission {
  /**
   * An Endpoint: answer 300 with it as ALTERNATE-SERVER (it must be of the client's family, RFC 8489
   * §10); "refuse": 403, this server takes no new allocations (draining, nowhere to send the client);
   * undefined: allocate here.
   */
  admit(path: ClientPath, client: Endpoint): Endpoint | "refuse" | undefined;
}

/** Long-term credential lookup (RFC 8489 §9.2). Static users, the REST secret and SQLite all fit behind it. */
export interface CredentialStore {
  /** The long-term key MD5(username ":" realm ":" password), or undefined when the user is unknown or expired. */
  longTermKey(username: string, realm: string, nowUnixSeconds: number): Uint8Array | undefined;
  /**
   * The SHA-256 long-term key SHA-256(username ":" realm ":" password) for PASSWORD-ALGORITHM SHA-256
   * (RFC 8489 §9.2.2, §18.5.1.2). Stores that only keep MD5 keys leave it out; SHA-256 is then not offered.
   */
  longTermKeySha256?(username: string, realm: string, nowUnixSeconds: number): Uint8Array | undefined;
  /**
   * Every key the user may hold, for stores where one username has several (TURN REST API credentials
   * while secrets are rotated: one key per live secret). When present it replaces longTermKey and
   * longTermKeySha256, and MESSAGE-INTEGRITY is checked against each key in turn (coturn does the same).
   */
  longTermKeys?(username: string, realm: string, nowUnixSeconds: number, algorithm: "md5" | "sha256"): readonly Uint8Array[];
  /** The username whose USERHASH (RFC 8489 §14.4) is `userhash`, for stores that can invert it. */
  usernameForUserhash?(userhash: Uint8Array, realm: string): string | undefined;
}

/**
 * RFC 5780 NAT behaviour discovery (coturn --rfc5780): the engine's UDP listeners by address, so that a
 * Binding response can say where it left from (RESPONSE-ORIGIN, §7.3), name the alternate address
 * (OTHER-ADDRESS, §7.4) and leave from the listener a CHANGE-REQUEST asks for (§7.2). The engine fills it
 * as it opens its listeners (src/turn/nat-discovery.ts). Absent = RFC 5780 off.
 */
export interface NatDiscovery {
  /** Where `listener` is bound; undefined when it has no alternate address (it then serves no RFC 5780). */
  localAddress(listener: ListenerId): Endpoint | undefined;
  /** The listener's address with both the alternate IP and the alternate port (OTHER-ADDRESS). */
  otherAddress(listener: ListenerId): Endpoint | undefined;
  /** The listener bound where `listener` is with the IP and/or the port changed to the alternate one. */
  changed(listener: ListenerId, changeIp: boolean, changePort: boolean): ListenerId | undefined;
}

/**
 * RFC 6062 §2.2: a data connection of a TCP allocation, named to the client by its CONNECTION-ID (a
 * 32-bit number the engine mints, unique among its live connections; never 0).
 */
export type PeerConnectionId = Id<"peer-connection">;
export const peerConnectionId = (n: number): PeerConnectionId => n as PeerConnectionId;

/**
 * TCP connections of TCP allocations (RFC 6062), opened and joined by the engine. Each call names a
 * connection by its id; what happens to it later comes back into the core through
 * TurnServer.handlePeerConnected / handlePeerAccepted / handlePeerConnectionClosed.
 */
export interface TcpRelayIo {
  /**
   * RFC 6062 §5.2: starts a non-blocking connect to `peer` from the relayed address of `relay`; the
   * outcome comes back through handlePeerConnected. 0 = it could not even start (the Connect gets 447).
   */
  connect(relay: RelayHandle, peer: Endpoint): PeerConnectionId | 0;
  /**
   * RFC 6062 §5.4: the ConnectionBind success has been sent on client connection `client`: from now on
   * the engine pipes the two connections' bytes both ways and the core no longer sees `client`.
   */
  bind(id: PeerConnectionId, client: ConnectionId): void;
  /** Closes a peer connection (and its client connection once bound). No handlePeerConnectionClosed follows. */
  close(id: PeerConnectionId): void;
}

/** Counters the core bumps, one table: src/turn/counters.ts. */
export type { ProtocolCounterName, ProtocolCounters } from "./counters.ts";
