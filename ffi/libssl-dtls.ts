/**
 * The DTLS-only part of OpenSSL 3 (libssl.ts binds the rest): the stateless cookie exchange
 * (DTLSv1_listen and the cookie callbacks, RFC 6347 §4.2.1), the retransmission timer (DTLS_get_timeout
 * and DTLSv1_handle_timeout, both SSL_ctrl commands) and the path MTU given by hand (memory BIOs cannot
 * ask the kernel). Its own dlopen of libssl.so.3, so that libssl.ts stays one table.
 *
 * Traps, each met once:
 * - DTLSv1_listen writes the client's address into a BIO_ADDR (never NULL: it clears it when the BIO
 *   cannot tell, and a NULL there is a crash); one is allocated per listener and reused.
 * - The cookie callbacks are JSCallbacks: OpenSSL calls them synchronously inside DTLSv1_listen, on the
 *   thread that called it, so they run in the same Worker and see the datagram being judged.
 * - DTLS_get_timeout (SSL_ctrl 73) fills a struct timeval (two 64-bit words) with the time left.
 */
import { dlopen, FFIType } from "bun:ffi";

const { i32, i64, u64_fast, ptr } = FFIType;

export const libsslDtls = dlopen("libssl.so.3", {
  DTLSv1_listen: { args: [ptr, ptr], returns: i32 },
  /** For tests and probes: Bun has no DTLS client. */
  DTLS_client_method: { args: [], returns: ptr },
  SSL_CTX_set_cookie_generate_cb: { args: [ptr, ptr], returns: FFIType.void },
  SSL_CTX_set_cookie_verify_cb: { args: [ptr, ptr], returns: FFIType.void },
  SSL_ctrl: { args: [ptr, i32, i64, ptr], returns: i64 },
  SSL_set_options: { args: [ptr, u64_fast], returns: u64_fast },
  SSL_is_init_finished: { args: [ptr], returns: i32 },
  SSL_get_shutdown: { args: [ptr], returns: i32 },
}).symbols;

export const libcryptoDtls = dlopen("libcrypto.so.3", {
  BIO_ADDR_new: { args: [], returns: ptr },
  BIO_ADDR_free: { args: [ptr], returns: FFIType.void },
}).symbols;

// ssl.h (OpenSSL 3.0).
export const SSL_CTRL_SET_MTU = 17;
export const SSL_CTRL_SET_MAX_CERT_LIST = 51;
export const DTLS_CTRL_GET_TIMEOUT = 73;
export const DTLS_CTRL_HANDLE_TIMEOUT = 74;
export const SSL_OP_NO_QUERY_MTU = 2 ** 12;
export const SSL_OP_COOKIE_EXCHANGE = 2 ** 13;
export const SSL_OP_NO_TICKET = 2 ** 14;
export const SSL_RECEIVED_SHUTDOWN = 2;
/** DTLS1_COOKIE_LENGTH: room OpenSSL gives the generate callback. */
export const DTLS_COOKIE_MAX = 255;
/** The DTLS record header: type, version (2), epoch (2), sequence number (6), length (2). */
export const DTLS_RECORD_HEADER = 13;
