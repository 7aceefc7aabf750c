/**
 * DTLS 1.2 over OpenSSL with memory BIOs, for a UDP listener shared by many clients: the caller receives
 * the datagrams (recvmmsg) and sends what OpenSSL produced, so one socket serves every client.
 *
 * - `DtlsListener`: one listening SSL, reused for every ClientHello that has not proven its address. It
 *   runs DTLSv1_listen (RFC 6347 §4.2.1): a ClientHello without a valid cookie is answered with a
 *   HelloVerifyRequest and leaves nothing behind; with a valid cookie, that SSL becomes the client's
 *   `DtlsSession` (the ClientHello buffered inside it) and a fresh listening SSL takes its place. The
 *   cookie itself is the caller's (`CookieJudge`), asked through two JSCallbacks.
 * - `DtlsSession`: one client's association: feed it datagrams, take the records it writes.
 * Results are numbers (see the DTLS_* codes), so the data path allocates nothing.
 *
 * Traps, each met once (the symbols are in libssl.ts):
 * - DTLSv1_listen writes the client's address into a BIO_ADDR (never NULL: it clears it when the BIO
 *   cannot tell, and a NULL there is a crash); one is allocated per listener and reused.
 * - The cookie callbacks are JSCallbacks: OpenSSL calls them synchronously inside DTLSv1_listen, on the
 *   thread that called it, so they run in the same Worker and see the datagram being judged. It calls the
 *   verify callback once more when the new session's first handshake step reads the buffered ClientHello.
 * - DTLS_get_timeout (SSL_ctrl 73) fills a struct timeval (two 64-bit words) with the time left.
 * - A memory BIO keeps no datagram boundaries: what OpenSSL writes in one go is split back into
 *   records by the caller, and a datagram DTLSv1_listen did not read whole must not prefix the next.
 */
import { JSCallback, ptr, toArrayBuffer, FFIType, type Pointer } from "bun:ffi";
import {
  DTLS_COOKIE_MAX, DTLS_CTRL_GET_TIMEOUT, DTLS_CTRL_HANDLE_TIMEOUT, SSL_CTRL_SET_MTU, SSL_OP_NO_QUERY_MTU, asPointer, libcrypto,
  libssl, openSslErrors,
} from "./libssl.ts";
import { memoryBio, SSL_CLOSED, SSL_FAILED, SSL_WANT_READ, SslConnection } from "./ssl-connection.ts";
import type { TlsContext } from "./tls-context.ts";

/** OpenSSL needs another datagram before it can go on. */
export const DTLS_WANT_READ = SSL_WANT_READ;
/** The client sent close_notify. */
export const DTLS_CLOSED = SSL_CLOSED;
/** The association failed (`failure` says why). */
export const DTLS_FAILED = SSL_FAILED;

/** The caller's stateless cookie: bound to the client of the datagram being listened to. */
export interface CookieJudge {
  /** Writes a cookie for the current client into `into` (up to 255 bytes); returns its length. */
  generate(into: Uint8Array): number;
  /** Whether `cookie` is one `generate` gave the current client and is still valid. */
  verify(cookie: Uint8Array): boolean;
}

/** UDP payload OpenSSL fits its handshake records into (it cannot ask the kernel through a memory BIO). */
export const DTLS_MTU = 1200;

/**
 * handshake (1, DTLS_WANT_READ or DTLS_FAILED), write (one record: bytes taken or DTLS_FAILED),
 * outputPending, takeOutput (records for the client), shutdown and free are SslConnection's
 * (ssl-connection.ts); its memory BIOs never ask to wait for room.
 */
export class DtlsSession extends SslConnection {
  private readonly timeval = new BigInt64Array(2);

  constructor(ssl: number, inBio: number, outBio: number) {
    super(ssl, inBio, outBio);
  }

  /** Hands one datagram (at a raw address) to OpenSSL. */
  feed(address: number, length: number): void {
    libcrypto.BIO_write(asPointer(this.inBio), asPointer(address), length);
  }

  get established(): boolean {
    return libssl.SSL_is_init_finished(asPointer(this.ssl)) === 1;
  }

  /** Decrypts one record's payload to `address` (room for `capacity`): bytes, DTLS_WANT_READ, DTLS_CLOSED or DTLS_FAILED. */
  read(address: number, capacity: number): number {
    const r = libssl.SSL_read(asPointer(this.ssl), asPointer(address), capacity);
    return r > 0 ? r : this.outcome(r);
  }

  /** Milliseconds until a flight must be sent again (DTLS_get_timeout), or -1 when no timer runs. */
  retransmitIn(): number {
    const running = Number(libssl.SSL_ctrl(asPointer(this.ssl), DTLS_CTRL_GET_TIMEOUT, 0, ptr(this.timeval)));
    if (running <= 0) return -1;
    return Number(this.timeval[0]!) * 1000 + Math.ceil(Number(this.timeval[1]!) / 1000);
  }

  /** DTLSv1_handle_timeout: the last flight goes out again (into the output) when its timer expired. */
  handleTimeout(): void {
    if (Number(libssl.SSL_ctrl(asPointer(this.ssl), DTLS_CTRL_HANDLE_TIMEOUT, 0, null)) < 0) openSslErrors();
  }
}

export class DtlsListener {
  private context: TlsContext;
  private ssl = 0;
  private inBio = 0;
  private outBio = 0;
  private readonly peer: number;
  private readonly generateCallback: JSCallback;
  private readonly verifyCallback: JSCallback;

  constructor(context: TlsContext, judge: CookieJudge) {
    this.generateCallback = new JSCallback(
      (_ssl: Pointer, cookie: Pointer, lengthCell: Pointer) => {
        const n = judge.generate(new Uint8Array(toArrayBuffer(cookie, 0, DTLS_COOKIE_MAX)));
        new Uint32Array(toArrayBuffer(lengthCell, 0, 4))[0] = n;
        return 1;
      },
      { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    );
    this.verifyCallback = new JSCallback(
      (_ssl: Pointer, cookie: Pointer, length: number) =>
        length > 0 && length <= DTLS_COOKIE_MAX && judge.verify(new Uint8Array(toArrayBuffer(cookie, 0, length))) ? 1 : 0,
      { args: [FFIType.ptr, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    );
    this.peer = libcrypto.BIO_ADDR_new() as unknown as number;
    this.context = context;
    this.useContext(context);
  }

  /** New associations use `context` (a reloaded certificate); open ones keep theirs. */
  useContext(context: TlsContext): void {
    this.context = context;
    const h = asPointer(context.handle);
    context.setOptions(SSL_OP_NO_QUERY_MTU);
    libssl.SSL_CTX_set_cookie_generate_cb(h, this.generateCallback.ptr);
    libssl.SSL_CTX_set_cookie_verify_cb(h, this.verifyCallback.ptr);
    if (this.ssl !== 0) this.dropListeningSsl();
  }

  /**
   * Runs the cookie exchange on one datagram (at a raw address). Returns the client's new session when
   * it carried a ClientHello with a valid cookie (the hello is inside, `handshake()` answers it);
   * otherwise null, with a HelloVerifyRequest in the output when it was a ClientHello without one.
   */
  listen(address: number, length: number): DtlsSession | null {
    if (this.ssl !== 0 && this.dirty()) this.dropListeningSsl();
    if (this.ssl === 0) this.openListeningSsl();
    libcrypto.BIO_write(asPointer(this.inBio), asPointer(address), length);
    const r = libssl.DTLSv1_listen(asPointer(this.ssl), asPointer(this.peer));
    if (r <= 0) {
      if (r < 0) openSslErrors(); // not a ClientHello, or a malformed one: nothing to answer
      return null;
    }
    const session = new DtlsSession(this.ssl, this.inBio, this.outBio);
    libssl.SSL_ctrl(asPointer(this.ssl), SSL_CTRL_SET_MTU, DTLS_MTU, null);
    this.ssl = 0; // the next ClientHello gets a fresh listening SSL
    return session;
  }

  /** Moves the HelloVerifyRequest (if any) to buffer[offset..]; returns its length. */
  takeOutput(buffer: Uint8Array, offset: number, capacity: number): number {
    if (this.ssl === 0) return 0;
    const n = libcrypto.BIO_read(asPointer(this.outBio), ptr(buffer, offset), capacity);
    return n > 0 ? n : 0;
  }

  close(): void {
    if (this.ssl !== 0) this.dropListeningSsl();
    libcrypto.BIO_ADDR_free(asPointer(this.peer));
    this.generateCallback.close();
    this.verifyCallback.close();
  }

  private openListeningSsl(): void {
    const ssl = libssl.SSL_new(asPointer(this.context.handle)) as unknown as number;
    if (!ssl) throw new Error(`SSL_new: ${openSslErrors()}`);
    this.inBio = memoryBio();
    this.outBio = memoryBio();
    libssl.SSL_set_bio(asPointer(ssl), asPointer(this.inBio), asPointer(this.outBio)); // owned by ssl from now on
    libssl.SSL_set_accept_state(asPointer(ssl));
    this.ssl = ssl;
  }

  /** Bytes left from the last datagram (one DTLSv1_listen did not read whole, an answer not taken): they must not reach the next client. */
  private dirty(): boolean {
    return Number(libcrypto.BIO_ctrl_pending(asPointer(this.inBio))) > 0 || Number(libcrypto.BIO_ctrl_pending(asPointer(this.outBio))) > 0;
  }

  private dropListeningSsl(): void {
    libssl.SSL_free(asPointer(this.ssl));
    this.ssl = 0;
  }
}
