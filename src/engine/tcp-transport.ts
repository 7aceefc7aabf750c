/**
 * TURN over TCP (RFC 8656 §3.1): clients reach the server over TCP, relays to peers stay UDP. Each
 * accepted connection is its own 5-tuple, so it gets its own listener id in the protocol core. This is
 * the connections' bytes: what arrives is cut into STUN/ChannelData frames (src/stun/stream-framing.ts)
 * after any PROXY header and handed to the core one by one; the core's replies are written here, padded
 * as the RFC asks, with a bounded backlog when the socket is full. Listening and accepting are
 * tcp-listeners.ts, the open connections tcp-connections.ts, buffers and their budget stream-buffers.ts.
 */
import { ptr } from "bun:ffi";
import { EAGAIN, EINTR, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP, type Epoll, closeSocket, libc } from "../../ffi/index.ts";
import type { Endpoint, Family } from "../net/endpoint.ts";
import { nextStreamFrame, streamPadding } from "../stun/stream-framing.ts";
import { parseProxyHeader } from "../net/proxy-protocol.ts";
import type { ConnectionId } from "../turn/api.ts";
import { ConnectionLimits, createConnectionTable } from "./connection-limits.ts";
import { SLOT } from "./counters.ts";
import { MAX_FRAME, StreamBuffers } from "./stream-buffers.ts";
import { ConnectionTable, type Connection, type RawReader } from "./tcp-connections.ts";
import { readRaw, rawInterest } from "./tcp-raw.ts";
import type { HandedConnection } from "./stream-handoff.ts";
import { TcpListeners, type Origin } from "./tcp-listeners.ts";
import { TlsEngine, type TlsEngineOptions, type TlsHost } from "./tls-connection.ts";

const MAX_READS_PER_WAKE = 16;

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

export interface TcpHandlers {
  frame(connection: ConnectionId, client: Endpoint, frame: Uint8Array, now: number): void;
  closed(connection: ConnectionId): void;
}

export class TcpTransport {
  private readonly epoll: Epoll;
  private readonly handlers: TcpHandlers;
  private readonly listening: TcpListeners;
  private readonly connections: ConnectionTable;
  private readonly options: TcpTransportOptions;
  private readonly buffers: StreamBuffers;
  private readonly outBuffer = new ArrayBuffer(MAX_FRAME + 4);
  private readonly outBytes = new Uint8Array(this.outBuffer);
  private readonly outAddress = ptr(this.outBuffer) as unknown as number;
  /** Where piped connections (RFC 6062) are read into. */
  private readonly rawScratch = new Uint8Array(new ArrayBuffer(1 << 16));
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
  }

  /** What the TLS layer calls back into: framing, buffers, raw writes, closing. */
  private readonly tlsHost: TlsHost = {
    consume: (c, now) => this.consume(c, now),
    grow: (c) => this.buffers.grow(c),
    writeRaw: (c, bytes, address, length) => this.writeBytes(c, bytes, address, length),
    queue: (c, bytes) => this.queue(c, bytes),
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

  handleEvent(fd: number, mask: number, now: number): void {
    if (this.listening.owns(fd)) return this.listening.handleEvent(fd, this.accepted);
    const c = this.connections.withFd(fd);
    if (!c) return;
    if (mask & EPOLLOUT) this.writeBacklog(c, now);
    if (c.paused && mask & (EPOLLERR | EPOLLHUP)) return this.close(c);
    if (mask & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) this.read(c, now);
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

  private read(c: Connection, now: number): void {
    if (c.link && !c.awaitingProxyHeader) return this.tls!.read(c, c.link, now);
    for (let round = 0; round < MAX_READS_PER_WAKE; round++) {
      if (c.raw) return this.readPiped(c);
      if (c.end === c.bytes.length && !this.buffers.grow(c)) return this.close(c, true);
      const n = this.receive(c, c.address + c.end, c.bytes.length - c.end);
      if (n === -EINTR) continue;
      if (n === -EAGAIN) return;
      if (n <= 0) return this.close(c); // 0: the client closed; < 0: reset
      c.end += n;
      if (!this.consume(c, now)) return;
    }
  }

  /** Handles the buffered bytes: PROXY header, then whole frames. False when the connection closed or became a pipe. */
  private consume(c: Connection, now: number): boolean {
    if (c.awaitingProxyHeader) {
      const header = parseProxyHeader(c.bytes, c.start, c.end);
      if (header === -1) return this.closed(c);
      if (header === 0) return true;
      if (header.client) c.client = header.client;
      if (!this.options.limits.admit(c.client.address)) {
        this.options.counters[SLOT.tcpRefused]!++;
        return this.closed(c);
      }
      c.counted = c.client.address;
      c.start += header.length;
      c.awaitingProxyHeader = null;
      if (c.link) {
        // --tls-proxy-port: what followed the header is the client's first TLS bytes.
        this.tls!.feedEarly(c.link, c.bytes, c.start, c.end);
        c.start = c.end = 0;
        if (this.tls!.resume(c, c.link, now)) this.tls!.read(c, c.link, now);
        return false;
      }
    }
    // A new connection has no allocation, so its first message is STUN, never ChannelData: anything
    // else (a PROXY v1 line on the normal port, "PR..." read as channel 0x5052) is closed at once.
    if (!c.spoke && c.start < c.end && (c.bytes[c.start]! & 0xc0) !== 0) return this.closed(c, true);
    for (;;) {
      const frame = nextStreamFrame(c.bytes, c.start, c.end);
      if (frame < 0) return this.closed(c); // not STUN or ChannelData: the stream cannot be resynchronised
      if (frame === 0) break;
      c.spoke = true;
      const at = c.start;
      c.start += frame; // first: a handler that pipes the connection takes the bytes after this frame
      this.handlers.frame(c.id, c.client, c.bytes.subarray(at, at + frame), now);
      if (!this.connections.has(c.fd) || this.connections.withFd(c.fd) !== c) return false; // closed or handed over while handling
      if (c.raw) {
        this.readPiped(c);
        return false;
      }
    }
    if (c.start === c.end) this.buffers.emptied(c);
    else if (c.start > 0 && c.end === c.bytes.length) {
      c.bytes.copyWithin(0, c.start, c.end);
      c.end -= c.start;
      c.start = 0;
    }
    return true;
  }

  /**
   * Writes one frame to connection `id`, zero-padded to 4 bytes (RFC 8656 §12.5); `raw`: bytes of a piped
   * connection (RFC 6062), unpadded. False if it is gone.
   */
  send(id: ConnectionId, data: Uint8Array, raw = false): boolean {
    const c = this.connections.withId(id);
    if (!c) return false;
    const pad = raw ? 0 : streamPadding(data.length);
    const total = data.length + pad;
    if (total > this.outBytes.length) return false;
    this.outBytes.set(data, 0);
    this.outBytes.fill(0, data.length, total);
    if (c.link) return this.tls!.send(c, c.link, this.outBytes, total);
    return this.writeBytes(c, this.outBytes, this.outAddress, total);
  }

  /** Writes bytes[0, total) (at `address`) to the socket; what it does not take joins the backlog. */
  private writeBytes(c: Connection, bytes: Uint8Array, address: number, total: number): boolean {
    if (c.backlogLength > 0) return this.queue(c, bytes.subarray(0, total));
    let written = 0;
    while (written < total) {
      const n = libc.write(c.fd, address + written, total - written);
      if (n === -EINTR) continue;
      if (n === -EAGAIN) break;
      if (n < 0) {
        this.close(c);
        return false;
      }
      written += n;
    }
    return written === total || this.queue(c, bytes.subarray(written, total));
  }

  private queue(c: Connection, rest: Uint8Array): boolean {
    const wasEmpty = c.backlogLength === 0;
    if (!this.buffers.appendBacklog(c, rest)) {
      this.close(c, true); // the client stopped reading: it cannot hold the server's memory hostage
      return false;
    }
    if (wasEmpty) this.epoll.modify(c.fd, rawInterest(c));
    return true;
  }

  private writeBacklog(c: Connection, now: number): void {
    if (c.link?.onSocket) return this.writeTlsBacklog(c, now);
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
    this.backlogWritten(c, written);
  }

  private backlogWritten(c: Connection, written: number): void {
    if (written > 0) this.buffers.consumedBacklog(c, written);
    if (c.backlogLength === 0) {
      this.epoll.modify(c.fd, rawInterest(c));
      c.raw?.drained();
    }
  }

  /** TLS on the socket (kTLS): OpenSSL writes the plaintext backlog, or the handshake goes on. */
  private writeTlsBacklog(c: Connection, now: number): void {
    const written = this.tls!.writeBacklog(c, c.link!, now);
    if (written >= 0 && this.connections.withFd(c.fd) === c) this.backlogWritten(c, written);
  }

  /**
   * RFC 6062 §5.4: connection `id` (its ConnectionBind just answered) becomes a byte pipe: from now on
   * what the client sends goes to `reader` unframed, starting with any bytes after that request.
   */
  pipe(id: ConnectionId, reader: RawReader): boolean {
    const c = this.connections.withId(id);
    if (!c) return false;
    c.raw = reader;
    return true;
  }

  /** Bytes written to connection `id` that its socket has not taken yet. */
  backlogOf(id: ConnectionId): number {
    return this.connections.withId(id)?.backlogLength ?? 0;
  }

  /** A piped connection is read again (its reader had asked for a pause). */
  resumeReading(id: ConnectionId): void {
    const c = this.connections.withId(id);
    if (!c || !c.paused) return;
    c.paused = false;
    this.epoll.modify(c.fd, rawInterest(c));
    if (c.link) this.tls!.readPiped(c, c.link, Date.now()); // what OpenSSL decrypted already is not on the socket
  }

  private readPiped(c: Connection): void {
    if (c.link) return this.tls!.readPiped(c, c.link, Date.now());
    const outcome = readRaw(c, this.rawScratch, MAX_READS_PER_WAKE, this.receive);
    if (outcome === "closed") return this.close(c);
    if (outcome === "paused" && this.connections.has(c.fd)) this.epoll.modify(c.fd, rawInterest(c));
  }

  /** What a connection's client sent, into memory at `address`: read(2)'s result. Framed and piped reads both come here. */
  private readonly receive = (c: Connection, address: number, length: number): number => libc.read(c.fd, address, length);

  private closed(c: Connection, byLimit = false): false {
    this.close(c, byLimit);
    return false;
  }

  /**
   * Takes connection `id` out of this transport without closing it (RFC 6062 §5.4: its ConnectionBind,
   * the frame being handled, belongs to another engine): its fd, client, and the bytes after that frame.
   * Undefined when it is gone or has replies pending (it cannot move then).
   */
  detach(id: ConnectionId): Omit<HandedConnection, "bytes"> & { rest: Uint8Array } | undefined {
    const c = this.connections.withId(id);
    if (!c || c.backlogLength > 0 || c.raw) return undefined;
    this.connections.remove(c);
    this.epoll.remove(c.fd);
    this.buffers.closed(c);
    // A TLS session goes along (OpenSSL's objects belong to the process): the new owner wraps the same SSL.
    const session = c.link ? this.tls!.detach(c.link) : 0;
    return { fd: c.fd, client: c.client, tls: c.link !== null, session, onSocket: c.link?.onSocket === true, counted: c.counted !== null, openedAt: c.openedAt, rest: c.bytes.slice(c.start, c.end) };
  }

  /** A connection another engine detached (./stream-handoff.ts): served here from now on, starting with the bytes it had read. */
  adopt(handed: HandedConnection, now: number): void {
    const c: Connection = {
      ...this.buffers.fresh(), fd: handed.fd, id: this.connections.newId(), client: handed.client, openedAt: Math.min(now, handed.openedAt), spoke: false,
      awaitingProxyHeader: null, counted: handed.counted ? handed.client.address : null,
      link: handed.tls && this.tls ? this.tls.adopt(handed.session, handed.onSocket, now) : null,
    };
    this.connections.add(c);
    this.epoll.add(c.fd, EPOLLIN | EPOLLRDHUP);
    if (handed.bytes.length > c.bytes.length) return this.close(c, true);
    c.bytes.set(handed.bytes);
    c.end = handed.bytes.length;
    // Then what OpenSSL had decrypted already, which is not on the socket any more.
    if (this.consume(c, now) && c.link) this.tls!.resume(c, c.link, now);
  }

  /** `byLimit`: closed by a limit of ours (counted), not by the client or an error. */
  private close(c: Connection, byLimit = false): void {
    if (!this.connections.remove(c)) return;
    if (byLimit) this.options.counters[SLOT.tcpClosedByLimit]!++;
    this.epoll.remove(c.fd);
    if (c.link && c.backlogLength === 0) this.tls!.goodbye(c.fd, c.link);
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
