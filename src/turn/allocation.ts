/**
 * One allocation (RFC 8656 §2.2, §6): the 5-tuple it belongs to, its relayed transport address(es),
 * permissions (§9) keyed by peer host, channel bindings (§12) keyed both ways, and a small cache of
 * recent responses for retransmitted requests (RFC 8489 §6.3.1, RFC 8656 §7.2 note).
 */
import type { Endpoint, EndpointKey, Family } from "../net/endpoint.ts";
import type { ClientPath, FiveTuple, Millis, RelayHandle } from "./api.ts";

export interface Channel {
  readonly number: number;
  readonly peer: Endpoint;
  readonly relay: RelayHandle;
  expiresAt: Millis;
}

/** How long a cached response answers a retransmission: RFC 8489 §6.2.1's Ti is 39.5 s. */
export const RETRANSMIT_WINDOW_MS = 40_000;
const CACHE_SLOTS = 4;
/** Endpoints cached for Send indications before the cache is emptied and refilled. */
const SEND_PEER_CACHE_LIMIT = 64;

/**
 * Permissions and channels are kept in the order they expire, so that expiring them and finding the next
 * deadline look only at the front, whatever their number (one ChannelBind costs the same at the 1,000th
 * channel as at the 10th). Every permission lives the server's permission lifetime from its last refresh,
 * every channel the channel lifetime: a refresh moves the entry to the back of its Map (insertion order)
 * and the front is always the earliest. Should Unix time step back, an entry refreshed then may sit
 * behind later ones and be swept late by at most the step; its own deadline is still checked on use.
 */
export class Allocation implements FiveTuple {
  relay4: RelayHandle | undefined;
  relay6: RelayHandle | undefined;
  expiresAt: Millis;
  /** Permission expiry by peer host (RFC 8656 §9: permissions ignore the port), earliest first. */
  readonly permissions = new Map<EndpointKey, Millis>();
  /** Channels by number, earliest expiry first. */
  readonly channelsByNumber = new Map<number, Channel>();
  readonly channelsByPeer = new Map<EndpointKey, Channel>();
  /** Reused peer endpoints for Send indications, so relaying does not build one per packet. */
  readonly sendPeers = new Map<EndpointKey, Endpoint>();
  closed = false;
  /** RFC 6062: a TCP allocation (its relayed address listens for TCP; data goes over connections). */
  tcp = false;
  /** The quota hook admitted this allocation and must be told when it ends. */
  quotaHeld = false;
  /** bytesPerSecond came from AllocationQuota.reserveBandwidth and goes back when the allocation ends. */
  bandwidthReserved = false;
  /**
   * coturn --max-bps for this session, 0 = unlimited. Two token buckets, one per direction, each holding at
   * most one second's worth: a burst of up to a second is relayed, a steady excess is dropped.
   */
  bytesPerSecond = 0;
  private toPeerTokens = 0;
  private toPeerStamp = 0;
  private toClientTokens = 0;
  private toClientStamp = 0;
  timerSeq = 0;
  /** Set by ServerState.add: the allocation's number for operators (sessions list, kill, usage record). */
  serial = 0;
  /** How the client reaches it, for operators; set by ServerState.add (a connection's kind is known while it is open). */
  transport: "udp" | "tcp" | "tls" | "dtls" = "udp";
  /** Unix ms when it was made (the allocate handler's `now`). */
  startedAt: Millis = 0;
  /** Relayed application bytes and datagrams each way, for the sessions list and the usage record. */
  bytesToPeer = 0;
  packetsToPeer = 0;
  bytesToClient = 0;
  packetsToClient = 0;
  /** The deadline this allocation is scheduled at in the timer queue. */
  scheduledAt = Infinity;

  private readonly cachedIds = new Uint8Array(CACHE_SLOTS * 12);
  private readonly cachedResponses: (Uint8Array | undefined)[] = new Array(CACHE_SLOTS).fill(undefined);
  private readonly cachedAt = new Float64Array(CACHE_SLOTS);
  private nextSlot = 0;

  constructor(
    readonly listener: ClientPath,
    readonly client: Endpoint,
    readonly username: string | undefined,
    expiresAt: Millis,
  ) {
    this.expiresAt = expiresAt;
  }

  /** Starts the --max-bps buckets full at `now`. */
  limitBandwidth(bytesPerSecond: number, now: Millis): void {
    this.bytesPerSecond = bytesPerSecond;
    this.toPeerTokens = this.toClientTokens = bytesPerSecond;
    this.toPeerStamp = this.toClientStamp = now;
  }

  /** Takes `bytes` from the client->peer bucket; false = over --max-bps, drop the datagram. */
  takeToPeer(bytes: number, now: Millis): boolean {
    const rate = this.bytesPerSecond;
    // Unix time may step back (NTP): never let that drain the bucket.
    let tokens = this.toPeerTokens + (now > this.toPeerStamp ? ((now - this.toPeerStamp) * rate) / 1000 : 0);
    if (tokens > rate) tokens = rate;
    this.toPeerStamp = now;
    if (tokens < bytes) {
      this.toPeerTokens = tokens;
      return false;
    }
    this.toPeerTokens = tokens - bytes;
    return true;
  }

  /** Takes `bytes` from the peer->client bucket; false = over --max-bps, drop the datagram. */
  takeToClient(bytes: number, now: Millis): boolean {
    const rate = this.bytesPerSecond;
    // Unix time may step back (NTP): never let that drain the bucket.
    let tokens = this.toClientTokens + (now > this.toClientStamp ? ((now - this.toClientStamp) * rate) / 1000 : 0);
    if (tokens > rate) tokens = rate;
    this.toClientStamp = now;
    if (tokens < bytes) {
      this.toClientTokens = tokens;
      return false;
    }
    this.toClientTokens = tokens - bytes;
    return true;
  }

  relayFor(family: Family): RelayHandle | undefined {
    return family === 4 ? this.relay4 : this.relay6;
  }

  hasPermission(hostKey: EndpointKey, now: Millis): boolean {
    const until = this.permissions.get(hostKey);
    return until !== undefined && until > now;
  }

  /** Installs or refreshes the permission for a peer host until `until` (RFC 8656 §9). */
  permit(hostKey: EndpointKey, until: Millis): void {
    this.permissions.delete(hostKey);
    this.permissions.set(hostKey, until);
  }

  /** Binds a new channel (RFC 8656 §12). */
  bindChannel(channel: Channel): void {
    this.channelsByNumber.set(channel.number, channel);
    this.channelsByPeer.set(channel.peer.key, channel);
  }

  /** Refreshes a bound channel until `until`. */
  refreshChannel(channel: Channel, until: Millis): void {
    channel.expiresAt = until;
    this.channelsByNumber.delete(channel.number);
    this.channelsByNumber.set(channel.number, channel);
  }

  /** Earliest moment something in this allocation expires. */
  nextDeadline(): Millis {
    let at = this.expiresAt;
    const permission = this.permissions.values().next();
    if (!permission.done && permission.value < at) at = permission.value;
    const channel = this.channelsByNumber.values().next();
    if (!channel.done && channel.value.expiresAt < at) at = channel.value.expiresAt;
    return at;
  }

  /** Drops permissions and channel bindings that have expired at `now` (RFC 8656 §9, §12): the front only. */
  expireEntries(now: Millis): void {
    for (const [host, until] of this.permissions) {
      if (until > now) break;
      this.permissions.delete(host);
    }
    for (const [number, ch] of this.channelsByNumber) {
      if (ch.expiresAt > now) break;
      this.channelsByNumber.delete(number);
      this.channelsByPeer.delete(ch.peer.key);
    }
  }

  sendPeer(peer: Endpoint): Endpoint {
    const known = this.sendPeers.get(peer.key);
    if (known !== undefined) return known;
    if (this.sendPeers.size >= SEND_PEER_CACHE_LIMIT) this.sendPeers.clear();
    this.sendPeers.set(peer.key, peer);
    return peer;
  }

  /** The response previously sent for this transaction id, if still within the retransmission window. */
  cachedResponse(message: Uint8Array, now: Millis): Uint8Array | undefined {
    for (let s = 0; s < CACHE_SLOTS; s++) {
      const response = this.cachedResponses[s];
      if (response === undefined || now - this.cachedAt[s]! > RETRANSMIT_WINDOW_MS) continue;
      let same = true;
      for (let i = 0; i < 12; i++) {
        if (this.cachedIds[s * 12 + i] !== message[8 + i]) { same = false; break; }
      }
      // The response repeats the request's method, so a different method is a different request.
      if (same && (response[0]! & 0x3e) === (message[0]! & 0x3e) && (response[1]! & 0xef) === (message[1]! & 0xef)) {
        return response;
      }
    }
    return undefined;
  }

  rememberResponse(request: Uint8Array, response: Uint8Array, now: Millis): void {
    const s = this.nextSlot;
    this.nextSlot = (s + 1) % CACHE_SLOTS;
    this.cachedIds.set(request.subarray(8, 20), s * 12);
    this.cachedResponses[s] = response;
    this.cachedAt[s] = now;
  }
}
