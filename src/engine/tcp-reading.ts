/**
 * The reading side of the TCP transport's connections (RFC 8656 §3.1): a balancer's PROXY header first
 * (HAProxy's proxy-protocol.txt, on --tcp-proxy-port and --tls-proxy-port), then the stream cut into
 * STUN/ChannelData frames (src/stun/stream-framing.ts) handed to the core one by one; a connection
 * piped to a peer (RFC 6062 §5.4) is read unframed instead (tcp-raw.ts). TLS connections are decrypted
 * by tls-connection.ts into the same input buffer, which it frames through `consume`.
 */
import { EAGAIN, EINTR, type Epoll, libc } from "../../ffi/index.ts";
import { parseProxyHeader } from "../net/proxy-protocol.ts";
import { nextStreamFrame } from "../stun/stream-framing.ts";
import type { ConnectionId } from "../turn/api.ts";
import type { ConnectionLimits } from "./connection-limits.ts";
import { SLOT } from "./counters.ts";
import type { StreamBuffers } from "./stream-buffers.ts";
import type { Connection, ConnectionTable, RawReader, TcpHandlers } from "./tcp-connections.ts";
import { rawInterest, readRaw } from "./tcp-raw.ts";
import type { TlsEngine } from "./tls-connection.ts";

const MAX_READS_PER_WAKE = 16;

export class TcpReader {
  /** Where piped connections (RFC 6062) are read into. */
  private readonly rawScratch = new Uint8Array(new ArrayBuffer(1 << 16));

  constructor(
    private readonly connections: ConnectionTable,
    private readonly epoll: Epoll,
    private readonly buffers: StreamBuffers,
    private readonly tls: TlsEngine | null,
    private readonly handlers: TcpHandlers,
    /** The connection caps a balancer's client is admitted under once its header names it; tcpRefused counts refusals. */
    private readonly limits: ConnectionLimits,
    private readonly counters: Float64Array,
    /** The transport's close (`byLimit`: closed by a limit of ours, counted). */
    private readonly close: (c: Connection, byLimit?: boolean) => void,
  ) {}

  /** The socket is readable (or hung up): up to MAX_READS_PER_WAKE reads, each framed at once. */
  read(c: Connection, now: number): void {
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
  consume(c: Connection, now: number): boolean {
    if (c.awaitingProxyHeader) {
      const header = parseProxyHeader(c.bytes, c.start, c.end);
      if (header === -1) return this.closed(c);
      if (header === 0) return true;
      if (header.client) c.client = header.client;
      if (!this.limits.admit(c.client.address)) {
        this.counters[SLOT.tcpRefused]!++;
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
      this.handlers.frame(c.id, c.client, c.bytes, at, frame, now);
      if (this.connections.withFd(c.fd) !== c) return false; // closed or handed over while handling
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
   * RFC 6062 §5.4: connection `id` (its ConnectionBind just answered) becomes a byte pipe: from now on
   * what the client sends goes to `reader` unframed, starting with any bytes after that request.
   */
  pipe(id: ConnectionId, reader: RawReader): boolean {
    const c = this.connections.withId(id);
    if (!c) return false;
    c.raw = reader;
    return true;
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
}
