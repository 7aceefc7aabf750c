/**
 * The engine's side of RFC 6062 TCP relays (TcpRelayIo): the peers' TCP connections on the relayed
 * addresses (accepted on an allocation's listening socket, or connected from its address), and, once a
 * client data connection is bound to one (ConnectionBind), the byte pipe between the two.
 *
 * Back-pressure: a side is read only while the other side has nothing left unwritten, so each direction
 * holds at most one read (64 KiB) in memory; past that the reader leaves epoll's read interest and TCP's
 * own flow control pushes back on its sender. Closing either side closes the other.
 */
import { ptr } from "bun:ffi";
import {
  AF_INET, EAGAIN, EINTR, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP, type Epoll, SOCKADDR_SLOT,
  acceptConnection, closeSocket, connectResult, libc, sockaddrFamily, sockaddrIn6Address, sockaddrInAddress,
  sockaddrPort, startTcpRelayConnect, writeSome,
} from "../../ffi/index.ts";
import { ipv4Endpoint, ipv6Endpoint, type Endpoint } from "../net/endpoint.ts";
import { peerConnectionId, type ConnectionId, type PeerConnectionId, type RelayHandle, type RelayId, type TcpRelayIo } from "../turn/api.ts";
import { SLOT } from "./counters.ts";
import type { RawReader } from "./tcp-connections.ts";
import type { TcpTransport } from "./tcp-transport.ts";
import { ConnectionIds } from "./tcp-relay-ids.ts";
import { ListenerPark, acceptWantsParking } from "./listener-park.ts";

const CHUNK = 1 << 16;
const MAX_READS_PER_WAKE = 16;

/** A relayed address's listening socket (RelaySockets opens it on a pool port). */
export interface TcpRelayListener {
  readonly fd: number;
  readonly handle: RelayHandle;
  /** The address and port bound locally (the handle's may be the advertised --external-ip). */
  readonly local: Uint8Array;
  readonly port: number;
}

/** What the pipes report to the protocol core. */
export interface TcpRelayEvents {
  connected(id: PeerConnectionId, ok: boolean, now: number): void;
  accepted(relay: RelayId, peer: Endpoint, id: PeerConnectionId, now: number): boolean;
  closed(id: PeerConnectionId): void;
  /** Bytes piped each way through connection `id` (for its allocation's usage record). */
  traffic(id: PeerConnectionId, toPeer: number, toClient: number): void;
}

class PeerSide implements RawReader {
  state: "connecting" | "waiting" | "piped" = "waiting";
  client = 0 as ConnectionId;
  /** Bytes from the client the peer's socket has not taken yet (at most one read). */
  backlog: Uint8Array | null = null;
  backlogAt = 0;
  /** Peer reading stopped until the client's backlog drains. */
  paused = false;
  /** What this pipe holds in the client connection's backlog, for the tcpRelayBuffered gauge. */
  clientHeld = 0;
  constructor(readonly fd: number, readonly id: PeerConnectionId, private readonly pipes: TcpRelayPipes) {}

  data(bytes: Uint8Array, offset: number, length: number): boolean {
    return this.pipes.toPeer(this, bytes, offset, length);
  }

  drained(): void {
    this.pipes.clientDrained(this);
  }
}

export class TcpRelayPipes implements TcpRelayIo {
  private readonly listeners = new Map<number, TcpRelayListener>();
  private readonly byFd = new Map<number, PeerSide>();
  private readonly byId = new Map<PeerConnectionId, PeerSide>();
  private readonly byClient = new Map<ConnectionId, PeerSide>();
  private readonly ids: ConnectionIds;
  private readonly scratch = new Uint8Array(new ArrayBuffer(CHUNK));
  private readonly scratchAddress = ptr(this.scratch) as unknown as number;
  private readonly name = new Uint8Array(new ArrayBuffer(SOCKADDR_SLOT));
  private readonly nameLength = new Uint32Array(1);
  /** Relayed addresses' listeners whose accept ran out of descriptors wait here (as the client listeners do). */
  private readonly park: ListenerPark;
  /** Set by the engine once the core exists (the core is built with this as its TcpRelayIo). */
  events: TcpRelayEvents | undefined;

  constructor(
    private readonly epoll: Epoll,
    private readonly tcp: TcpTransport,
    private readonly counters: Float64Array,
    engineIndex: number,
    private readonly listenerOf: (relay: RelayId) => TcpRelayListener | undefined,
    warn?: (message: string) => void,
    /** --max-tcp-buffer-total: what this engine's pipes may hold together; a pipe that needs more is closed. */
    private readonly maxBuffered = Infinity,
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
      if (mask & (EPOLLERR | EPOLLHUP)) this.drop(p, (id) => this.events?.closed(id));
      return;
    }
    // Paused, the peer's socket is not read: an error or hang-up there ends the pipe (else epoll repeats it).
    if (p.paused && mask & (EPOLLERR | EPOLLHUP)) return this.drop(p, (id) => this.events?.closed(id));
    if (mask & EPOLLOUT) this.writePeerBacklog(p);
    if (this.byFd.get(fd) === p && mask & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) this.readPeer(p);
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

  // --- the pipe ------------------------------------------------------------------------------------

  /** Client bytes for the peer: written at once, the rest kept; false pauses the client until it leaves. */
  toPeer(p: PeerSide, bytes: Uint8Array, offset: number, length: number): boolean {
    if (this.byId.get(p.id) !== p) return false;
    this.counters[SLOT.tcpRelayBytesToPeer]! += length;
    this.events?.traffic(p.id, length, 0);
    const written = writeSome(p.fd, (ptr(bytes) as unknown as number) + offset, length);
    if (written < 0) {
      this.drop(p, (id) => this.events?.closed(id));
      return false;
    }
    if (written === length) return true;
    if (this.counters[SLOT.tcpRelayBuffered]! + length - written > this.maxBuffered) {
      this.counters[SLOT.tcpClosedByLimit]!++;
      this.drop(p, (id) => this.events?.closed(id));
      return false;
    }
    p.backlog = bytes.slice(offset + written, offset + length);
    p.backlogAt = 0;
    this.counters[SLOT.tcpRelayBuffered]! += p.backlog.length;
    this.epoll.modify(p.fd, this.peerInterest(p));
    return false;
  }

  private writePeerBacklog(p: PeerSide): void {
    const backlog = p.backlog;
    if (backlog === null) return;
    const written = writeSome(p.fd, (ptr(backlog) as unknown as number) + p.backlogAt, backlog.length - p.backlogAt);
    if (written < 0) return this.drop(p, (id) => this.events?.closed(id));
    p.backlogAt += written;
    if (p.backlogAt < backlog.length) return;
    this.counters[SLOT.tcpRelayBuffered]! -= backlog.length;
    p.backlog = null;
    this.epoll.modify(p.fd, this.peerInterest(p));
    this.tcp.resumeReading(p.client);
  }

  private readPeer(p: PeerSide): void {
    for (let round = 0; round < MAX_READS_PER_WAKE; round++) {
      if (this.tcp.backlogOf(p.client) > 0) {
        p.paused = true;
        this.epoll.modify(p.fd, this.peerInterest(p));
        return;
      }
      const n = libc.read(p.fd, this.scratchAddress, CHUNK);
      if (n === -EINTR) continue;
      if (n === -EAGAIN) return;
      // The peer ended: read only while the client has nothing pending, so nothing is left behind (and
      // the client's side is read only while the peer's has nothing pending: the same holds the other way).
      if (n <= 0) return this.drop(p, (id) => this.events?.closed(id));
      this.counters[SLOT.tcpRelayBytesToClient]! += n;
      this.events?.traffic(p.id, 0, n);
      if (!this.tcp.send(p.client, this.scratch.subarray(0, n), true)) return; // the client is gone: its close dropped p
      this.holdClient(p);
    }
  }

  /** The client's backlog emptied: the peer is read again. */
  clientDrained(p: PeerSide): void {
    this.holdClient(p);
    if (!p.paused || this.byId.get(p.id) !== p) return;
    p.paused = false;
    this.epoll.modify(p.fd, this.peerInterest(p));
  }

  private holdClient(p: PeerSide): void {
    const held = this.tcp.backlogOf(p.client);
    this.counters[SLOT.tcpRelayBuffered]! += held - p.clientHeld;
    p.clientHeld = held;
  }

  private peerInterest(p: PeerSide): number {
    if (p.state !== "piped") return 0;
    return (p.paused ? 0 : EPOLLIN | EPOLLRDHUP) | (p.backlog !== null ? EPOLLOUT : 0);
  }

  /** The client data connection closed (the TCP transport's close): its peer goes too. */
  clientClosed(client: ConnectionId): void {
    const p = this.byClient.get(client);
    if (p !== undefined) this.drop(p, (id) => this.events?.closed(id));
  }

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
