/**
 * The writing side of a TLS connection (RFC 8656 §3.1, `turns:`): a reply frame encrypted (one record,
 * as coturn writes them) and sent, what OpenSSL wrote for the handshake or an alert flushed to the
 * socket, and the close_notify at the end. Apart from tls-connection.ts, which reads (handshake and
 * records in), because the two directions share only the session: this side never decrypts.
 *
 * Memory mode (memory BIOs): the ciphertext leaves through the transport's own write path
 * (TlsHost.writeRaw), so the TCP backlog and its limits apply to it. Socket mode (kTLS possible):
 * OpenSSL writes the fd, and what the socket does not take waits as plaintext in the backlog.
 */
import { ptr } from "bun:ffi";
import { libc } from "../../ffi/index.ts";
import { TLS_WANT_WRITE } from "../../ffi/tls-session.ts";
import { MAX_FRAME } from "./stream-buffers.ts";
import type { Connection, TlsHost, TlsLink } from "./tcp-connections.ts";

export class TlsWriter {
  /** Encrypted output of one frame (a 64 KiB frame is 5 records). */
  private readonly sealed = new Uint8Array(new ArrayBuffer(MAX_FRAME + 1024));
  private readonly sealedAddress = ptr(this.sealed) as unknown as number;

  constructor(private readonly host: TlsHost) {}

  /** Encrypts one frame and sends it; false when `c` was closed (or its handshake is not done). */
  send(c: Connection, link: TlsLink, frame: Uint8Array, length: number): boolean {
    if (link.onSocket) return link.ready && this.sendOnSocket(c, link, frame, length);
    return this.sealRange(c, link, frame, 0, length); // checks `ready` itself (the TCP writer calls it directly)
  }

  /** Memory mode: encrypts bytes[offset, offset + length) (a whole frame) and sends it; false when `c` was closed or is not ready. */
  sealRange(c: Connection, link: TlsLink, bytes: Uint8Array, offset: number, length: number): boolean {
    if (!link.ready) return false;
    for (let done = 0; done < length; ) {
      const n = link.session.write(bytes, offset + done, length - done);
      if (n <= 0) {
        this.host.close(c);
        return false;
      }
      done += n;
    }
    return this.flush(c, link);
  }

  /** Socket mode: OpenSSL writes; what the socket does not take waits as plaintext in the backlog. */
  private sendOnSocket(c: Connection, link: TlsLink, frame: Uint8Array, length: number): boolean {
    if (c.backlogLength > 0) return this.host.queue(c, frame.subarray(0, length));
    const done = this.writeThrough(c, link, frame, length);
    return done === length || (done >= 0 && this.host.queue(c, frame.subarray(done, length)));
  }

  /** Socket mode: bytes[0, length) through OpenSSL until the socket is full; how many went, -1 when `c` closed. */
  writeThrough(c: Connection, link: TlsLink, bytes: Uint8Array, length: number): number {
    let done = 0;
    while (done < length) {
      const n = link.session.write(bytes, done, length - done);
      if (n === TLS_WANT_WRITE) break;
      if (n <= 0) {
        this.host.close(c);
        return -1;
      }
      done += n;
    }
    return done;
  }

  /** Memory mode: what OpenSSL wrote (handshake, records, alerts) goes to the socket; false when `c` was closed. */
  flush(c: Connection, link: TlsLink): boolean {
    if (link.onSocket) return true;
    for (;;) {
      const n = link.session.takeOutputAt(this.sealedAddress, this.sealed.length);
      if (n === 0) return true;
      if (!this.host.writeRaw(c, this.sealed, this.sealedAddress, n)) return false;
      if (n < this.sealed.length) return true; // the BIO is empty: no second call to learn it
    }
  }

  /**
   * The server closes the connection: a close_notify first, best effort (one write, no backlog), so
   * the client reads a clean end rather than "unexpected eof" (RFC 8446 §6.1).
   */
  goodbye(fd: number, link: TlsLink): void {
    if (!link.ready) return;
    link.session.shutdown();
    if (link.onSocket) return;
    const n = link.session.takeOutput(this.sealed, 0, this.sealed.length);
    if (n > 0) libc.write(fd, this.sealedAddress, n);
  }
}
