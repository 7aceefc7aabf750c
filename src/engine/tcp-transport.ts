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
import { parseProxyHeader, parseProxyV2 } from "../net/proxy-protocol.ts";
import type { ConnectionId } from "../turn/api.ts";
import { ConnectionLimits, createConnectionTable } from "./connection-limits.ts";
import { SLOT } from "./counters.ts";
import { MAX_FRAME, StreamBuffers } from "./stream-buffers.ts";
import { ConnectionTable, type Connection } from "./tcp-connections.ts";
import { TcpListeners, type Origin } from "./tcp-listeners.ts";

const MAX_READS_PER_WAKE = 16;

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
  private readonly listening: TcpListeners;
  private readonly connections: ConnectionTable;
  private readonly options: TcpTransportOptions;
  private readonly buffers: StreamBuffers;
  private readonly outBuffer = new ArrayBuffer(MAX_FRAME + 4);
  private readonly outBytes = new Uint8Array(this.outBuffer);
  private readonly outAddress = ptr(this.outBuffer) as unknown as number;

  constructor(epoll: Epoll, handlers: TcpHandlers, options: Partial<TcpTransportOptions> = {}) {
    this.epoll = epoll;
    this.handlers = handlers;
    this.options = { ...DEFAULTS, ...options };
    this.listening = new TcpListeners(epoll, this.options.limits, this.options.counters, this.options.warn);
    this.connections = new ConnectionTable(this.options.counters);
    this.buffers = new StreamBuffers(this.options);
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

  /** A listener for decrypted TLS streams from the front end in the main thread (src/engine/tls-front.ts). */
  listenUnix(path: string): number {
    return this.listening.listenUnix(path);
  }

  /** Whether the connection's client reached the server over TLS (through the front end). */
  isTls(id: ConnectionId): boolean {
    return this.connections.withId(id)?.tls === true;
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
    if (mask & EPOLLOUT) this.writeBacklog(c);
    if (mask & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) this.read(c, now);
  }

  /** A connection the listeners accepted (and, on the normal port, admitted under the caps). */
  private readonly accepted = (fd: number, client: Endpoint, origin: Origin): void => {
    const proxied = origin === "front";
    const c: Connection = {
      ...this.buffers.fresh(), fd, id: this.connections.newId(), client, openedAt: Date.now(), spoke: false,
      awaitingProxyHeader: origin === "direct" ? null : origin, counted: origin === "direct" ? client.address : null,
      tls: proxied, // the TLS front end's streams are the only "front" ones
    };
    this.connections.add(c);
    this.epoll.add(fd, EPOLLIN | EPOLLRDHUP);
  };

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
        if (!this.connections.has(c.fd)) return; // closed while handling
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
    const c = this.connections.withId(id);
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
    if (!this.connections.remove(c)) return;
    if (byLimit) this.options.counters[SLOT.tcpClosedByLimit]!++;
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
    for (const c of this.connections.snapshot()) {
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
  }
}
