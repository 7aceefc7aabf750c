/**
 * TURN over TCP (RFC 8656 §3.1): clients reach the server over TCP, relays to peers stay UDP. Each
 * accepted connection is its own 5-tuple, so it gets its own listener id in the protocol core; bytes
 * are cut into STUN/ChannelData frames (src/stun/stream-framing.ts) and handed to the core one by one;
 * the core's replies come back here and are written, padded as the RFC asks, with a bounded backlog
 * when the socket is full.
 */
import { ptr } from "bun:ffi";
import {
  AF_INET, EAGAIN, EINTR, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP, Epoll, SOCKADDR_SLOT,
  acceptConnection, closeSocket, libc, openTcpListener, openUnixListener, sockaddrFamily, sockaddrIn6Address, sockaddrInAddress,
  sockaddrPort,
} from "../../ffi/index.ts";
import { ipv4Endpoint, ipv6Endpoint, type Endpoint, type Family } from "../net/endpoint.ts";
import { nextStreamFrame, streamPadding } from "../stun/stream-framing.ts";
import { parseProxyV2 } from "../net/proxy-protocol.ts";

/** Stands in for a proxied connection's client until its PROXY header has been read. */
const UNKNOWN_CLIENT = ipv4Endpoint(0, 0);

/** Listener ids from here up are TCP connections; below are the UDP listeners. */
export const TCP_LISTENER_BASE = 1 << 20;
/** Largest frame: a STUN message of 65535 + 20 bytes, or ChannelData 65535 + 4 + padding. */
const MAX_FRAME = 65536 + 20;
const INITIAL_BUFFER = 4096;
/** A client that stops reading may hold this much of our output before we drop it. */
const MAX_BACKLOG = 1 << 20;
const MAX_ACCEPTS_PER_WAKE = 64;
const MAX_READS_PER_WAKE = 16;

interface Connection {
  fd: number;
  id: number;
  client: Endpoint;
  /** When it was accepted (ms), for the sweep of connections that never allocate. */
  openedAt: number;
  buffer: ArrayBuffer;
  bytes: Uint8Array;
  address: number;
  start: number;
  end: number;
  backlog: Uint8Array | null;
  backlogLength: number;
  /** From the TLS front end: the stream starts with a PROXY v2 header naming the real client. */
  awaitingProxyHeader: boolean;
}

export interface TcpHandlers {
  frame(listenerId: number, client: Endpoint, frame: Uint8Array, now: number): void;
  closed(listenerId: number): void;
}

export class TcpTransport {
  private readonly epoll: Epoll;
  private readonly handlers: TcpHandlers;
  private readonly listeners = new Set<number>();
  /** Unix listeners the TLS front end connects to; their connections carry a PROXY header. */
  private readonly proxiedListeners = new Set<number>();
  private readonly byFd = new Map<number, Connection>();
  private readonly byId = new Map<number, Connection>();
  private readonly maxConnections: number;
  private nextId = TCP_LISTENER_BASE;
  private readonly name = new Uint8Array(new ArrayBuffer(SOCKADDR_SLOT));
  private readonly nameLength = new Uint32Array(1);
  private readonly outBuffer = new ArrayBuffer(MAX_FRAME + 4);
  private readonly outBytes = new Uint8Array(this.outBuffer);
  private readonly outAddress = ptr(this.outBuffer) as unknown as number;

  constructor(epoll: Epoll, handlers: TcpHandlers, maxConnections = 16384) {
    this.epoll = epoll;
    this.handlers = handlers;
    this.maxConnections = maxConnections;
  }

  listen(family: Family, address: Uint8Array, port: number): number {
    const fd = openTcpListener({ family, address, port, reusePort: true });
    this.listeners.add(fd);
    this.epoll.add(fd, EPOLLIN);
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

  owns(fd: number): boolean {
    return this.listeners.has(fd) || this.byFd.has(fd);
  }

  get connectionCount(): number {
    return this.byFd.size;
  }

  handleEvent(fd: number, mask: number, now: number): void {
    if (this.listeners.has(fd)) return this.accept(fd);
    const c = this.byFd.get(fd);
    if (!c) return;
    if (mask & EPOLLOUT) this.writeBacklog(c);
    if (mask & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) this.read(c, now);
  }

  private accept(listenerFd: number): void {
    for (let i = 0; i < MAX_ACCEPTS_PER_WAKE; i++) {
      const fd = acceptConnection(listenerFd, this.name, this.nameLength, libc);
      if (fd < 0) return; // EAGAIN, or a connection that died in the queue
      if (this.byFd.size >= this.maxConnections) {
        closeSocket(fd, libc);
        continue;
      }
      const proxied = this.proxiedListeners.has(listenerFd);
      const port = sockaddrPort(this.name, 0);
      const client = proxied
        ? UNKNOWN_CLIENT
        : sockaddrFamily(this.name, 0) === AF_INET
          ? ipv4Endpoint(sockaddrInAddress(this.name, 0), port)
          : ipv6Endpoint(sockaddrIn6Address(this.name, 0), port);
      const buffer = new ArrayBuffer(INITIAL_BUFFER);
      const c: Connection = {
        fd, id: this.nextId++, client, openedAt: Date.now(), buffer, bytes: new Uint8Array(buffer),
        address: ptr(buffer) as unknown as number, start: 0, end: 0, backlog: null, backlogLength: 0,
        awaitingProxyHeader: proxied,
      };
      this.byFd.set(fd, c);
      this.byId.set(c.id, c);
      this.epoll.add(fd, EPOLLIN | EPOLLRDHUP);
    }
  }

  private read(c: Connection, now: number): void {
    for (let round = 0; round < MAX_READS_PER_WAKE; round++) {
      if (c.end === c.bytes.length && !this.grow(c)) return this.close(c);
      const n = libc.read(c.fd, c.address + c.end, c.bytes.length - c.end);
      if (n === -EINTR) continue;
      if (n === -EAGAIN) return;
      if (n <= 0) return this.close(c); // 0: the client closed; < 0: reset
      c.end += n;
      if (c.awaitingProxyHeader) {
        const header = parseProxyV2(c.bytes, c.start, c.end);
        if (header === -1) return this.close(c);
        if (header === 0) continue;
        c.client = header.client;
        c.start += header.length;
        c.awaitingProxyHeader = false;
      }
      for (;;) {
        const frame = nextStreamFrame(c.bytes, c.start, c.end);
        if (frame < 0) return this.close(c); // not STUN or ChannelData: the stream cannot be resynchronised
        if (frame === 0) break;
        this.handlers.frame(c.id, c.client, c.bytes.subarray(c.start, c.start + frame), now);
        if (!this.byFd.has(c.fd)) return; // closed while handling
        c.start += frame;
      }
      if (c.start === c.end) c.start = c.end = 0;
      else if (c.start > 0 && c.end === c.bytes.length) {
        c.bytes.copyWithin(0, c.start, c.end);
        c.end -= c.start;
        c.start = 0;
      }
    }
  }

  /** Doubles a connection's buffer up to one maximal frame; false when a frame claims more than that. */
  private grow(c: Connection): boolean {
    if (c.start > 0) {
      c.bytes.copyWithin(0, c.start, c.end);
      c.end -= c.start;
      c.start = 0;
      return true;
    }
    if (c.bytes.length >= MAX_FRAME) return false;
    const buffer = new ArrayBuffer(Math.min(MAX_FRAME, c.bytes.length * 2));
    const bytes = new Uint8Array(buffer);
    bytes.set(c.bytes.subarray(0, c.end));
    c.buffer = buffer;
    c.bytes = bytes;
    c.address = ptr(buffer) as unknown as number;
    return true;
  }

  /** Writes one frame to connection `id`, zero-padded to 4 bytes (RFC 8656 §12.5). False if it is gone. */
  send(id: number, data: Uint8Array): boolean {
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
    const needed = c.backlogLength + rest.length;
    if (needed > MAX_BACKLOG) {
      this.close(c); // the client stopped reading: it cannot hold the server's memory hostage
      return false;
    }
    if (!c.backlog || c.backlog.length < needed) {
      const bigger = new Uint8Array(new ArrayBuffer(Math.max(needed, (c.backlog?.length ?? 0) * 2, 4096)));
      if (c.backlog) bigger.set(c.backlog.subarray(0, c.backlogLength));
      c.backlog = bigger;
    }
    const wasEmpty = c.backlogLength === 0;
    c.backlog.set(rest, c.backlogLength);
    c.backlogLength = needed;
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
    c.backlog.copyWithin(0, written, c.backlogLength);
    c.backlogLength -= written;
    if (c.backlogLength === 0) this.epoll.modify(c.fd, EPOLLIN | EPOLLRDHUP);
  }

  private close(c: Connection): void {
    if (!this.byFd.delete(c.fd)) return;
    this.byId.delete(c.id);
    this.epoll.remove(c.fd);
    closeSocket(c.fd, libc);
    this.handlers.closed(c.id);
  }

  /**
   * Closes every connection older than `maxAgeMs` for which `keep(id)` is false (the engine keeps those
   * with an allocation): a TCP connection costs an fd and a buffer, so one that never allocates, or
   * outlives its allocation, must not hold them for ever (a slow-open flood would).
   */
  sweep(now: number, maxAgeMs: number, keep: (listenerId: number) => boolean): number {
    let closed = 0;
    for (const c of [...this.byFd.values()]) {
      if (now - c.openedAt > maxAgeMs && !keep(c.id)) {
        this.close(c);
        closed++;
      }
    }
    return closed;
  }

  closeAll(): void {
    for (const c of [...this.byFd.values()]) this.close(c);
    for (const fd of this.listeners) {
      this.epoll.remove(fd);
      closeSocket(fd, libc);
    }
    this.listeners.clear();
    this.proxiedListeners.clear();
  }
}
