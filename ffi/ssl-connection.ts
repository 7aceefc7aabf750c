/**
 * What a TLS connection (tls-session.ts) and a DTLS association (dtls.ts) share: one OpenSSL SSL object,
 * its memory BIOs when the caller moves the bytes (both 0 when OpenSSL reads and writes a socket), and
 * OpenSSL's results turned into numbers (the SSL_* outcomes below), so the data path allocates nothing.
 */
import { ptr } from "bun:ffi";
import { asPointer, libcrypto, libssl, openSslErrors, SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE, SSL_ERROR_ZERO_RETURN } from "./libssl.ts";

/** OpenSSL needs more input before it can go on. */
export const SSL_WANT_READ = 0;
/** The peer sent close_notify. */
export const SSL_CLOSED = -1;
/** The connection failed; `failure` says why (OpenSSL's text). */
export const SSL_FAILED = -2;
/** On a socket only (memory BIOs grow, so they never ask): the socket is full; call again when it is writable. */
export const SSL_WANT_WRITE = -3;

/** A memory BIO (it grows as bytes are written in); owned by the SSL it is given to. */
export function memoryBio(): number {
  return libcrypto.BIO_new(libcrypto.BIO_s_mem()) as unknown as number;
}

export class SslConnection {
  /** Why the last SSL_FAILED happened. */
  failure = "";

  /**
   * `inBio`: in memory mode, bytes from the peer go in here; `outBio`: bytes for the peer come out
   * here. Both 0 on a socket.
   */
  protected constructor(readonly ssl: number, protected readonly inBio: number, protected readonly outBio: number) {}

  /** 1 when the handshake is complete, SSL_WANT_READ, SSL_WANT_WRITE (on a socket), or SSL_FAILED. */
  handshake(): number {
    const r = libssl.SSL_do_handshake(asPointer(this.ssl));
    return r === 1 ? 1 : this.outcome(r);
  }

  /** Encrypts buffer[offset, offset + length) as one record: bytes taken, SSL_WANT_WRITE (on a socket) or SSL_FAILED. */
  write(buffer: Uint8Array, offset: number, length: number): number {
    const r = libssl.SSL_write(asPointer(this.ssl), ptr(buffer, offset), length);
    return r > 0 ? r : this.outcome(r);
  }

  /** Memory mode: bytes waiting to be sent. */
  outputPending(): number {
    return Number(libcrypto.BIO_ctrl_pending(asPointer(this.outBio)));
  }

  /** Memory mode: moves up to `capacity` bytes for the peer into buffer at offset; returns how many. */
  takeOutput(buffer: Uint8Array, offset: number, capacity: number): number {
    return this.takeOutputAt(ptr(buffer, offset), capacity);
  }

  /** takeOutput() into memory at `address` (a buffer whose address the caller keeps): no ptr() per call. */
  takeOutputAt(address: number, capacity: number): number {
    const n = libcrypto.BIO_read(asPointer(this.outBio), asPointer(address), capacity);
    return n > 0 ? n : 0;
  }

  /** Queues close_notify (memory mode: in the output, to be sent like any bytes). */
  shutdown(): void {
    if (libssl.SSL_shutdown(asPointer(this.ssl)) < 0) openSslErrors();
  }

  /** Frees the SSL object and its BIOs. */
  free(): void {
    libssl.SSL_free(asPointer(this.ssl));
  }

  /** What a call that returned `r` (not a success) means, as one of the SSL_* outcomes. */
  protected outcome(r: number): number {
    const error = libssl.SSL_get_error(asPointer(this.ssl), r);
    if (error === SSL_ERROR_WANT_READ) return SSL_WANT_READ;
    if (error === SSL_ERROR_WANT_WRITE) return SSL_WANT_WRITE;
    if (error === SSL_ERROR_ZERO_RETURN) return SSL_CLOSED;
    this.failure = openSslErrors() || `SSL error ${error}`;
    return SSL_FAILED;
  }
}
