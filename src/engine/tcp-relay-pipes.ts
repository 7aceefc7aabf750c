/**
 * The engine's side of RFC 6062 TCP relays (TcpRelayIo): the peers' TCP connections on the relayed
 * addresses, accepted on an allocation's listening socket or connected from its address, tracked until
 * they close, and bound to a client data connection (ConnectionBind); epoll's events on them are routed
 * here. The byte pipe a bound connection becomes, the data phase, is tcp-relay-peer.ts.
 */
import { ptr } from "bun:ffi";
import {
  AF_INET, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP, type Epoll, SOCKADDR_SLOT, acceptConnection,
  closeSocket, connectResult, libc, sockaddrFamily, sockaddrIn6Address, sockaddrInAddress, sockaddrPort,
  startTcpRelayConnect,
} from "../../ffi/index.ts";
import { ipv4Endpoint, ipv6Endpoint, type Endpoint } from "../net/endpoint.ts";
import { peerConnectionId, type ConnectionId, type PeerConnectionId, type RelayHandle, type RelayId, type TcpRelayIo } from "../turn/api.ts";
import { SLOT } from "./counters.ts";
import type { TcpTransport } from "./tcp-transport.ts";
import { ConnectionIds } from "./tcp-relay-ids.ts";
import { CHUNK, PeerSide, type PipeHost, type TcpRelayEvents } from "./tcp-relay-peer.ts";
import { ListenerPark, acceptWantsParking } from "./listener-park.ts";

export type { TcpRelayEvents };

/** A relayed address's listening socket (RelaySockets opens it on a pool port). */
export interface TcpRelayListener {
  readonly fd: number;
  readonly handle: RelayHandle;
  /** The address and port bound locally (the handle's may be the advertised --external-ip). */
  readonly local: Uint8Array;
  readonly port: number;
}

export class TcpRelayPipes implements TcpRelayIo, PipeHost {
  private readonly listeners = new Map<number, TcpRelayListener>();
  private readonly byFd = new Map<number, PeerSide>();
  private readonly byId = new Map<PeerConnectionId, PeerSide>();
  private readonly byClient = new Map<ConnectionId, PeerSide>();
  private readonly ids: ConnectionIds;
  readonly scratch = new Uint8Array(new ArrayBuffer(CHUNK));
  readonly scratchAddress = ptr(this.scratch) as unknown as number;
  private readonly name = new Uint8Array(new ArrayBuffer(SOCKADDR_SLOT));
  private readonly nameLength = new Uint32Array(1);
  /** Relayed addresses' listeners whose accept ran out of descriptors wait here (as the client listeners do). */
  private readonly park: ListenerPark;
  /** Set by the engine once the core exists (the core is built with this as its TcpRelayIo). */
  events: TcpRelayEvents | undefined;

  constructor(
    readonly epoll: Epoll,
    readonly tcp: TcpTransport,
    readonly counters: Float64Array,
    engineIndex: number,
    private readonly listenerOf: (relay: RelayId) => TcpRelayListener | undefined,
    warn?: (message: string) => void,
    /** --max-tcp-buffer-total: what this engine's pipes may hold together; a pipe that needs more is closed. */
    readonly maxBuffered = Infinity,
  ) {
    this.ids = new ConnectionIds(engineIndex);
    this.park = new ListenerPark(epoll, warn);
  }

  owns(fd: number): boolean {
    return this.byFd.has(fd) || this.listeners.has(fd) || this.park.owns(fd);
  }

  listening(listener: TcpRelayListener): void {
    this.listeners.set(listener.fd, listener);
    this.epoll.add(listener.fd, EPOLLIN);
  }

  /** The allocation's relay closes: its listening socket leaves epoll (RelaySockets closes the fd). */
  unlisten(listener: TcpRelayListener): void {
    if (!this.listeners.delete(listener.fd)) return;
    if (this.park.isParked(listener.fd)) this.park.forget(listener.fd);
    else this.epoll.remove(listener.fd);
  }

  handleEvent(fd: number, mask: number, now: number): void {
    const listener = this.listeners.get(fd);
    if (listener !== undefined) return this.accept(listener, now);
    if (this.park.owns(fd)) return this.park.resume();
    const p = this.byFd.get(fd);
    if (p === undefined) return;
    if (p.state === "connecting") {
      const error = mask & (EPOLLOUT | EPOLLERR | EPOLLHUP) ? connectResult(fd) : 0;
      if (error !== 0 || mask & EPOLLHUP) return this.drop(p, (id) => this.events?.connected(id, false, now));
      p.state = "waiting";
      this.epoll.modify(fd, 0);
      this.events?.connected(p.id, true, now);
      return;
    }
    if (p.state === "waiting") {
      // Not read until bound; an error or hang-up means the peer is gone.
      if (mask & (EPOLLERR | EPOLLHUP)) this.lost(p);
      return;
    }
    // Paused, the peer's socket is not read: an error or hang-up there ends the pipe (else epoll repeats it).
    if (p.paused && mask & (EPOLLERR | EPOLLHUP)) return this.lost(p);
    if (mask & EPOLLOUT) p.writeBacklog();
    if (this.byFd.get(fd) === p && mask & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) p.readPeer();
  }

  // --- TcpRelayIo (called by the core) -----------------------------------------------------------

  connect(relay: RelayHandle, peer: Endpoint): PeerConnectionId | 0 {
    const listener = this.listenerOf(relay.id);
    if (listener === undefined || listener.local.length !== peer.address.length) return 0;
    const fd = startTcpRelayConnect(listener.local, listener.port, peer.address, peer.port);
    if (fd < 0) return 0;
    const p = this.track(fd);
    p.state = "connecting";
    this.epoll.add(fd, EPOLLOUT);
    return p.id;
  }

  bind(id: PeerConnectionId, client: ConnectionId): void {
    const p = this.byId.get(id);
    if (p === undefined || p.state !== "waiting" || !this.tcp.pipe(client, p)) return;
    p.state = "piped";
    p.client = client;
    this.byClient.set(client, p);
    this.epoll.modify(p.fd, EPOLLIN | EPOLLRDHUP);
  }

  close(id: PeerConnectionId): void {
    const p = this.byId.get(id);
    if (p !== undefined) this.drop(p);
  }

  /** The client data connection closed (the TCP transport's close): its peer goes too. */
  clientClosed(client: ConnectionId): void {
    const p = this.byClient.get(client);
    if (p !== undefined) this.lost(p);
  }

  // --- PipeHost (called by the pipes, tcp-relay-peer.ts) ----------------------------------------

  holds(p: PeerSide): boolean {
    return this.byId.get(p.id) === p;
  }

  lost(p: PeerSide): void {
    this.drop(p, (id) => this.events?.closed(id));
  }

  // --- accepting and tracking ----------------------------------------------------------------------

  private accept(listener: TcpRelayListener, now: number): void {
    for (let i = 0; i < 64; i++) {
      const fd = acceptConnection(listener.fd, this.name, this.nameLength, libc);
      if (fd < 0 && acceptWantsParking(-fd)) {
        this.counters[SLOT.tcpListenerParked]!++;
        return this.park.park(listener.fd, -fd);
      }
      if (fd < 0) return;
      const port = sockaddrPort(this.name, 0);
      const peer = sockaddrFamily(this.name, 0) === AF_INET
        ? ipv4Endpoint(sockaddrInAddress(this.name, 0), port)
        : ipv6Endpoint(sockaddrIn6Address(this.name, 0), port);
      const p = this.track(fd);
      this.epoll.add(fd, 0);
      if (this.events?.accepted(listener.handle.id, peer, p.id, now) !== true) {
        this.counters[SLOT.tcpRelayRefused]!++;
        this.drop(p);
      }
    }
  }

  private track(fd: number): PeerSide {
    const p = new PeerSide(fd, peerConnectionId(this.ids.mint((id) => this.byId.has(peerConnectionId(id)))), this);
    this.byFd.set(fd, p);
    this.byId.set(p.id, p);
    return p;
  }

  /** Closes a peer connection and, when piped, its client connection; `tell` reports it to the core. */
  private drop(p: PeerSide, tell?: (id: PeerConnectionId) => void): void {
    if (this.byId.get(p.id) !== p) return;
    this.byId.delete(p.id);
    this.byFd.delete(p.fd);
    this.epoll.remove(p.fd);
    closeSocket(p.fd, libc);
    if (p.backlog !== null) this.counters[SLOT.tcpRelayBuffered]! -= p.backlog.length;
    this.counters[SLOT.tcpRelayBuffered]! -= p.clientHeld;
    p.backlog = null;
    p.clientHeld = 0;
    if (p.client !== 0) {
      this.byClient.delete(p.client);
      this.tcp.closeConnection(p.client);
    }
    tell?.(p.id);
  }

  closeAll(): void {
    for (const p of [...this.byId.values()]) this.drop(p);
    for (const listener of [...this.listeners.values()]) this.unlisten(listener);
    this.park.close();
  }
}
