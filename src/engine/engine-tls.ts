/**
 * TURN over TLS in the engines (RFC 8656 §3.1, `turns:`): coturn's TLS options as an OpenSSL context
 * (ffi/tls-context.ts), and whether the kernel can take the records over (kTLS).
 * --no-tlsv1_2 makes TLS 1.3 the minimum; TLS 1.0 and 1.1 are never offered (the minimum is 1.2);
 * --cipher-list sets the TLS 1.2 suites; --pkey-pwd decrypts the key; --CA-file requires a client
 * certificate signed by one of its CAs.
 */
import { readFileSync } from "node:fs";
import { TLS1_2_VERSION, TLS1_3_VERSION } from "../../ffi/libssl.ts";
import { TlsContext, type TlsContextOptions } from "../../ffi/tls-context.ts";
import type { TlsConfig } from "../config/relay-config.ts";

export function tlsContextOptions(tls: TlsConfig, kernelTls: boolean): TlsContextOptions {
  return {
    certFile: tls.cert,
    keyFile: tls.key,
    ...(tls.passphrase !== undefined ? { keyPassphrase: tls.passphrase } : {}),
    ...(tls.ciphers !== undefined ? { cipherList: tls.ciphers } : {}),
    ...(tls.caFile !== undefined ? { caFile: tls.caFile } : {}),
    minVersion: tls.tls13Only ? TLS1_3_VERSION : TLS1_2_VERSION,
    ktls: kernelTls,
  };
}

/** The server context for `tls`; throws a TlsError with OpenSSL's reason when the files do not load. */
export function serverContext(tls: TlsConfig, kernelTls: boolean): TlsContext {
  return TlsContext.server(tlsContextOptions(tls, kernelTls));
}

export const AVAILABLE_ULP = "/proc/sys/net/ipv4/tcp_available_ulp";

/**
 * Whether this kernel offers kernel TLS: `tls` among the upper-layer protocols it lists. Where it does,
 * OpenSSL (SSL_OP_ENABLE_KTLS, sessions on the socket) hands the record keys to the kernel after the
 * handshake; where it does not, or the file cannot be read, the engine keeps TLS in user space.
 */
export function kernelTlsAvailable(path = AVAILABLE_ULP): boolean {
  try {
    return readFileSync(path, "utf8").split(/\s+/).includes("tls");
  } catch {
    return false;
  }
}

/**
 * The engine's side of a certificate reload (tls-service.ts): when the main thread bumps the
 * generation, `reload` builds the new context (a failure keeps the old one and is reported), and the
 * generation is marked as loaded either way so the main thread's confirmation does not wait.
 */
export class CertificateReloads {
  private seen: number;

  constructor(
    private readonly cells: Int32Array,
    private readonly index: number,
    private readonly reload: () => void,
    private readonly failed: (message: string) => void,
  ) {
    this.seen = Atomics.load(cells, 0);
    Atomics.store(cells, 1 + index, this.seen);
  }

  /** Called in the turns the engine was signalled, and once a second: one shared load when nothing changed. */
  check(): void {
    const generation = Atomics.load(this.cells, 0);
    if (generation === this.seen) return;
    this.seen = generation;
    try {
      this.reload();
    } catch (error) {
      this.failed(`engine ${this.index}: TLS certificate reload failed, new connections keep the old one: ${(error as Error).message}`);
    }
    Atomics.store(this.cells, 1 + this.index, generation);
  }
}
