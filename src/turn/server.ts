/**
 * The TURN server as a sans-IO state machine (RFC 8656 over RFC 8489, UDP transport). Datagrams,
 * 5-tuples and the time go in; responses and relayed data come out through the TurnSink, relay sockets
 * through the RelayAllocator. No sockets, timers or clock reads here.
 */
import type { Endpoint } from "../net/endpoint.ts";
import {
  ErrorCode, Malformed, StunClass, StunDecoder, StunMethod, looksLikeChannelData, parseChannelData,
  writeUnknownAttributes,
} from "../stun/index.ts";
import type { ClientPath, Millis, PeerConnectionId, ProtocolCounters, RelayId } from "./api.ts";
import type { Endpoint as PeerEndpoint } from "../net/endpoint.ts";
import { handleConnect } from "./handlers/connect.ts";
import { connectionBindNonceSource, handleConnectionBind } from "./handlers/connection-bind.ts";
import { handleAllocate } from "./handlers/allocate.ts";
import { handleBinding } from "./handlers/binding.ts";
import { handleChannelBind } from "./handlers/channel-bind.ts";
import { handleCreatePermission } from "./handlers/create-permission.ts";
import { handleRefresh } from "./handlers/refresh.ts";
import { RelayPath } from "./relay-path.ts";
import { admissionOf, redirectUnauthenticated, refuseAuthenticated } from "./redirect.ts";
import { RequestContext } from "./request.ts";
import { seal, startError } from "./responses.ts";
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
    this.handleRequest(listener, client, d, now);
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

  private handleRequest(listener: ClientPath, client: Endpoint, d: StunDecoder, now: Millis): void {
    const state = this.state;
    state.lastNow = now;
    const req = new RequestContext(state, listener, client, d, now, d.fingerprint >= 0);
    const method = d.method;

    // Error responses to requests that prove no key (the 420 to Binding, the 400 to other methods, the
    // 401 challenge) go out only within the source's rate limit: their source may be spoofed.
    if (method === StunMethod.Binding) {
      if (state.noStun) return; // coturn --no-stun: a TURN-only server stays silent to Binding
      // RFC 8489 §6.3.1: unknown comprehension-required attributes get 420 there (RFC 5780's are known
      // on a listener with an alternate address); Binding needs no authentication.
      return handleBinding(req);
    }
    const isTurnRequest = method === StunMethod.Allocate || method === StunMethod.Refresh ||
      method === StunMethod.CreatePermission || method === StunMethod.ChannelBind ||
      (state.tcp.io !== undefined && (method === StunMethod.Connect || method === StunMethod.ConnectionBind));
    // coturn --stun-only: TURN methods are treated as unknown ones (RFC 8489 §6.3.1: 400).
    if (!isTurnRequest || state.stunOnly) {
      if (!state.mayAnswerUnauthenticated(client, now)) return;
      state.counters.errorsSent++;
      state.reply(listener, client, seal(startError(d.bytes, method, ErrorCode.BadRequest), { fingerprint: req.fingerprint }));
      return;
    }

    // RFC 8489 §6.3.1 / RFC 8656 §7.2: a retransmission gets the very same response, with no new side effects.
    const existing = req.allocation;
    if (existing !== undefined) {
      const cached = existing.cachedResponse(d.bytes, now);
      if (cached !== undefined) {
        state.reply(listener, client, cached);
        return;
      }
    }

    // RFC 8656 §7.2 / RFC 8489 §10: a new allocation may be sent elsewhere (or refused while draining).
    // An Allocate that proves no key is redirected before authentication, as coturn does (./redirect.ts).
    let admission: Endpoint | "refuse" | undefined;
    const newAllocation = method === StunMethod.Allocate && existing === undefined;
    const provesKey = d.integrity >= 0 || d.integritySha256 >= 0;
    if (newAllocation && (!provesKey || state.auth === null)) {
      admission = admissionOf(req);
      if (admission !== undefined && admission !== "refuse") return redirectUnauthenticated(req, admission);
    }

    if (state.auth !== null) {
      const nonceSource = method === StunMethod.ConnectionBind ? connectionBindNonceSource(state, d, client) : client;
      const result = state.auth.check(d, nonceSource, now, req.fingerprint);
      if (!result.ok) {
        // A 438 comes only after MESSAGE-INTEGRITY checked out: that client holds the key.
        if (result.code !== ErrorCode.StaleNonce && !state.mayAnswerUnauthenticated(client, now)) return;
        state.counters.errorsSent++;
        if (result.code === ErrorCode.Unauthenticated) state.counters.unauthorized++;
        state.reply(listener, client, result.response);
        return;
      }
      req.auth = result;
    }
    // RFC 8489 §6.3.1: after authentication, unknown comprehension-required attributes mean 420.
    if (d.unknownCount !== 0) return this.unknownAttributes(req);
    // RFC 8656 §5: every request on an allocation must come from the user who created it.
    if (existing !== undefined && existing.username !== req.auth.username) return req.fail(ErrorCode.WrongCredentials);

    if (newAllocation) {
      if (provesKey && state.auth !== null) admission = admissionOf(req);
      if (admission !== undefined) return refuseAuthenticated(req, admission);
    }

    switch (method) {
      case StunMethod.Allocate: return handleAllocate(req);
      case StunMethod.Refresh: return handleRefresh(req);
      case StunMethod.CreatePermission: return handleCreatePermission(req);
      case StunMethod.ChannelBind: return handleChannelBind(req);
      case StunMethod.Connect: return handleConnect(req);
      case StunMethod.ConnectionBind: return handleConnectionBind(req);
    }
  }

  /** RFC 8489 §6.3.1.1: 420 listing the attributes we do not understand. */
  private unknownAttributes(req: RequestContext): void {
    const d = req.d;
    req.fail(ErrorCode.UnknownAttribute, (w) => writeUnknownAttributes(w, d.unknown.subarray(0, d.unknownCount)));
  }
}

export { PeerPolicy } from "./peer-policy.ts";
export { StaticUsers, RestSecretCredentials } from "./credentials.ts";
