/**
 * TURN over TCP (RFC 8656 §3.1): clients reach the server over TCP, relays to peers stay UDP. Each
 * accepted connection is its own 5-tuple, so it gets its own listener id in the protocol core. This is
 * the transport the engine sees: it accepts connections, routes epoll's events, closes and sweeps them.
 * Its parts: listening and accepting in tcp-listeners.ts, the open connections in tcp-connections.ts,
 * reading and framing in tcp-reading.ts, writing with the bounded backlog in tcp-writing.ts, moving a
 * connection between engines (RFC 6062 §5.4) in tcp-handover.ts, buffers and their budget in
 * stream-buffers.ts, TLS in tls-connection.ts (in) and tls-writing.ts (out).
 */
import { EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP, type Epoll, closeSocket, libc } from "../../ffi/index.ts";
import type { Endpoint, Family } from "../net/endpoint.ts";
import type { ConnectionId } from "../turn/api.ts";
import { ConnectionLimits, createConnectionTable } from "./connection-limits.ts";
import { SLOT } from "./counters.ts";
import { StreamBuffers } from "./stream-buffers.ts";
import type { HandedConnection } from "./stream-handoff.ts";
import { ConnectionTable, type Connection, type RawReader, type TcpHandlers } from "./tcp-connections.ts";
import { TcpHandover, type DetachedConnection } from "./tcp-handover.ts";
import { TcpListeners, type Origin } from "./tcp-listeners.ts";
import { rawInterest } from "./tcp-raw.ts";
import { TcpReader } from "./tcp-reading.ts";
import { TcpWriter } from "./tcp-writing.ts";
import { TlsEngine, type TlsEngineOptions, type TlsHost } from "./tls-connection.ts";

export interface TcpTransportOptions {
  /** Caps on connections per source and in total (TCP and TLS), shared by all engines. */
  limits: ConnectionLimits;
  /** Bytes of unread replies one connection may hold before it is closed. */
  maxBufferPerConnection: number;
  /** Bytes all connections may hold together beyond their first 4 KiB (partial frames, unread replies). */
  maxBufferPerEngine: number;
  /** A connection that has sent no whole message this long after it was accepted is closed (by sweep). */
  firstMessageTimeoutMs: number;
  /** TLS served here (tls-connection.ts): the context and the session mode; absent = no TLS listener. */
  tls?: Omit<TlsEngineOptions, "counters">;
  /** A TLS client that has not finished its handshake this long after it was accepted is closed (by sweep). */
  tlsHandshakeTimeoutMs: number;
  /** The engine's counter block (counters.ts): tcpConnections, tcpRefused, tcpClosedByLimit, tcpListenerParked. */
  counters: Float64Array;
  warn(message: string): void;
}

const DEFAULTS: TcpTransportOptions = {
  limits: new ConnectionLimits(createConnectionTable(), { total: 16384, perSource: 0 }),
  maxBufferPerConnection: 1 << 20,
  maxBufferPerEngine: 64 << 20,
  firstMessageTimeoutMs: 60_000,
  tlsHandshakeTimeoutMs: 10_000,
  counters: new Float64Array(SLOT.tcpListenerParked + 1),
  warn: () => {},
};

export type { TcpHandlers };

export class TcpTransport {
  private readonly epoll: Epoll;
  private readonly handlers: TcpHandlers;
  private readonly listening: TcpListeners;
  private readonly connections: ConnectionTable;
  private readonly options: TcpTransportOptions;
  private readonly buffers: StreamBuffers;
  private readonly reader: TcpReader;
  private readonly writer: TcpWriter;
  private readonly handover: TcpHandover;
  /** TLS terminated in this engine; null without a TLS listener. */
  readonly tls: TlsEngine | null;

  constructor(epoll: Epoll, handlers: TcpHandlers, options: Partial<TcpTransportOptions> = {}) {
    this.epoll = epoll;
    this.handlers = handlers;
    this.options = { ...DEFAULTS, ...options };
    this.listening = new TcpListeners(epoll, this.options.limits, this.options.counters, this.options.warn);
    this.connections = new ConnectionTable(this.options.counters);
    this.buffers = new StreamBuffers(this.options);
    this.tls = this.options.tls ? new TlsEngine({ ...this.options.tls, counters: this.options.counters }, this.tlsHost) : null;
    const close = (c: Connection, byLimit?: boolean) => this.close(c, byLimit);
    this.writer = new TcpWriter(this.connections, epoll, this.buffers, this.tls, close);
    const { limits, counters } = this.options;
    this.reader = new TcpReader(this.connections, epoll, this.buffers, this.tls, handlers, limits, counters, close);
    this.handover = new TcpHandover(this.connections, epoll, this.buffers, this.tls, this.reader, close);
  }

  /** What the TLS layer calls back into: framing, buffers, raw writes, closing (called only after the constructor). */
  private readonly tlsHost: TlsHost = {
    consume: (c, now) => this.reader.consume(c, now),
    grow: (c) => this.buffers.grow(c),
    writeRaw: (c, bytes, address, length) => this.writer.writeBytes(c, bytes, address, length),
    queue: (c, bytes) => this.writer.queue(c, bytes),
    close: (c, byLimit) => this.close(c, byLimit),
    isOpen: (c) => this.connections.withFd(c.fd) === c,
    armWritable: (c) => this.epoll.modify(c.fd, EPOLLIN | EPOLLRDHUP | EPOLLOUT),
    paused: (c) => {
      if (this.connections.withFd(c.fd) === c) this.epoll.modify(c.fd, rawInterest(c));
    },
  };

  /** A TLS listener (the TLS port; `balancer`: --tls-proxy-port, a PROXY header in clear first). */
  listenTls(family: Family, address: Uint8Array, port: number, balancer = false): number {
    return this.listening.listenTls(family, address, port, balancer);
  }

  listen(family: Family, address: Uint8Array, port: number): number {
    return this.listening.listen(family, address, port);
  }

  /**
   * A --tcp-proxy-port listener: each connection must start with a PROXY v1 or v2 header (HAProxy's
   * proxy-protocol.txt) within `proxyHeaderTimeoutMs`; the client it names is the connection's 5-tuple.
   * Only these listeners read a header from the network, so no client of the normal port can claim
   * another's address.
   */
  listenBalancer(family: Family, address: Uint8Array, port: number): number {
    return this.listening.listenBalancer(family, address, port);
  }

  /** Whether the connection's client reached the server over TLS (for --tls-alternate-server). */
  isTls(id: ConnectionId): boolean {
    return this.connections.withId(id)?.link != null;
  }

  owns(fd: number): boolean {
    return this.listening.owns(fd) || this.connections.has(fd);
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Bytes held by connections beyond their first 4 KiB buffer (bounded by maxBufferPerEngine). */
  get bufferedBytes(): number {
    return this.buffers.held;
  }

  /** Times a listener was parked because the process ran out of descriptors. */
  get parkings(): number {
    return this.listening.parkings;
  }

  /** epoll's event on `fd`; false when `fd` is none of this transport's (neither a connection nor a listener). */
  handleEvent(fd: number, mask: number, now: number): boolean {
    const c = this.connections.withFd(fd);
    if (c === undefined) {
      if (!this.listening.owns(fd)) return false;
      this.listening.handleEvent(fd, this.accepted);
      return true;
    }
    if (mask & EPOLLOUT) this.writer.writeBacklog(c, now);
    if (c.paused && mask & (EPOLLERR | EPOLLHUP)) this.close(c);
    else if (mask & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) this.reader.read(c, now);
    return true;
  }

  /** A connection the listeners accepted (and, on the normal port, admitted under the caps). */
  private readonly accepted = (fd: number, client: Endpoint, origin: Origin): void => {
    const direct = origin === "direct" || origin === "tls";
    const tls = (origin === "tls" || origin === "tlsBalancer") && this.tls !== null;
    const c: Connection = {
      ...this.buffers.fresh(), fd, id: this.connections.newId(), client, openedAt: Date.now(), spoke: false,
      awaitingProxyHeader: direct ? null : "balancer", counted: direct ? client.address : null,
      link: tls ? this.tls!.open(fd, origin === "tlsBalancer") : null,
    };
    this.connections.add(c);
    this.epoll.add(fd, EPOLLIN | EPOLLRDHUP);
  };

  /**
   * Writes one frame to connection `id`, zero-padded to 4 bytes (RFC 8656 §12.5); `raw`: bytes of a piped
   * connection (RFC 6062), unpadded. False if it is gone.
   */
  send(id: ConnectionId, data: Uint8Array, raw = false): boolean {
    return this.writer.send(id, data, 0, data.length, raw);
  }

  /** send() of the frame bytes[offset, offset + length): relayed data passes its arena and a range, not a view. */
  sendRange(id: ConnectionId, bytes: Uint8Array, offset: number, length: number): boolean {
    return this.writer.send(id, bytes, offset, length, false);
  }

  /** Bytes written to connection `id` that its socket has not taken yet. */
  backlogOf(id: ConnectionId): number {
    return this.writer.backlogOf(id);
  }

  /** RFC 6062 §5.4: connection `id` becomes a byte pipe to `reader` (tcp-reading.ts). */
  pipe(id: ConnectionId, reader: RawReader): boolean {
    return this.reader.pipe(id, reader);
  }

  /** A piped connection is read again (its reader had asked for a pause). */
  resumeReading(id: ConnectionId): void {
    this.reader.resumeReading(id);
  }

  /** RFC 6062 §5.4: takes connection `id` out without closing it, for another engine (tcp-handover.ts). */
  detach(id: ConnectionId): DetachedConnection | undefined {
    return this.handover.detach(id);
  }

  /** A connection another engine detached (./stream-handoff.ts): served here from now on. */
  adopt(handed: HandedConnection, now: number): void {
    this.handover.adopt(handed, now);
  }

  /** `byLimit`: closed by a limit of ours (counted), not by the client or an error. */
  private close(c: Connection, byLimit = false): void {
    if (!this.connections.remove(c)) return;
    if (byLimit) this.options.counters[SLOT.tcpClosedByLimit]!++;
    this.epoll.remove(c.fd);
    if (c.link && c.backlogLength === 0) this.tls!.writer.goodbye(c.fd, c.link);
    closeSocket(c.fd, libc);
    this.buffers.closed(c);
    if (c.link) this.tls!.closed(c.link);
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
    for (const c of this.connections.snapshot()) {
      const age = now - c.openedAt;
      // A TLS client's first-message clock starts when its handshake is done (--tls-handshake-timeout before).
      const handshaking = c.link !== null && !c.link.ready;
      const silent = !c.spoke && (handshaking ? age > this.options.tlsHandshakeTimeoutMs : now - (c.link?.readyAt ?? c.openedAt) > this.options.firstMessageTimeoutMs);
      if (!c.raw && (age > maxAgeMs || silent) && !keep(c.id)) {
        this.close(c, true);
        closed++;
      }
    }
    this.buffers.collectClosed();
    return closed;
  }

  /** Closes connection `id` (an operator ended its allocation); false when it is gone already. */
  closeConnection(id: ConnectionId): boolean {
    const c = this.connections.withId(id);
    if (c === undefined) return false;
    this.close(c);
    return true;
  }

  /** Closes the balancer connections that have not sent their PROXY header within `timeoutMs` of their accept. */
  sweepProxyHeaders(now: number, timeoutMs: number): number {
    let closed = 0;
    for (const c of this.connections.snapshot()) {
      if (c.awaitingProxyHeader === "balancer" && now - c.openedAt > timeoutMs) {
        this.close(c, true);
        closed++;
      }
    }
    return closed;
  }

  closeAll(): void {
    for (const c of this.connections.snapshot()) this.close(c);
    this.listening.closeAll();
    this.tls?.close();
  }
}
