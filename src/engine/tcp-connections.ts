/**
 * The TCP transport's open connections, found by fd (epoll's events) and by connection id (the core's
 * replies); the engine's tcpConnections gauge follows the table's size.
 */
import type { Endpoint } from "../net/endpoint.ts";
import { FIRST_CONNECTION_ID, connectionId, type ConnectionId } from "../turn/api.ts";
import { SLOT } from "./counters.ts";
import type { Buffered } from "./stream-buffers.ts";
import type { TlsSession } from "../../ffi/tls-session.ts";
import type { RecordBoundary } from "./tls-record-boundary.ts";

/** One connection's TLS state (tls-connection.ts). */
export interface TlsLink {
  session: TlsSession;
  /** OpenSSL reads and writes the socket (kTLS possible); else memory BIOs. */
  onSocket: boolean;
  /** The handshake has completed. */
  ready: boolean;
  /** When it completed (the first-message timeout counts from here). */
  readyAt: number;
  /** Memory mode: where the client's records end in the ciphertext fed so far. */
  boundary: RecordBoundary;
  /**
   * Memory mode: OpenSSL holds no ciphertext (a read ended wanting more at a record boundary, or a lone
   * record was taken whole), so the next read starts at a record header (tls-connection.ts).
   */
  drained: boolean;
}

/** What the TLS layer needs of the transport that owns the connection. */
export interface TlsHost {
  /** Frames bytes[start, end) of `c` as for TCP; false when `c` was closed meanwhile. */
  consume(c: Connection, now: number): boolean;
  /** Room at the end of a full input buffer (tcp: StreamBuffers.grow). */
  grow(c: Connection): boolean;
  /** Writes raw bytes to the socket, queueing what does not fit; false when `c` was closed. */
  writeRaw(c: Connection, bytes: Uint8Array, address: number, length: number): boolean;
  /** Queues bytes behind the backlog (socket mode: plaintext OpenSSL will write later); false when closed. */
  queue(c: Connection, bytes: Uint8Array): boolean;
  close(c: Connection, byLimit?: boolean): void;
  isOpen(c: Connection): boolean;
  /** Socket mode: the handshake waits for the socket to take its next flight (EPOLLOUT). */
  armWritable(c: Connection): void;
  /** A piped connection's reader asked for a pause (c.paused is set): epoll's interest follows. */
  paused(c: Connection): void;
}

export interface Connection extends Buffered {
  fd: number;
  id: ConnectionId;
  client: Endpoint;
  /** When it was accepted (ms), for the sweep of connections that never allocate. */
  openedAt: number;
  /** Whether a whole message has arrived yet: a client that sends none is closed sooner. */
  spoke: boolean;
  /**
   * The stream starts with a PROXY header naming the real client: "balancer" from a load balancer on
   * --tcp-proxy-port or --tls-proxy-port (v1 or v2, within a deadline); null once read.
   */
  awaitingProxyHeader: "balancer" | null;
  /** The source address counted in the connection caps; null until a balancer's header names it. */
  counted: Uint8Array | null;
  /** TLS terminated here in the engine (tls-connection.ts), a turns: client; null for TCP. */
  link: TlsLink | null;
  /** RFC 6062 §5.4: a data connection bound to a peer: its bytes go here, unframed (./tcp-reading.ts pipe). */
  raw?: RawReader;
  /** A piped connection whose reader asked for a pause: not read until resumeReading. */
  paused?: boolean;
}

/** Where the transport hands what its connections carry: each whole frame, and each close. */
export interface TcpHandlers {
  /** A whole frame: bytes[offset, offset + length), valid during the call (no view is made per frame). */
  frame(connection: ConnectionId, client: Endpoint, bytes: Uint8Array, offset: number, length: number, now: number): void;
  closed(connection: ConnectionId): void;
}

/** What reads a client connection that became a byte pipe (RFC 6062 §5.4, after ConnectionBind). */
export interface RawReader {
  /** Bytes the client sent: bytes[offset, offset + length), valid during the call. False: stop reading until resumeReading. */
  data(bytes: Uint8Array, offset: number, length: number): boolean;
  /** Everything written to the client has left (the backlog is empty again). */
  drained(): void;
}

export class ConnectionTable {
  private readonly byFd = new Map<number, Connection>();
  private readonly byId = new Map<ConnectionId, Connection>();
  /** Connection ids stand for listeners of their own in the core (each connection is its own 5-tuple). */
  private nextId = FIRST_CONNECTION_ID;

  /** `counters`: the engine's counter block, whose tcpConnections slot is kept equal to `size`. */
  constructor(private readonly counters: Float64Array) {}

  newId(): ConnectionId {
    return connectionId(this.nextId++);
  }

  add(c: Connection): void {
    this.byFd.set(c.fd, c);
    this.counters[SLOT.tcpConnections] = this.byFd.size;
    this.byId.set(c.id, c);
  }

  /** False when `c` was removed already (a connection is closed once). */
  remove(c: Connection): boolean {
    if (!this.byFd.delete(c.fd)) return false;
    this.counters[SLOT.tcpConnections] = this.byFd.size;
    this.byId.delete(c.id);
    return true;
  }

  withFd(fd: number): Connection | undefined {
    return this.byFd.get(fd);
  }

  withId(id: ConnectionId): Connection | undefined {
    return this.byId.get(id);
  }

  has(fd: number): boolean {
    return this.byFd.has(fd);
  }

  get size(): number {
    return this.byFd.size;
  }

  /** A copy, so that connections can be closed while going through it. */
  snapshot(): Connection[] {
    return [...this.byFd.values()];
  }
}
