/**
 * The data connections of TCP allocations (RFC 6062 §2.2), as the core keeps them: which allocation and
 * peer each CONNECTION-ID belongs to, whether it is still connecting (a Connect awaits its answer),
 * waiting for its ConnectionBind, or bound; and the 30 s timers of §5.2 (connect) and §5.3/§5.4 (bind).
 * The sockets are the engine's (TcpRelayIo); it reports what becomes of them.
 */
import type { Endpoint, EndpointKey } from "../net/endpoint.ts";
import { StunClass, StunMethod, StunWriter, writeConnectionId, writeXorAddress, Attr, ErrorCode, writeErrorCode } from "../stun/index.ts";
import type { ClientPath, ConnectionId, Millis, PeerConnectionId, TcpRelayIo } from "./api.ts";
import type { Allocation } from "./allocation.ts";
import { seal, type IntegrityKey } from "./responses.ts";
import type { ProtocolCounters } from "./counters.ts";
import type { TimerQueue } from "./timer-queue.ts";

/** What these connections need of the server's state (ServerState; an interface, so no import cycle). */
export interface TcpAllocationsHost {
  readonly timers: Pick<TimerQueue<PeerConnection>, "schedule" | "cancel">;
  readonly counters: ProtocolCounters;
  readonly software: Uint8Array | undefined;
  readonly maxPermissions: number;
  reply(listener: ClientPath, client: Endpoint, response: Uint8Array): void;
}

/** RFC 6062 §5.2 (a Connect's connection attempt) and §5.3/§5.4 (a connection waiting for ConnectionBind): 30 s. */
export const TCP_CONNECTION_TIMEOUT_MS = 30_000;

/** The Connect request a connecting peer connection answers once the engine reports the outcome. */
export interface PendingConnect {
  readonly listener: ClientPath;
  readonly client: Endpoint;
  /** The request's first 20 bytes: method and transaction id for the response. */
  readonly header: Uint8Array;
  readonly integrity: IntegrityKey | null;
  readonly fingerprint: boolean;
}

export class PeerConnection {
  timerSeq = 0;
  state: "connecting" | "awaiting-bind" | "bound" = "awaiting-bind";
  pending: PendingConnect | undefined;
  constructor(
    readonly id: PeerConnectionId,
    readonly allocation: Allocation,
    readonly peer: Endpoint,
    /** Connect's 30 s, or the 30 s to wait for ConnectionBind. */
    public deadline: Millis,
  ) {}
}

export class TcpAllocations {
  private readonly byId = new Map<PeerConnectionId, PeerConnection>();
  /** Per allocation, its connections by peer transport address (RFC 6062 §5.2: one per peer, 446). */
  private readonly byAllocation = new Map<Allocation, Map<EndpointKey, PeerConnection>>();

  constructor(
    private readonly state: TcpAllocationsHost,
    readonly io: TcpRelayIo | undefined,
    readonly timeoutMs: number,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  get(id: PeerConnectionId): PeerConnection | undefined {
    return this.byId.get(id);
  }

  /** How many connections allocation `a` holds. */
  countOf(a: Allocation): number {
    return this.byAllocation.get(a)?.size ?? 0;
  }

  toPeer(a: Allocation, peer: Endpoint): PeerConnection | undefined {
    return this.byAllocation.get(a)?.get(peer.key);
  }

  add(c: PeerConnection): void {
    this.byId.set(c.id, c);
    let table = this.byAllocation.get(c.allocation);
    if (table === undefined) this.byAllocation.set(c.allocation, (table = new Map()));
    table.set(c.peer.key, c);
    this.state.timers.schedule(c, c.deadline);
    this.state.counters.tcpPeerConnections++;
  }

  /** Forgets `c` (the engine closed it, or is told to here when `close`). */
  remove(c: PeerConnection, close: boolean): void {
    if (this.byId.get(c.id) !== c) return;
    this.byId.delete(c.id);
    const table = this.byAllocation.get(c.allocation);
    table?.delete(c.peer.key);
    if (table?.size === 0) this.byAllocation.delete(c.allocation);
    this.state.timers.cancel(c);
    this.state.counters.tcpPeerConnections--;
    if (close) this.io?.close(c.id);
  }

  /** The connection is bound to a client data connection (§5.4): no more timer, the engine pipes it. */
  bound(c: PeerConnection, client: ConnectionId): void {
    c.state = "bound";
    this.state.timers.cancel(c);
    this.io?.bind(c.id, client);
  }

  /**
   * RFC 6062 §5.2: the connection to the peer is up (or failed): the Connect gets its answer. `close`:
   * the engine still holds the socket (a timeout, not a failure it reported).
   */
  connected(c: PeerConnection, ok: boolean, now: Millis, close = false): void {
    const pending = c.pending;
    c.pending = undefined;
    if (!ok) {
      this.state.counters.tcpConnectFailures++;
      this.remove(c, close);
      if (pending) this.answer(pending, ErrorCode.ConnectionTimeoutOrFailure);
      return;
    }
    // §5.2: from now on the client has 30 s to bind it.
    c.state = "awaiting-bind";
    c.deadline = now + this.timeoutMs;
    this.state.timers.schedule(c, c.deadline);
    this.state.counters.tcpConnects++;
    if (pending) this.answer(pending, 0, c.id);
  }

  /** A timer fired: a Connect that took 30 s gets 447 (§5.2); a connection nobody bound goes (§5.3). */
  expire(c: PeerConnection): void {
    if (c.state === "bound") return;
    if (c.state === "connecting") return this.connected(c, false, 0, true);
    this.state.counters.tcpUnboundExpired++;
    this.remove(c, true);
  }

  /** Every connection of an allocation that ends (RFC 6062 §5: they go with it). */
  removeAllocation(a: Allocation): void {
    const table = this.byAllocation.get(a);
    if (table === undefined) return;
    for (const c of [...table.values()]) {
      if (c.pending) this.answer(c.pending, ErrorCode.ConnectionTimeoutOrFailure);
      this.remove(c, true);
    }
  }

  /**
   * RFC 6062 §5.3: a peer connected to the relayed address of `a`. Taken only when the peer's IP has a
   * permission (and the allocation has room); the client hears of it in a ConnectionAttempt and has
   * 30 s to bind it. False: the engine closes it.
   */
  accepted(a: Allocation, id: PeerConnectionId, peer: Endpoint, now: Millis): boolean {
    if (!a.tcp || !a.hasPermission(peer.hostKey, now)) return false;
    if (this.toPeer(a, peer) !== undefined || this.countOf(a) >= this.state.maxPermissions) return false;
    const c = new PeerConnection(id, a, peer, now + this.timeoutMs);
    this.add(c);
    this.announce(c);
    return true;
  }

  /** RFC 6062 §5.3: tells the client of a peer's incoming connection (ConnectionAttempt). */
  private announce(c: PeerConnection): void {
    const a = c.allocation;
    const id = new Uint8Array(12);
    crypto.getRandomValues(id);
    const w = new StunWriter(StunMethod.ConnectionAttempt, StunClass.Indication, id);
    writeConnectionId(w, c.id);
    writeXorAddress(w, Attr.XorPeerAddress, c.peer);
    this.state.counters.tcpConnectionAttempts++;
    this.state.reply(a.listener, a.client, seal(w, { software: this.state.software, fingerprint: false }));
  }

  /** The deferred answer to a Connect: success with CONNECTION-ID, or an error. */
  private answer(p: PendingConnect, code: number, id?: PeerConnectionId): void {
    const w = new StunWriter(StunMethod.Connect, code === 0 ? StunClass.SuccessResponse : StunClass.ErrorResponse, p.header.subarray(8, 20));
    if (code !== 0) {
      writeErrorCode(w, code);
      this.state.counters.errorsSent++;
    } else writeConnectionId(w, id!);
    this.state.reply(p.listener, p.client, seal(w, { software: this.state.software, integrity: p.integrity, fingerprint: p.fingerprint }));
  }
}
