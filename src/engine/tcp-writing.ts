/**
 * The writing side of the TCP transport's connections (RFC 8656 §3.1): a frame to a client, zero-padded
 * to 4 bytes (RFC 8656 §12.5) or, on a piped connection (RFC 6062 §5.4), raw; what the socket does not
 * take joins the connection's bounded backlog (stream-buffers.ts), written when epoll says it is
 * writable. A client that stops reading past --max-tcp-buffer is closed: it cannot hold the server's
 * memory hostage. TLS connections encrypt through tls-writing.ts, which writes back through here.
 */
import { ptr } from "bun:ffi";
import { type Epoll, writeSome } from "../../ffi/index.ts";
import { streamPadding } from "../stun/stream-framing.ts";
import type { ConnectionId } from "../turn/api.ts";
import { MAX_FRAME, type StreamBuffers } from "./stream-buffers.ts";
import type { Connection, ConnectionTable } from "./tcp-connections.ts";
import { rawInterest } from "./tcp-raw.ts";
import type { TlsEngine } from "./tls-connection.ts";

export class TcpWriter {
  private readonly outBuffer = new ArrayBuffer(MAX_FRAME + 4);
  private readonly outBytes = new Uint8Array(this.outBuffer);
  private readonly outAddress = ptr(this.outBuffer) as unknown as number;

  constructor(
    private readonly connections: ConnectionTable,
    private readonly epoll: Epoll,
    private readonly buffers: StreamBuffers,
    private readonly tls: TlsEngine | null,
    /** The transport's close (`byLimit`: closed by a limit of ours, counted). */
    private readonly close: (c: Connection, byLimit?: boolean) => void,
  ) {}

  /**
   * Writes one frame, data[offset, offset + length), to connection `id`, zero-padded to 4 bytes (RFC 8656
   * §12.5); `raw`: bytes of a piped connection (RFC 6062), unpadded. False if it is gone.
   */
  send(id: ConnectionId, data: Uint8Array, offset: number, length: number, raw: boolean): boolean {
    const c = this.connections.withId(id);
    if (!c) return false;
    const pad = raw ? 0 : streamPadding(length);
    const total = length + pad;
    if (total > this.outBytes.length) return false;
    // TLS in memory encrypts from where the frame is when no padding is due: no copy first.
    if (pad === 0 && c.link !== null && !c.link.onSocket) return this.tls!.writer.sealRange(c, c.link, data, offset, length);
    this.outBytes.set(offset === 0 && length === data.length ? data : data.subarray(offset, offset + length), 0);
    this.outBytes.fill(0, length, total);
    if (c.link) return this.tls!.writer.send(c, c.link, this.outBytes, total);
    return this.writeBytes(c, this.outBytes, this.outAddress, total);
  }

  /** Writes bytes[0, total) (at `address`) to the socket; what it does not take joins the backlog. */
  writeBytes(c: Connection, bytes: Uint8Array, address: number, total: number): boolean {
    if (c.backlogLength > 0) return this.queue(c, bytes.subarray(0, total));
    const written = writeSome(c.fd, address, total);
    if (written < 0) {
      this.close(c);
      return false;
    }
    return written === total || this.queue(c, bytes.subarray(written, total));
  }

  /** Puts `rest` behind the backlog (epoll then watches for room); false when that closed `c`. */
  queue(c: Connection, rest: Uint8Array): boolean {
    const wasEmpty = c.backlogLength === 0;
    if (!this.buffers.appendBacklog(c, rest)) {
      this.close(c, true); // the client stopped reading: it cannot hold the server's memory hostage
      return false;
    }
    if (wasEmpty) this.epoll.modify(c.fd, rawInterest(c));
    return true;
  }

  /** The socket is writable (EPOLLOUT): the backlog goes on. */
  writeBacklog(c: Connection, now: number): void {
    if (c.link?.onSocket) return this.writeTlsBacklog(c, now);
    if (!c.backlog || c.backlogLength === 0) return;
    const written = writeSome(c.fd, ptr(c.backlog) as unknown as number, c.backlogLength);
    if (written < 0) return this.close(c);
    this.backlogWritten(c, written);
  }

  /** Bytes written to connection `id` that its socket has not taken yet. */
  backlogOf(id: ConnectionId): number {
    return this.connections.withId(id)?.backlogLength ?? 0;
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
}
