/**
 * The TURN server as a sans-IO state machine (RFC 8656 over RFC 8489, UDP transport). Datagrams,
 * 5-tuples and the time go in; responses and relayed data come out through the TurnSink, relay sockets
 * through the RelayAllocator. No sockets, timers or clock reads here. A request's way through
 * authentication to its handler is ./request-dispatch.ts, relayed data ./relay-path.ts.
 */
import type { Endpoint } from "../net/endpoint.ts";
import { Malformed, StunClass, StunDecoder, StunMethod, looksLikeChannelData, parseChannelData } from "../stun/index.ts";
import type { ClientPath, Millis, PeerConnectionId, ProtocolCounters, RelayId } from "./api.ts";
import type { Endpoint as PeerEndpoint } from "../net/endpoint.ts";
import { RelayPath } from "./relay-path.ts";
import { handleRequest } from "./request-dispatch.ts";
import type { TurnServerOptions } from "./server-options.ts";
import { ServerState } from "./state.ts";
import type { SessionInfo } from "./sessions.ts";

export type { TurnServerOptions } from "./server-options.ts";
export type { SessionInfo } from "./sessions.ts";

export class TurnServer {
  private readonly state: ServerState;
  private readonly relay: RelayPath;
  /** Reused for every datagram: the decoded view lives only during one handle* call. */
  private readonly decoder = new StunDecoder();

  constructor(options: TurnServerOptions) {
    this.state = new ServerState(options);
    this.relay = new RelayPath(this.state);
  }

  get counters(): ProtocolCounters {
    return this.state.counters;
  }

  get allocationCount(): number {
    return this.state.counters.allocations;
  }

  /** Entries in the timer heap: the live deadlines, plus cancelled ones not swept yet (kept few). */
  get timerCount(): number {
    return this.state.timers.size;
  }

  /**
   * A datagram that arrived on listener `listener` from `client`: data[offset, offset + length) (default:
   * all of data). `now` = Unix time in ms.
   */
  handleClientDatagram(listener: ClientPath, client: Endpoint, data: Uint8Array, now: Millis, offset = 0, length = data.length - offset): void {
    const counters = this.state.counters;
    counters.clientPacketsIn++;
    counters.clientBytesIn += length;
    // RFC 7983 / RFC 8656 §12: the first two bits tell STUN (00) from ChannelData (01).
    if (looksLikeChannelData(data, offset, length)) {
      const channel = parseChannelData(data, offset, length);
      const a = channel < 0 ? undefined : this.state.find(listener, client.key);
      if (a === undefined || a.tcp) {
        this.state.counters.dropped++;
        return;
      }
      this.relay.channelDataFromClient(a, data, offset, channel, now);
      return;
    }
    this.handleStunDatagram(listener, client, data, now, offset, length);
  }

  /**
   * A STUN message from a client (RFC 8489 §6.3): out of handleClientDatagram, which runs for every
   * relayed ChannelData, so that the JIT compiles (and inlines) the decoder and request path only here.
   */
  private handleStunDatagram(listener: ClientPath, client: Endpoint, data: Uint8Array, now: Millis, offset: number, length: number): void {
    const d = this.decoder;
    const message = offset === 0 && length === data.length ? data : data.subarray(offset, offset + length);
    if (d.decode(message) !== Malformed.Ok) {
      // RFC 8489 §6.3: malformed messages (bad length, cookie, fingerprint...) are silently discarded.
      this.state.counters.dropped++;
      return;
    }
    if (d.cls === StunClass.Indication) {
      const a = d.method === StunMethod.Send ? this.state.find(listener, client.key) : undefined;
      if (a === undefined || a.tcp) {
        // RFC 8489 §6.3.2: Binding and unknown indications need no answer; Send without allocation is dropped.
        this.state.counters.dropped++;
        return;
      }
      this.relay.sendIndication(a, d, now);
      return;
    }
    if (d.cls !== StunClass.Request) {
      this.state.counters.dropped++; // a server expects no responses
      return;
    }
    handleRequest(this.state, listener, client, d, now);
  }

  /**
   * A datagram that arrived on relay socket `relayId` from `peer`: data[offset, offset + length) (default:
   * all of data). The core may overwrite the 4 bytes before `offset` (when offset >= 4) to send the
   * datagram on as ChannelData without copying it: an engine leaves that room in its receive slots.
   */
  handlePeerDatagram(relayId: RelayId, peer: Endpoint, data: Uint8Array, now: Millis, offset = 0, length = data.length - offset): void {
    const counters = this.state.counters;
    counters.peerPacketsIn++;
    counters.peerBytesIn += length;
    this.relay.peerDatagram(relayId, peer, data, offset, length, now);
  }

  /** Earliest time handleTimeout must be called, or undefined if nothing is pending. */
  pollTimeout(): Millis | undefined {
    return this.state.timers.peek();
  }

  /** Expires allocations, permissions, channels and reservations due at `now`, closing their relays. */
  handleTimeout(now: Millis): void {
    this.state.lastNow = now;
    this.state.expire(now);
  }

  /**
   * The client's TCP/TLS connection (its own `listener` id) closed. Over a stream the connection is the
   * 5-tuple (RFC 8656 §2.1), so its allocation ends with it, as coturn does; its relay is released now.
   */
  handleClientClosed(listener: ClientPath): void {
    this.state.removeListener(listener);
  }

  /**
   * RFC 6062 §5.2: the engine's connect for Connect's connection `id` succeeded or failed (the socket is
   * closed already then): the Connect gets its answer.
   */
  handlePeerConnected(id: PeerConnectionId, ok: boolean, now: Millis): void {
    this.state.lastNow = now;
    const c = this.state.tcp.get(id);
    if (c !== undefined && c.state === "connecting") this.state.tcp.connected(c, ok, now);
  }

  /**
   * RFC 6062 §5.3: a peer connected to TCP relay `relayId`; the engine named the connection `id`. True:
   * taken (the client is sent a ConnectionAttempt); false: the engine closes it (no permission).
   */
  handlePeerAccepted(relayId: RelayId, peer: PeerEndpoint, id: PeerConnectionId, now: Millis): boolean {
    this.state.lastNow = now;
    const a = this.state.byRelay.get(relayId);
    return a !== undefined && this.state.tcp.accepted(a, id, peer, now);
  }

  /**
   * Bytes piped through connection `id` since the last report, each way: they count in its allocation's
   * usage (sessions list, usage record) as relayed data does.
   */
  handlePeerTraffic(id: PeerConnectionId, toPeer: number, toClient: number): void {
    const a = this.state.tcp.get(id)?.allocation;
    if (a === undefined) return;
    a.bytesToPeer += toPeer;
    a.bytesToClient += toClient;
  }

  /** A peer connection closed in the engine (its peer, its client data connection, or an error): it is forgotten. */
  handlePeerConnectionClosed(id: PeerConnectionId): void {
    const c = this.state.tcp.get(id);
    if (c === undefined) return;
    if (c.state === "connecting") this.state.tcp.connected(c, false, this.state.lastNow);
    else this.state.tcp.remove(c, false);
  }

  /** Whether a client on `listener` (a TCP/TLS connection) holds an allocation. */
  hasAllocationOn(listener: ClientPath): boolean {
    return this.state.hasAllocationOn(listener);
  }

  /** Every live allocation as an operator sees it (`bunturn admin sessions`); built on request, not kept. */
  sessions(now: Millis): SessionInfo[] {
    return this.state.sessions(now);
  }

  /**
   * Ends allocation `serial` now, as expiry would (relays closed, quota released, usage record given):
   * an operator's kill. Returns the client's path (a TCP connection, which the engine closes too), or
   * undefined when no allocation has that number.
   */
  endSession(serial: number): ClientPath | undefined {
    return this.state.endSession(serial);
  }

  /** Shutdown: every relay released through RelayAllocator.close, every reservation given back. */
  closeAll(): void {
    this.state.closeAll();
  }
}

export { PeerPolicy } from "./peer-policy.ts";
export { StaticUsers, RestSecretCredentials } from "./credentials.ts";
