/**
 * One TLS connection over OpenSSL, in one of two modes:
 * - memory BIOs (the default): the engine reads and writes the socket itself, as for TCP, and moves
 *   ciphertext in (`feed`) and out (`takeOutput`). Its own reads, buffer limits and write backlog apply
 *   unchanged, and every message written in one loop turn leaves in one write(2), each in its own record.
 * - on the socket (`onSocket`): OpenSSL reads and writes the fd. Kernel TLS needs this (OpenSSL hands
 *   the keys to the kernel only through a socket BIO); after such a handshake the fd is plain TCP.
 * Results are numbers, never objects, so the hot path allocates nothing: see each method.
 */
import { ptr } from "bun:ffi";
import { asPointer, BIO_CTRL_GET_KTLS_RECV, BIO_CTRL_GET_KTLS_SEND, libcrypto, libssl, openSslErrors } from "./libssl.ts";
import { memoryBio, SSL_CLOSED, SSL_FAILED, SSL_WANT_READ, SSL_WANT_WRITE, SslConnection } from "./ssl-connection.ts";
import type { TlsContext } from "./tls-context.ts";

/** `handshake()`, `read()`, `write()`: OpenSSL needs more input before it can go on. */
export const TLS_WANT_READ = SSL_WANT_READ;
/** On a socket only: the socket is full; call again with the same bytes when it is writable. */
export const TLS_WANT_WRITE = SSL_WANT_WRITE;
/** `read()`: the peer sent close_notify. */
export const TLS_CLOSED = SSL_CLOSED;
/** The connection failed; `failure` says why (OpenSSL's text). */
export const TLS_FAILED = SSL_FAILED;

/** handshake, write, takeOutput, shutdown and free are SslConnection's (ssl-connection.ts). */
export class TlsSession extends SslConnection {
  private static create(context: TlsContext, server: boolean): number {
    const ssl = libssl.SSL_new(asPointer(context.handle)) as unknown as number;
    if (!ssl) throw new Error(`SSL_new: ${openSslErrors()}`);
    if (server) libssl.SSL_set_accept_state(asPointer(ssl));
    else libssl.SSL_set_connect_state(asPointer(ssl));
    return ssl;
  }

  /** A session the caller feeds and drains (memory BIOs). */
  static inMemory(context: TlsContext, server = true): TlsSession {
    const ssl = TlsSession.create(context, server);
    const inBio = memoryBio();
    const outBio = memoryBio();
    libssl.SSL_set_bio(asPointer(ssl), asPointer(inBio), asPointer(outBio)); // owned by ssl from now on
    return new TlsSession(ssl, inBio, outBio);
  }

  /** A session that reads and writes `fd` itself (needed for kernel TLS). */
  static onSocket(context: TlsContext, fd: number, server = true): TlsSession {
    const ssl = TlsSession.create(context, server);
    libssl.SSL_set_fd(asPointer(ssl), fd);
    return new TlsSession(ssl, 0, 0);
  }

  /**
   * The same OpenSSL session under a new owner (a connection handed to another thread: OpenSSL's
   * objects belong to the process, and one thread at a time uses them). The old wrapper must not be
   * used again, nor freed.
   */
  static adopt(ssl: number, onSocket: boolean): TlsSession {
    if (onSocket) return new TlsSession(ssl, 0, 0);
    const inBio = libssl.SSL_get_rbio(asPointer(ssl)) as unknown as number;
    const outBio = libssl.SSL_get_wbio(asPointer(ssl)) as unknown as number;
    return new TlsSession(ssl, inBio, outBio);
  }

  /** Memory mode: hands `length` bytes of ciphertext at `offset` to OpenSSL (all of them: the BIO grows). */
  feed(buffer: Uint8Array, offset: number, length: number): void {
    this.feedAt(ptr(buffer, offset), length);
  }

  /** feed() from memory at `address` (a buffer whose address the caller keeps): no ptr() per call. */
  feedAt(address: number, length: number): void {
    if (length > 0) libcrypto.BIO_write(asPointer(this.inBio), asPointer(address), length);
  }

  /** read() into memory at `address` (a buffer whose address the caller keeps): no ptr() per call. */
  readAt(address: number, capacity: number): number {
    const r = libssl.SSL_read(asPointer(this.ssl), asPointer(address), capacity);
    return r > 0 ? r : this.outcome(r);
  }

  /** Decrypts into buffer[offset, offset+capacity): bytes (> 0), TLS_WANT_READ, TLS_CLOSED or TLS_FAILED. */
  read(buffer: Uint8Array, offset: number, capacity: number): number {
    return this.readAt(ptr(buffer, offset), capacity);
  }

  /** On a socket: whether the kernel now encrypts what is written (SSL_OP_ENABLE_KTLS took). */
  kernelSends(): boolean {
    return this.ktlsControl(BIO_CTRL_GET_KTLS_SEND);
  }

  /** On a socket: whether the kernel now decrypts what is read. */
  kernelReceives(): boolean {
    return this.ktlsControl(BIO_CTRL_GET_KTLS_RECV);
  }

  private ktlsControl(command: number): boolean {
    if (this.outBio !== 0) return false;
    const bio = command === BIO_CTRL_GET_KTLS_SEND ? libssl.SSL_get_wbio(asPointer(this.ssl)) : libssl.SSL_get_rbio(asPointer(this.ssl));
    return Number(libcrypto.BIO_ctrl(bio, command, 0, null)) > 0;
  }

  /** "TLSv1.3 TLS_AES_256_GCM_SHA384" once the handshake is done. */
  describe(): string {
    const cipher = libssl.SSL_get_current_cipher(asPointer(this.ssl));
    return `${libssl.SSL_get_version(asPointer(this.ssl))} ${cipher ? libssl.SSL_CIPHER_get_name(cipher) : "(none)"}`;
  }
}
