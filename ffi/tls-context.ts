/**
 * One OpenSSL SSL_CTX: the certificate chain, the key, versions, ciphers and client-certificate checks
 * every connection accepted with it shares. Built once per certificate (a reload builds a new one for new
 * connections; open ones keep theirs, see libssl.ts on reference counts).
 */
import {
  asPointer, cString, libcrypto, libssl, SSL_CTRL_MODE, SSL_CTRL_SET_MAX_PROTO_VERSION, SSL_CTRL_SET_MIN_PROTO_VERSION,
  SSL_CTRL_SET_READ_AHEAD, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, SSL_MODE_ENABLE_PARTIAL_WRITE, SSL_OP_CIPHER_SERVER_PREFERENCE,
  SSL_OP_ENABLE_KTLS, SSL_OP_NO_COMPRESSION, SSL_OP_NO_RENEGOTIATION, SSL_VERIFY_FAIL_IF_NO_PEER_CERT, SSL_VERIFY_PEER,
  TLS1_2_VERSION, TlsError, openSslErrors,
} from "./libssl.ts";

/** SSL_CTRL_SET_DH_AUTO: DHE suites (named in --cipher-list) use the built-in groups sized to the key. */
const SSL_CTRL_SET_DH_AUTO = 118;

export interface TlsContextOptions {
  /** PEM: the certificate, then its intermediates (a full chain). */
  certFile: string;
  /** PEM private key, encrypted or not. */
  keyFile: string;
  /** Passphrase of an encrypted key; never asked for on a terminal. */
  keyPassphrase?: string;
  /** TLS 1.2 suites in OpenSSL syntax (coturn --cipher-list). */
  cipherList?: string;
  /** TLS 1.3 suites (SSL_CTX_set_ciphersuites syntax); OpenSSL's default when absent. */
  cipherSuites?: string;
  /** Lowest and highest protocol version (TLS1_2_VERSION…); lowest defaults to TLS 1.2. */
  minVersion?: number;
  maxVersion?: number;
  /** PEM CA bundle: a client certificate signed by one of these is required (coturn --CA-file). */
  caFile?: string;
  /** SSL_OP_ENABLE_KTLS: the kernel takes over record encryption where it can (sessions on the socket only). */
  ktls?: boolean;
  /** DTLS_server_method instead of TLS_server_method. */
  dtls?: boolean;
}

export class TlsContext {
  private constructor(readonly handle: number) {}

  /** A server context; throws a TlsError with OpenSSL's text when a file, key or setting is refused. */
  static server(options: TlsContextOptions): TlsContext {
    const method = options.dtls ? libssl.DTLS_server_method() : libssl.TLS_server_method();
    const context = TlsContext.create(method);
    try {
      context.configureServer(options);
      return context;
    } catch (error) {
      context.free();
      throw error;
    }
  }

  /** A client context (tests, probes): no certificate, peer not verified. */
  static client(): TlsContext {
    return TlsContext.create(libssl.TLS_client_method());
  }

  private static create(method: unknown): TlsContext {
    const handle = libssl.SSL_CTX_new(asPointer(method as number)) as unknown as number;
    if (!handle) throw new TlsError("SSL_CTX_new");
    const context = new TlsContext(handle);
    // Writes may leave from a moving buffer (the engine's backlog) and partially on a socket.
    context.ctrl(SSL_CTRL_MODE, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // On a socket, read whole bursts at once instead of a 5-byte header then a body per record.
    context.ctrl(SSL_CTRL_SET_READ_AHEAD, 1);
    return context;
  }

  private configureServer(o: TlsContextOptions): void {
    const h = asPointer(this.handle);
    if (libssl.SSL_CTX_use_certificate_chain_file(h, cString(o.certFile)) !== 1) {
      throw new TlsError(`cannot load the certificate ${o.certFile}`);
    }
    this.useKey(o.keyFile, o.keyPassphrase);
    if (libssl.SSL_CTX_check_private_key(h) !== 1) {
      throw new TlsError(`the private key ${o.keyFile} does not match the certificate ${o.certFile}`);
    }
    this.setOptions(SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | (o.ktls ? SSL_OP_ENABLE_KTLS : 0));
    if (!o.dtls) {
      if (this.ctrl(SSL_CTRL_SET_MIN_PROTO_VERSION, o.minVersion ?? TLS1_2_VERSION) !== 1) throw new TlsError("minimum TLS version refused");
      if (o.maxVersion !== undefined && this.ctrl(SSL_CTRL_SET_MAX_PROTO_VERSION, o.maxVersion) !== 1) throw new TlsError("maximum TLS version refused");
    }
    this.ctrl(SSL_CTRL_SET_DH_AUTO, 1);
    if (o.cipherList !== undefined && libssl.SSL_CTX_set_cipher_list(h, cString(o.cipherList)) !== 1) {
      throw new TlsError(`no usable cipher in the cipher list "${o.cipherList}"`);
    }
    if (o.cipherSuites !== undefined && libssl.SSL_CTX_set_ciphersuites(h, cString(o.cipherSuites)) !== 1) {
      throw new TlsError(`no usable TLS 1.3 suite in "${o.cipherSuites}"`);
    }
    if (o.caFile !== undefined) this.requireClientCertificates(o.caFile);
  }

  /** PEM_read_bio_PrivateKey with a NULL callback and a non-NULL passphrase: that string, never a prompt. */
  private useKey(keyFile: string, passphrase: string | undefined): void {
    const bio = libcrypto.BIO_new_file(cString(keyFile), cString("r"));
    if (!bio) throw new TlsError(`cannot read the private key ${keyFile}`);
    const key = libcrypto.PEM_read_bio_PrivateKey(bio, null, null, cString(passphrase ?? ""));
    libcrypto.BIO_free(bio);
    if (!key) throw new TlsError(`cannot load the private key ${keyFile}${passphrase === undefined ? " (encrypted? give --pkey-pwd)" : ""}`);
    const used = libssl.SSL_CTX_use_PrivateKey(asPointer(this.handle), key);
    libcrypto.EVP_PKEY_free(key); // the context holds its own reference
    if (used !== 1) throw new TlsError(`the private key ${keyFile} was refused`);
  }

  private requireClientCertificates(caFile: string): void {
    const h = asPointer(this.handle);
    if (libssl.SSL_CTX_load_verify_locations(h, cString(caFile), null) !== 1) throw new TlsError(`cannot load the CA file ${caFile}`);
    const names = libssl.SSL_load_client_CA_file(cString(caFile));
    if (names) libssl.SSL_CTX_set_client_CA_list(h, names);
    else openSslErrors();
    libssl.SSL_CTX_set_verify(h, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, null);
    // Without a session id context, resuming a session that carried a client certificate fails.
    const id = cString("bunturn");
    libssl.SSL_CTX_set_session_id_context(h, id, id.length - 1);
  }

  /** SSL_CTX_set_options: adds option bits, returns the new set. */
  setOptions(bits: number): number {
    return Number(libssl.SSL_CTX_set_options(asPointer(this.handle), bits));
  }

  ctrl(command: number, value: number): number {
    return Number(libssl.SSL_CTX_ctrl(asPointer(this.handle), command, value, null));
  }

  /** Drops this reference; connections still open on it keep the context alive until they are freed. */
  free(): void {
    libssl.SSL_CTX_free(asPointer(this.handle));
  }
}
