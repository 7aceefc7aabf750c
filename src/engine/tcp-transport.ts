/**
 * TURN over TCP (RFC 8656 §3.1): clients reach the server over TCP, relays to peers stay UDP. Each
 * accepted connection is its own 5-tuple, so it gets its own listener id in the protocol core; bytes
 * are cut into STUN/ChannelData frames (src/stun/stream-framing.ts) and handed to the core one by one;
 * the core's replies come back here and are written, padded as the RFC asks, with a bounded backlog
 * when the socket is full. What one client can hold is bounded: connections per source and in total
 * (shared with the other engines and the TLS front end), bytes per connection and per engine, and a
 * listener that runs out of descriptors is parked instead of spinning (listener-park.ts); buffers and
 * their budget are stream-buffers.ts.
 */
import { ptr } from "bun:ffi";
import {
  AF_INET, EAGAIN, EINTR, EMFILE, ENOBUFS, ENOMEM, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP, Epoll, SOCKADDR_SLOT,
  acceptConnection, closeSocket, libc, openTcpListener, openUnixListener, sockaddrFamily, sockaddrIn6Address, sockaddrInAddress,
  sockaddrPort,
} from "../../ffi/index.ts";
import { ipv4Endpoint, ipv6Endpoint, type Endpoint, type Family } from "../net/endpoint.ts";
import { nextStreamFrame, streamPadding } from "../stun/stream-framing.ts";
import { parseProxyHeader, parseProxyV2 } from "../net/proxy-protocol.ts";
import { FIRST_CONNECTION_ID, connectionId, type ConnectionId } from "../turn/api.ts";
import { ConnectionLimits, createConnectionTable } from "./connection-limits.ts";
import { ListenerPark } from "./listener-park.ts";
import { SLOT } from "./counters.ts";
import { MAX_FRAME, StreamBuffers, type Buffered } from "./stream-buffers.ts";

/** ENFILE: the system-wide table is full (not in ffi/errno.ts). */
const ENFILE = 23;

/** Stands in for a proxied connection's client until its PROXY header has been read. */
const UNKNOWN_CLIENT = ipv4Endpoint(0, 0);

const MAX_ACCEPTS_PER_WAKE = 64;
const MAX_READS_PER_WAKE = 16;

interface Connection extends Buffered {
  fd: number;
  id: ConnectionId;
  client: Endpoint;
  /** When it was accepted (ms), for the sweep of connections that never allocate. */
  openedAt: number;
  /** Whether a whole message has arrived yet: a client that sends none is closed sooner. */
  spoke: boolean;
  /**
   * The stream starts with a PROXY header naming the real client: "front" from the TLS front end (v2,
   * trusted), "balancer" from a load balancer on --tcp-proxy-port (v1 or v2, within a deadline); null once read.
   */
  awaitingProxyHeader: "front" | "balancer" | null;
  /** The source address counted in the connection caps; null for proxied streams (the front end counts those). */
  counted: Uint8Array | null;
  /** Came through the TLS front end (a turns: client), for choosing --tls-alternate-server. */
  tls: boolean;
}

export interface TcpTransportOptions {
  /** Caps on connections per source and in total, shared by all engines and the TLS front end. */
  limits: ConnectionLimits;
  /** Bytes of unread replies one connection may hold before it is closed. */
  maxBufferPerConnection: number;
  /** Bytes all connections may hold together beyond their first 4 KiB (partial frames, unread replies). */
  maxBufferPerEngine: number;
  /** A connection that has sent no whole message this long after it was accepted is closed (by sweep). */
  firstMessageTimeoutMs: number;
  /** The engine's counter block (counters.ts): tcpConnections, tcpRefused, tcpClosedByLimit, tcpListenerParked. */
  counters: Float64Array;
  warn(message: string): void;
}

const DEFAULTS: TcpTransportOptions = {
  limits: new ConnectionLimits(createConnectionTable(), { total: 16384, perSource: 0 }),
  maxBufferPerConnection: 1 << 20,
  maxBufferPerEngine: 64 << 20,
  firstMessageTimeoutMs: 60_000,
  counters: new Float64Array(SLOT.tcpListenerParked + 1),
  warn: () => {},
};

export interface TcpHandlers {
  frame(connection: ConnectionId, client: Endpoint, frame: Uint8Array, now: number): void;
  closed(connection: ConnectionId): void;
}

export class TcpTransport {
  private readonly epoll: Epoll;
  private readonly handlers: TcpHandlers;
  private readonly listeners = new Set<number>();
  /** Unix listeners the TLS front end connects to; their connections carry a PROXY header. */
  private readonly proxiedListeners = new Set<number>();
  /** --tcp-proxy-port listeners: a load balancer's connections, each starting with a PROXY v1 or v2 header. */
  private readonly balancerListeners = new Set<number>();
  private readonly byFd = new Map<number, Connection>();
  private readonly byId = new Map<ConnectionId, Connection>();
  private readonly options: TcpTransportOptions;
  private readonly park: ListenerPark;
  private readonly buffers: StreamBuffers;
  /** Connection ids stand for listeners of their own in the core (each connection is its own 5-tuple). */
  private nextId = FIRST_CONNECTION_ID;
  private readonly name = new Uint8Array(new ArrayBuffer(SOCKADDR_SLOT));
  private readonly nameLength = new Uint32Array(1);
  private readonly outBuffer = new ArrayBuffer(MAX_FRAME + 4);
  private readonly outBytes = new Uint8Array(this.outBuffer);
  private readonly outAddress = ptr(this.outBuffer) as unknown as number;

  constructor(epoll: Epoll, handlers: TcpHandlers, options: Partial<TcpTransportOptions> = {}) {
    this.epoll = epoll;
    this.handlers = handlers;
    this.options = { ...DEFAULTS, ...options };
    this.park = new ListenerPark(epoll, this.options.warn);
    this.buffers = new StreamBuffers(this.options);
  }

  listen(family: Family, address: Uint8Array, port: number): number {
    const fd = openTcpListener({ family, address, port, reusePort: true });
    this.listeners.add(fd);
    this.epoll.add(fd, EPOLLIN);
    return fd;
  }

  /**
   * A --tcp-proxy-port listener: each connection must start with a PROXY v1 or v2 header (HAProxy's
   * proxy-protocol.txt) within `proxyHeaderTimeoutMs`; the client it names is the connection's 5-tuple.
   * Only these listeners read a header from the network, so no client of the normal port can claim
   * another's address.
   */
  listenBalancer(family: Family, address: Uint8Array, port: number): number {
    const fd = this.listen(family, address, port);
    this.balancerListeners.add(fd);
    return fd;
  }

  /** A listener for decrypted TLS streams from the front end in the main thread (src/engine/tls-front.ts). */
  listenUnix(path: string): number {
    const fd = openUnixListener(path);
    this.listeners.add(fd);
    this.proxiedListeners.add(fd);
    this.epoll.add(fd, EPOLLIN);
    return fd;
  }

  /** Whether the connection's client reached the server over TLS (through the front end). */
  isTls(id: ConnectionId): boolean {
    return this.byId.get(id)?.tls === true;
  }

  owns(fd: number): boolean {
    return this.listeners.has(fd) || this.byFd.has(fd) || this.park.owns(fd);
  }

  get connectionCount(): number {
    return this.byFd.size;
  }

  /** Bytes held by connections beyond their first 4 KiB buffer (bounded by maxBufferPerEngine). */
  get bufferedBytes(): number {
    return this.buffers.held;
  }

  /** Times a listener was parked because the process ran out of descriptors. */
  get parkings(): number {
    return this.park.parkings;
  }

  handleEvent(fd: number, mask: number, now: number): void {
    if (this.listeners.has(fd)) return this.accept(fd);
    if (this.park.owns(fd)) return this.park.resume();
    const c = this.byFd.get(fd);
    if (!c) return;
    if (mask & EPOLLOUT) this.writeBacklog(c);
    if (mask & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) this.read(c, now);
  }

  private accept(listenerFd: number): void {
    for (let i = 0; i < MAX_ACCEPTS_PER_WAKE; i++) {
      const fd = acceptConnection(listenerFd, this.name, this.nameLength, libc);
      if (fd === -EMFILE || fd === -ENFILE || fd === -ENOBUFS || fd === -ENOMEM) {
        this.options.counters[SLOT.tcpListenerParked]!++;
        return this.park.park(listenerFd, -fd);
      }
      if (fd < 0) return; // EAGAIN, or a connection that died in the queue
      const proxied = this.proxiedListeners.has(listenerFd);
      const balanced = this.balancerListeners.has(listenerFd);
      const port = sockaddrPort(this.name, 0);
      const client = proxied
        ? UNKNOWN_CLIENT
        : sockaddrFamily(this.name, 0) === AF_INET
          ? ipv4Endpoint(sockaddrInAddress(this.name, 0), port)
          : ipv6Endpoint(sockaddrIn6Address(this.name, 0), port);
      // Over a cap: closed at once (the client sees its connection reset). Proxied streams were counted
      // by the TLS front end when their client connected; a balancer's are counted by the client its
      // header names (the balancer's own address would hit the per-source cap).
      if (!proxied && !balanced && !this.options.limits.admit(client.address)) {
        closeSocket(fd, libc);
        this.options.counters[SLOT.tcpRefused]!++;
        continue;
      }
      const c: Connection = {
        ...this.buffers.fresh(), fd, id: connectionId(this.nextId++), client, openedAt: Date.now(), spoke: false,
        awaitingProxyHeader: proxied ? "front" : balanced ? "balancer" : null, counted: proxied || balanced ? null : client.address,
        tls: proxied, // the TLS front end's streams are the only "front" ones
      };
      this.byFd.set(fd, c);
      this.options.counters[SLOT.tcpConnections] = this.byFd.size;
      this.byId.set(c.id, c);
      this.epoll.add(fd, EPOLLIN | EPOLLRDHUP);
    }
  }

  private read(c: Connection, now: number): void {
    for (let round = 0; round < MAX_READS_PER_WAKE; round++) {
      if (c.end === c.bytes.length && !this.buffers.grow(c)) return this.close(c, true);
      const n = libc.read(c.fd, c.address + c.end, c.bytes.length - c.end);
      if (n === -EINTR) continue;
      if (n === -EAGAIN) return;
      if (n <= 0) return this.close(c); // 0: the client closed; < 0: reset
      c.end += n;
      if (c.awaitingProxyHeader) {
        const header = c.awaitingProxyHeader === "front" ? parseProxyV2(c.bytes, c.start, c.end) : parseProxyHeader(c.bytes, c.start, c.end);
        if (header === -1) return this.close(c);
        if (header === 0) continue;
        if (c.awaitingProxyHeader === "balancer") {
          if (header.client) c.client = header.client;
          if (!this.options.limits.admit(c.client.address)) {
            this.options.counters[SLOT.tcpRefused]!++;
            return this.close(c);
          }
          c.counted = c.client.address;
        } else c.client = header.client!;
        c.start += header.length;
        c.awaitingProxyHeader = null;
      }
      // A new connection has no allocation, so its first message is STUN, never ChannelData: anything
      // else (a PROXY v1 line on the normal port, "PR..." read as channel 0x5052) is closed at once.
      if (!c.spoke && c.start < c.end && (c.bytes[c.start]! & 0xc0) !== 0) return this.close(c, true);
      for (;;) {
        const frame = nextStreamFrame(c.bytes, c.start, c.end);
        if (frame < 0) return this.close(c); // not STUN or ChannelData: the stream cannot be resynchronised
        if (frame === 0) break;
        c.spoke = true;
        this.handlers.frame(c.id, c.client, c.bytes.subarray(c.start, c.start + frame), now);
        if (!this.byFd.has(c.fd)) return; // closed while handling
        c.start += frame;
      }
      if (c.start === c.end) this.buffers.emptied(c);
      else if (c.start > 0 && c.end === c.bytes.length) {
        c.bytes.copyWithin(0, c.start, c.end);
        c.end -= c.start;
        c.start = 0;
      }
    }
  }

  /** Writes one frame to connection `id`, zero-padded to 4 bytes (RFC 8656 §12.5). False if it is gone. */
  send(id: ConnectionId, data: Uint8Array): boolean {
    const c = this.byId.get(id);
    if (!c) return false;
    const pad = streamPadding(data.length);
    const total = data.length + pad;
    if (total > this.outBytes.length) return false;
    this.outBytes.set(data, 0);
    this.outBytes.fill(0, data.length, total);
    if (c.backlogLength > 0) return this.queue(c, this.outBytes.subarray(0, total));
    let written = 0;
    while (written < total) {
      const n = libc.write(c.fd, this.outAddress + written, total - written);
      if (n === -EINTR) continue;
      if (n === -EAGAIN) break;
      if (n < 0) {
        this.close(c);
        return false;
      }
      written += n;
    }
    if (written < total) return this.queue(c, this.outBytes.subarray(written, total));
    return true;
  }

  private queue(c: Connection, rest: Uint8Array): boolean {
    const wasEmpty = c.backlogLength === 0;
    if (!this.buffers.appendBacklog(c, rest)) {
      this.close(c, true); // the client stopped reading: it cannot hold the server's memory hostage
      return false;
    }
    if (wasEmpty) this.epoll.modify(c.fd, EPOLLIN | EPOLLRDHUP | EPOLLOUT);
    return true;
  }

  private writeBacklog(c: Connection): void {
    if (!c.backlog || c.backlogLength === 0) return;
    const base = ptr(c.backlog) as unknown as number;
    let written = 0;
    while (written < c.backlogLength) {
      const n = libc.write(c.fd, base + written, c.backlogLength - written);
      if (n === -EINTR) continue;
      if (n === -EAGAIN) break;
      if (n < 0) return this.close(c);
      written += n;
    }
    this.buffers.consumedBacklog(c, written);
    if (c.backlogLength === 0) this.epoll.modify(c.fd, EPOLLIN | EPOLLRDHUP);
  }

  /** `byLimit`: closed by a limit of ours (counted), not by the client or an error. */
  private close(c: Connection, byLimit = false): void {
    if (!this.byFd.delete(c.fd)) return;
    this.options.counters[SLOT.tcpConnections] = this.byFd.size;
    if (byLimit) this.options.counters[SLOT.tcpClosedByLimit]!++;
    this.byId.delete(c.id);
    this.epoll.remove(c.fd);
    closeSocket(c.fd, libc);
    this.buffers.closed(c);
    if (c.counted) this.options.limits.release(c.counted);
    this.handlers.closed(c.id);
  }

  /**
   * Closes every connection older than `maxAgeMs` for which `keep(id)` is false (the engine keeps those
   * with an allocation): a TCP connection costs an fd and a buffer, so one that never allocates, or
   * outlives its allocation, must not hold them for ever (a slow-open flood would). One that has not
   * sent a whole message within firstMessageTimeoutMs goes sooner: a connect-and-stay-silent flood
   * would otherwise hold the connection caps for maxAgeMs.
   */
  sweep(now: number, maxAgeMs: number, keep: (connection: ConnectionId) => boolean): number {
    let closed = 0;
    for (const c of [...this.byFd.values()]) {
      const age = now - c.openedAt;
      if ((age > maxAgeMs || (!c.spoke && age > this.options.firstMessageTimeoutMs)) && !keep(c.id)) {
        this.close(c, true);
        closed++;
      }
    }
    this.buffers.collectClosed();
    return closed;
  }

  /** Closes connection `id` (an operator ended its allocation); false when it is gone already. */
  closeConnection(id: ConnectionId): boolean {
    const c = this.byId.get(id);
    if (c === undefined) return false;
    this.close(c);
    return true;
  }

  /** Closes the balancer connections that have not sent their PROXY header within `timeoutMs` of their accept. */
  sweepProxyHeaders(now: number, timeoutMs: number): number {
    let closed = 0;
    for (const c of [...this.byFd.values()]) {
      if (c.awaitingProxyHeader === "balancer" && now - c.openedAt > timeoutMs) {
        this.close(c, true);
        closed++;
      }
    }
    return closed;
  }

  closeAll(): void {
    for (const c of [...this.byFd.values()]) this.close(c);
    for (const fd of this.listeners) {
      if (!this.park.isParked(fd)) this.epoll.remove(fd);
      this.park.forget(fd);
      closeSocket(fd, libc);
    }
    this.listeners.clear();
    this.proxiedListeners.clear();
    this.balancerListeners.clear();
    this.park.close();
  }
}
