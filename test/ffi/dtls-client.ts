/**
 * A DTLS 1.2 client over OpenSSL with memory BIOs, for tests (Bun has no DTLS client): it writes
 * ClientHellos and records to `takeOutput`, and takes the server's datagrams through `feed`.
 */
import { ptr } from "bun:ffi";
import { asPointer, libcrypto, libssl, openSslErrors } from "../../ffi/libssl.ts";

export class DtlsTestClient {
  private readonly context: number;
  private readonly ssl: number;
  private readonly inBio: number;
  private readonly outBio: number;

  constructor() {
    this.context = libssl.SSL_CTX_new(libssl.DTLS_client_method()) as unknown as number;
    this.ssl = libssl.SSL_new(asPointer(this.context)) as unknown as number;
    this.inBio = libcrypto.BIO_new(libcrypto.BIO_s_mem()) as unknown as number;
    this.outBio = libcrypto.BIO_new(libcrypto.BIO_s_mem()) as unknown as number;
    libssl.SSL_set_bio(asPointer(this.ssl), asPointer(this.inBio), asPointer(this.outBio));
    libssl.SSL_set_connect_state(asPointer(this.ssl));
  }

  /** Runs the handshake on what was fed; true once complete. */
  handshake(): boolean {
    const r = libssl.SSL_do_handshake(asPointer(this.ssl));
    if (r !== 1) openSslErrors();
    return r === 1;
  }

  feed(datagram: Uint8Array): void {
    libcrypto.BIO_write(asPointer(this.inBio), ptr(datagram), datagram.length);
  }

  /** Everything the client wrote since the last call (records of one or more datagrams), or null. */
  takeOutput(): Uint8Array | null {
    const n = Number(libcrypto.BIO_ctrl_pending(asPointer(this.outBio)));
    if (n === 0) return null;
    const out = new Uint8Array(n);
    libcrypto.BIO_read(asPointer(this.outBio), ptr(out), n);
    return out;
  }

  write(bytes: Uint8Array): void {
    libssl.SSL_write(asPointer(this.ssl), ptr(bytes), bytes.length);
  }

  /** The next decrypted message, or null. */
  read(): Uint8Array | null {
    const buffer = new Uint8Array(65536);
    const n = libssl.SSL_read(asPointer(this.ssl), ptr(buffer), buffer.length);
    if (n <= 0) {
      openSslErrors();
      return null;
    }
    return buffer.slice(0, n);
  }

  free(): void {
    libssl.SSL_free(asPointer(this.ssl));
    libssl.SSL_CTX_free(asPointer(this.context));
  }
}

/** A fresh client's first ClientHello (no cookie). */
export function initialClientHello(): Uint8Array {
  const client = new DtlsTestClient();
  client.handshake();
  const hello = client.takeOutput()!;
  client.free();
  return hello;
}
