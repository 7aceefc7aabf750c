/**
 * Everything a TurnServer knows, shared by the request handlers and the relay path: configuration
 * (./server-options.ts resolved, defaults applied), the allocation tables (by 5-tuple and by relay id),
 * the timer queue, reserved ports (./reservations.ts) and counters. Lifetime and deletion of allocations
 * live here so every path closes relays the same way, exactly once.
 */
import type { Endpoint, EndpointKey, Family } from "../net/endpoint.ts";
import type {
  AllocateAdmission, AllocationQuota, ClientPath, ConnectionId, CredentialStore, Millis, NatDiscovery, ProtocolCounters, RelayAllocator, RelayHandle, RelayId, TurnSink,
} from "./api.ts";
import { isConnection } from "./api.ts";
import { Allocation } from "./allocation.ts";
import { describeSession, type SessionInfo, type StreamKind } from "./sessions.ts";
import { zeroCounters } from "./counters.ts";
import { Authenticator } from "./auth.ts";
import { FEATURE_PASSWORD_ALGORITHMS, NonceFactory } from "./nonce.ts";
import type { PeerJudge } from "./peer-policy.ts";
import { SourceRateLimit } from "./source-rate-limit.ts";
import { Reservation, Reservations } from "./reservations.ts";
import type { TurnServerOptions } from "./server-options.ts";
import { TimerQueue } from "./timer-queue.ts";
import { PeerConnection, TCP_CONNECTION_TIMEOUT_MS, TcpAllocations } from "./tcp-allocations.ts";
import { MAX_CHANNEL_RFC5766, MAX_CHANNEL_RFC8656, encodeSoftware } from "../stun/index.ts";

export class ServerState {
  readonly realm: string;
  readonly software: Uint8Array | undefined;
  readonly credentials: CredentialStore | null;
  readonly auth: Authenticator | null;
  readonly defaultLifetime: number;
  readonly maxLifetime: number;
  readonly permissionMs: number;
  readonly channelMs: number;
  readonly maxPermissions: number;
  readonly maxChannels: number;
  readonly maxChannel: number;
  readonly peerPolicy: PeerJudge;
  readonly relays: RelayAllocator;
  readonly sink: TurnSink;
  readonly quota: AllocationQuota | undefined;
  readonly admission: AllocateAdmission | undefined;
  readonly maxBytesPerSecond: number;
  readonly counters: ProtocolCounters;
  readonly defaultFamily: "ipv4" | "ipv6" | "keep";
  readonly noUdpRelay: boolean;
  readonly stunOnly: boolean;
  readonly noStun: boolean;
  readonly natDiscovery: NatDiscovery | undefined;
  private readonly unauthenticatedLimit: SourceRateLimit | undefined;
  private readonly allocationEnded: ((session: SessionInfo) => void) | undefined;
  private readonly streamKind: StreamKind | undefined;
  private nextSerial = 1;
  /** The latest `now` the core was handed, for usage records of allocations that end without one (a closed connection). */
  lastNow: Millis = 0;
  /** Allocations by listener, then by client endpoint: together the 5-tuple (UDP only). */
  private readonly byListener = new Map<ClientPath, Map<EndpointKey, Allocation>>();
  readonly byRelay = new Map<RelayId, Allocation>();
  readonly timers = new TimerQueue<Allocation | Reservation | PeerConnection>();
  /** RFC 6062: the data connections of TCP allocations. */
  readonly tcp: TcpAllocations;
  /** RFC 8656 §7.2: ports reserved by EVEN-PORT's R bit, waiting for the Allocate that redeems them. */
  readonly reservations: Reservations;

  constructor(o: TurnServerOptions) {
    this.realm = o.realm;
    this.software = o.software ? encodeSoftware(o.software) : undefined;
    this.credentials = o.credentials;
    const nonces = new NonceFactory(
      o.nonceSecret,
      o.nonceLifetimeSeconds ?? 600,
      o.passwordAlgorithms === false ? null : FEATURE_PASSWORD_ALGORITHMS,
    );
    this.auth = o.credentials ? new Authenticator(o.realm, o.credentials, nonces) : null;
    this.maxLifetime = o.maxLifetimeSeconds ?? 3600;
    this.defaultLifetime = Math.min(o.defaultLifetimeSeconds ?? 600, this.maxLifetime);
    this.permissionMs = (o.permissionLifetimeSeconds ?? 300) * 1000;
    this.channelMs = (o.channelLifetimeSeconds ?? 600) * 1000;
    this.maxPermissions = o.maxPermissionsPerAllocation ?? 1000;
    this.maxChannels = o.maxChannelsPerAllocation ?? 1000;
    this.maxChannel = o.channelRange === "rfc8656" ? MAX_CHANNEL_RFC8656 : MAX_CHANNEL_RFC5766;
    this.peerPolicy = o.peerPolicy;
    this.relays = o.relays;
    this.sink = o.sink;
    this.quota = o.quota;
    this.admission = o.admission;
    this.maxBytesPerSecond = o.maxBytesPerSecond ?? 0;
    this.counters = o.counters ?? zeroCounters();
    this.defaultFamily = o.defaultFamily ?? "ipv4";
    this.noUdpRelay = o.noUdpRelay === true;
    this.stunOnly = o.stunOnly === true;
    this.noStun = o.noStun === true;
    this.natDiscovery = o.natDiscovery;
    const perSecond = o.unauthenticatedRateLimit ?? 0;
    this.unauthenticatedLimit = perSecond > 0 ? new SourceRateLimit(perSecond, o.nonceSecret) : undefined;
    this.allocationEnded = o.allocationEnded;
    this.streamKind = o.streamKind;
    this.reservations = new Reservations(this.timers, o.relays, o.quota);
    this.tcp = new TcpAllocations(this, o.tcpRelays, o.tcpConnectionTimeoutMs ?? TCP_CONNECTION_TIMEOUT_MS);
  }

  /** Whether an error response to a request that proved no key may go to `client` now; counts those withheld. */
  mayAnswerUnauthenticated(client: Endpoint, now: Millis): boolean {
    if (this.unauthenticatedLimit === undefined || this.unauthenticatedLimit.allow(client, now)) return true;
    this.counters.unauthenticatedRateLimited++;
    return false;
  }

  /** Every STUN response to a client goes out here, so that the client traffic counters see it. */
  reply(listener: ClientPath, client: Endpoint, response: Uint8Array): void {
    this.counters.clientPacketsOut++;
    this.counters.clientBytesOut += response.length;
    this.sink.reply(listener, client, response);
  }

  /** Every allocation made through `listener` (one TCP/TLS connection) goes. */
  removeListener(listener: ClientPath): void {
    const table = this.byListener.get(listener);
    if (table !== undefined) for (const a of [...table.values()]) this.remove(a);
  }

  /** Whether `path` is a TCP or TLS connection (RFC 6062's client connections), not UDP or a DTLS association. */
  isStream(path: ClientPath): path is ConnectionId {
    return isConnection(path) && this.streamKind?.(path) !== "dtls";
  }

  hasAllocationOn(listener: ClientPath): boolean {
    return this.byListener.has(listener);
  }

  find(listener: ClientPath, clientKey: EndpointKey): Allocation | undefined {
    return this.byListener.get(listener)?.get(clientKey);
  }

  /**
   * coturn's rule (stun_adjust_allocate_lifetime): absent or 0 means the default, shorter requests get
   * the default, longer ones the maximum (RFC 8656 §7.2 leaves the choice to the server).
   */
  grantedLifetime(requested: number | undefined): number {
    if (requested === undefined || requested === 0) return this.defaultLifetime;
    return Math.min(Math.max(requested, this.defaultLifetime), this.maxLifetime);
  }

  add(a: Allocation): void {
    let table = this.byListener.get(a.listener);
    if (table === undefined) this.byListener.set(a.listener, (table = new Map()));
    table.set(a.client.key, a);
    a.serial = this.nextSerial++;
    if (isConnection(a.listener)) a.transport = this.streamKind?.(a.listener) ?? "tcp";
    if (a.relay4) {
      this.byRelay.set(a.relay4.id, a);
      this.counters.relays4++;
    }
    if (a.relay6) {
      this.byRelay.set(a.relay6.id, a);
      this.counters.relays6++;
    }
    this.counters.allocations++;
    this.counters.allocationsCreated++;
    this.reschedule(a);
  }

  /** Deletes an allocation: relays closed through the allocator exactly once, quota released. */
  remove(a: Allocation): void {
    if (a.closed) return;
    a.closed = true;
    const table = this.byListener.get(a.listener);
    table?.delete(a.client.key);
    if (table?.size === 0) this.byListener.delete(a.listener);
    // Quota and bandwidth go back before the relays close: closing may send what the engine has queued.
    if (a.quotaHeld) this.quota?.release(a.username, a.client);
    if (a.bandwidthReserved) this.quota?.releaseBandwidth?.(a.bytesPerSecond);
    this.timers.cancel(a);
    this.counters.allocations--;
    this.counters.allocationsDeleted++;
    // Described before its relays close: the record names them.
    if (this.allocationEnded !== undefined) this.allocationEnded(describeSession(a, this.realm, this.lastNow));
    if (a.tcp) this.tcp.removeAllocation(a); // RFC 6062: its connections end with it
    this.closeRelay(a, 4);
    this.closeRelay(a, 6);
  }

  /** Closes one family's relay of an allocation (dual allocations can drop one, RFC 8656 §7.5). */
  closeRelay(a: Allocation, family: Family): void {
    const relay: RelayHandle | undefined = a.relayFor(family);
    if (relay === undefined) return;
    if (family === 4) {
      a.relay4 = undefined;
      this.counters.relays4--;
    } else {
      a.relay6 = undefined;
      this.counters.relays6--;
    }
    this.byRelay.delete(relay.id);
    this.relays.close(relay);
  }

  /** Makes sure the timer queue fires no later than the allocation's next deadline. */
  reschedule(a: Allocation): void {
    const deadline = a.nextDeadline();
    if (deadline < a.scheduledAt) {
      this.timers.schedule(a, deadline);
      a.scheduledAt = deadline;
    }
  }

  /** Runs every timer due at `now`. */
  expire(now: Millis): void {
    for (let t = this.timers.popDue(now); t !== undefined; t = this.timers.popDue(now)) {
      if (t instanceof PeerConnection) {
        this.tcp.expire(t);
        continue;
      }
      if (t instanceof Reservation) {
        this.reservations.expired(t);
        continue;
      }
      t.scheduledAt = Infinity;
      if (t.expiresAt <= now) {
        this.remove(t);
      } else {
        t.expireEntries(now);
        this.reschedule(t);
      }
    }
  }

  /** Every live allocation, as an operator sees it. */
  sessions(now: Millis): SessionInfo[] {
    const out: SessionInfo[] = [];
    for (const table of this.byListener.values()) for (const a of table.values()) out.push(describeSession(a, this.realm, now));
    return out;
  }

  /** Ends allocation `serial` (an operator's kill); its path (a TCP connection the engine should close too), or undefined when none has that number. */
  endSession(serial: number): ClientPath | undefined {
    for (const table of this.byListener.values()) {
      for (const a of table.values()) {
        if (a.serial !== serial) continue;
        this.remove(a);
        return a.listener;
      }
    }
    return undefined;
  }

  closeAll(): void {
    for (const a of [...this.byRelay.values()]) this.remove(a);
    for (const table of [...this.byListener.values()]) for (const a of [...table.values()]) this.remove(a);
    this.reservations.releaseAll();
    this.timers.clear();
  }
}
