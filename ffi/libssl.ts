/**
 * OpenSSL 3 (Debian's libssl3: libssl.so.3, libcrypto.so.3) through bun:ffi, the way libc.ts binds libc:
 * dlopen, the few functions TLS and DTLS serving need, no struct ever read or written (OpenSSL's objects
 * are opaque pointers held as numbers). The classes that hold them are tls-context.ts and tls-session.ts.
 *
 * Traps, each met once:
 * - OpenSSL's error queue is per thread, and SSL_get_error() reads it first: a stale entry turns the
 *   next WANT_READ into SSL_ERROR_SSL. Every failure path here drains it (`openSslErrors()`), so the
 *   queue is empty before each call and the hot path never has to clear it.
 * - C strings: bun:ffi passes a buffer's address, so a path or cipher list must be NUL-terminated
 *   (`cString`). Never hand a JS string to a `ptr` argument.
 * - SSL_CTX_set_options/SSL_set_options are real functions in OpenSSL 3 (macros in 1.1), on uint64_t.
 * - SSL_CTX_use_PrivateKey_file() asks for an encrypted key's passphrase on the terminal through the
 *   default callback; keys are read with PEM_read_bio_PrivateKey(bio, NULL, NULL, passphrase) instead,
 *   where a NULL callback and a non-NULL passphrase mean "use this string", never a prompt.
 * - SSL_set_bio() takes ownership of both BIOs: SSL_free() frees them; never BIO_free() them after.
 * - An SSL holds a reference on its SSL_CTX: freeing the context (certificate reload) while connections
 *   still use it is safe, the last SSL_free() releases it.
 *
 * DTLS: DTLS_server_method above, and the DTLS-only symbols (the cookie exchange, the timers) in the
 * `dtlsSymbols` table below; ffi/dtls.ts uses them and says what to watch for.
 */
import { dlopen, FFIType, type Pointer } from "bun:ffi";

const { i32, i64, u64_fast, ptr, cstring } = FFIType;

/** libssl's own functions. */
const sslSymbols = {
  TLS_server_method: { args: [], returns: ptr },
  TLS_client_method: { args: [], returns: ptr },
  DTLS_server_method: { args: [], returns: ptr },
  SSL_CTX_new: { args: [ptr], returns: ptr },
  SSL_CTX_free: { args: [ptr], returns: FFIType.void },
  SSL_CTX_use_certificate_chain_file: { args: [ptr, ptr], returns: i32 },
  SSL_CTX_use_PrivateKey: { args: [ptr, ptr], returns: i32 },
  SSL_CTX_check_private_key: { args: [ptr], returns: i32 },
  SSL_CTX_set_cipher_list: { args: [ptr, ptr], returns: i32 },
  SSL_CTX_set_ciphersuites: { args: [ptr, ptr], returns: i32 },
  SSL_CTX_ctrl: { args: [ptr, i32, i64, ptr], returns: i64 },
  SSL_CTX_set_options: { args: [ptr, u64_fast], returns: u64_fast },
  SSL_CTX_load_verify_locations: { args: [ptr, ptr, ptr], returns: i32 },
  SSL_CTX_set_verify: { args: [ptr, i32, ptr], returns: FFIType.void },
  SSL_CTX_set_client_CA_list: { args: [ptr, ptr], returns: FFIType.void },
  SSL_CTX_set_session_id_context: { args: [ptr, ptr, i32], returns: i32 },
  SSL_load_client_CA_file: { args: [ptr], returns: ptr },
  SSL_new: { args: [ptr], returns: ptr },
  SSL_free: { args: [ptr], returns: FFIType.void },
  SSL_set_bio: { args: [ptr, ptr, ptr], returns: FFIType.void },
  SSL_set_fd: { args: [ptr, i32], returns: i32 },
  SSL_get_rbio: { args: [ptr], returns: ptr },
  SSL_get_wbio: { args: [ptr], returns: ptr },
  SSL_set_accept_state: { args: [ptr], returns: FFIType.void },
  SSL_set_connect_state: { args: [ptr], returns: FFIType.void },
  SSL_do_handshake: { args: [ptr], returns: i32 },
  SSL_read: { args: [ptr, ptr, i32], returns: i32 },
  SSL_write: { args: [ptr, ptr, i32], returns: i32 },
  SSL_pending: { args: [ptr], returns: i32 },
  SSL_get_error: { args: [ptr, i32], returns: i32 },
  SSL_shutdown: { args: [ptr], returns: i32 },
  SSL_get_version: { args: [ptr], returns: cstring },
  SSL_get_current_cipher: { args: [ptr], returns: ptr },
  SSL_CIPHER_get_name: { args: [ptr], returns: cstring },
} as const;

/** libcrypto: BIOs, keys, the error queue. */
const cryptoSymbols = {
  BIO_s_mem: { args: [], returns: ptr },
  BIO_new: { args: [ptr], returns: ptr },
  BIO_new_file: { args: [ptr, ptr], returns: ptr },
  BIO_free: { args: [ptr], returns: i32 },
  BIO_read: { args: [ptr, ptr, i32], returns: i32 },
  BIO_write: { args: [ptr, ptr, i32], returns: i32 },
  BIO_ctrl: { args: [ptr, i32, i64, ptr], returns: i64 },
  BIO_ctrl_pending: { args: [ptr], returns: u64_fast },
  PEM_read_bio_PrivateKey: { args: [ptr, ptr, ptr, ptr], returns: ptr },
  EVP_PKEY_free: { args: [ptr], returns: FFIType.void },
  ERR_get_error: { args: [], returns: u64_fast },
  ERR_error_string_n: { args: [u64_fast, ptr, u64_fast], returns: FFIType.void },
  ERR_clear_error: { args: [], returns: FFIType.void },
  /** DTLSv1_listen writes the client's address into one (never NULL: it clears it, a crash on NULL). */
  BIO_ADDR_new: { args: [], returns: ptr },
  BIO_ADDR_free: { args: [ptr], returns: FFIType.void },
} as const;

/**
 * DTLS-only (ffi/dtls.ts): the stateless cookie exchange (DTLSv1_listen and the cookie callbacks, RFC 6347
 * §4.2.1), the retransmission timer (DTLS_get_timeout, DTLSv1_handle_timeout and the MTU are SSL_ctrl
 * commands), and a client method for tests (Bun has no DTLS client).
 */
const dtlsSymbols = {
  DTLS_client_method: { args: [], returns: ptr },
  DTLSv1_listen: { args: [ptr, ptr], returns: i32 },
  SSL_CTX_set_cookie_generate_cb: { args: [ptr, ptr], returns: FFIType.void },
  SSL_CTX_set_cookie_verify_cb: { args: [ptr, ptr], returns: FFIType.void },
  SSL_ctrl: { args: [ptr, i32, i64, ptr], returns: i64 },
  SSL_is_init_finished: { args: [ptr], returns: i32 },
} as const;

export const libssl = dlopen("libssl.so.3", { ...sslSymbols, ...dtlsSymbols }).symbols;
export const libcrypto = dlopen("libcrypto.so.3", cryptoSymbols).symbols;

/** bun:ffi's declared parameter types are narrower than what it accepts at run time (addresses as numbers). */
export const asPointer = (x: number | ArrayBufferView | null) => x as unknown as Pointer;

/** A NUL-terminated copy of `s`, for a `const char *` argument. */
export function cString(s: string): Uint8Array {
  return new TextEncoder().encode(`${s}\0`);
}

// ssl.h / bio.h constants (OpenSSL 3.0).
export const SSL_ERROR_NONE = 0;
export const SSL_ERROR_SSL = 1;
export const SSL_ERROR_WANT_READ = 2;
export const SSL_ERROR_WANT_WRITE = 3;
export const SSL_ERROR_SYSCALL = 5;
export const SSL_ERROR_ZERO_RETURN = 6;

export const SSL_CTRL_MODE = 33;
export const SSL_CTRL_SET_READ_AHEAD = 41;
export const SSL_CTRL_SET_SESS_CACHE_MODE = 44;
export const SSL_CTRL_SET_MIN_PROTO_VERSION = 123;
export const SSL_CTRL_SET_MAX_PROTO_VERSION = 124;

export const SSL_MODE_ENABLE_PARTIAL_WRITE = 0x1;
export const SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER = 0x2;
export const SSL_MODE_RELEASE_BUFFERS = 0x10;

const bit = (n: number) => 2 ** n;
export const SSL_OP_ENABLE_KTLS = bit(3);
export const SSL_OP_IGNORE_UNEXPECTED_EOF = bit(7);
export const SSL_OP_NO_COMPRESSION = bit(17);
export const SSL_OP_CIPHER_SERVER_PREFERENCE = bit(22);
export const SSL_OP_NO_SSLv3 = bit(25);
export const SSL_OP_NO_TLSv1 = bit(26);
export const SSL_OP_NO_TLSv1_2 = bit(27);
export const SSL_OP_NO_TLSv1_1 = bit(28);
export const SSL_OP_NO_TLSv1_3 = bit(29);
export const SSL_OP_NO_RENEGOTIATION = bit(30);

export const TLS1_VERSION = 0x0301;
export const TLS1_1_VERSION = 0x0302;
export const TLS1_2_VERSION = 0x0303;
export const TLS1_3_VERSION = 0x0304;
export const DTLS1_VERSION = 0xfeff;
export const DTLS1_2_VERSION = 0xfefd;

// DTLS (ssl.h, dtls1.h)
export const SSL_CTRL_SET_MTU = 17;
export const SSL_CTRL_SET_MAX_CERT_LIST = 51;
export const DTLS_CTRL_GET_TIMEOUT = 73;
export const DTLS_CTRL_HANDLE_TIMEOUT = 74;
export const SSL_OP_NO_QUERY_MTU = 2 ** 12;
export const SSL_OP_NO_TICKET = 2 ** 14;
/** DTLS1_COOKIE_LENGTH: room OpenSSL gives the generate callback. */
export const DTLS_COOKIE_MAX = 255;
/** The DTLS record header: type, version (2), epoch (2), sequence number (6), length (2). */
export const DTLS_RECORD_HEADER = 13;

export const SSL_VERIFY_PEER = 0x1;
export const SSL_VERIFY_FAIL_IF_NO_PEER_CERT = 0x2;

export const BIO_CTRL_GET_KTLS_SEND = 73;
export const BIO_CTRL_GET_KTLS_RECV = 76;

const errorText = new Uint8Array(256);

/**
 * Drains this thread's OpenSSL error queue into one line ("error:0A000086:SSL routines::certificate
 * verify failed; …"), or "" when it was empty. Call it after every failure: see the trap above.
 */
export function openSslErrors(): string {
  const lines: string[] = [];
  for (;;) {
    const code = libcrypto.ERR_get_error();
    if (code === 0) break;
    libcrypto.ERR_error_string_n(code, errorText, errorText.length);
    const end = errorText.indexOf(0);
    lines.push(new TextDecoder().decode(errorText.subarray(0, end < 0 ? errorText.length : end)));
  }
  return lines.join("; ");
}

/** A TLS failure with OpenSSL's own explanation. */
export class TlsError extends Error {
  constructor(what: string, detail = openSslErrors()) {
    super(detail === "" ? what : `${what}: ${detail}`);
    this.name = "TlsError";
  }
}
