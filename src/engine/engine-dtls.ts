/**
 * The engine's DTLS transport from the configuration (--dtls): the OpenSSL context built from --cert and
 * --pkey (DTLS 1.2 only, coturn's --cipher-list), the per-engine limits, and the engine's counters.
 */
import { DTLS1_2_VERSION, SSL_CTRL_SET_MAX_CERT_LIST, SSL_CTRL_SET_MIN_PROTO_VERSION, SSL_OP_NO_TICKET } from "../../ffi/libssl.ts";
import { TlsContext } from "../../ffi/tls-context.ts";
import type { DtlsConfig } from "../config/relay-config.ts";
import { formatEndpoint, type Endpoint } from "../net/endpoint.ts";
import type { EngineEvent, EngineInit } from "./engine-init.ts";
import { DtlsTransport, type DtlsHandlers } from "./dtls-transport.ts";

export type { DtlsTransport };

/** An association without an allocation is closed after this much silence (as a TCP connection is). */
export const DTLS_UNALLOCATED_MS = 60_000;
/**
 * The longest handshake message a client may make OpenSSL buffer: OpenSSL's floor (coturn does the same);
 * no client certificate is asked for, so nothing legitimate comes close.
 */
const MAX_CERT_LIST = 17_728;

export function dtlsContext(dtls: DtlsConfig): TlsContext {
  const context = TlsContext.server({
    certFile: dtls.cert,
    keyFile: dtls.key,
    ...(dtls.passphrase !== undefined ? { keyPassphrase: dtls.passphrase } : {}),
    ...(dtls.ciphers !== undefined ? { cipherList: dtls.ciphers } : {}),
    dtls: true,
  });
  context.ctrl(SSL_CTRL_SET_MIN_PROTO_VERSION, DTLS1_2_VERSION);
  context.ctrl(SSL_CTRL_SET_MAX_CERT_LIST, MAX_CERT_LIST);
  context.setOptions(SSL_OP_NO_TICKET);
  return context;
}

export function engineDtlsTransport(init: EngineInit, handlers: DtlsHandlers): DtlsTransport | null {
  const { dtls } = init.config;
  if (dtls === undefined) return null;
  return new DtlsTransport(
    () => dtlsContext(dtls),
    { maxSessions: dtls.maxSessions, maxSessionsPerSource: dtls.maxSessionsPerIp, handshakeTimeoutMs: dtls.handshakeTimeoutMs, unallocatedMs: DTLS_UNALLOCATED_MS },
    handlers,
    init.counters,
  );
}

/**
 * SIGUSR2 or changed files (tls-service.ts): new DTLS associations use the certificate as it is now; open
 * ones keep theirs. Checked with the engine's sweeps (once a second); a failure keeps the old context.
 */
export class DtlsCertificateReloads {
  /** The certificate generation the context was loaded at. */
  private seen: number;

  constructor(
    private readonly cell: Int32Array,
    private readonly dtls: DtlsTransport,
    private readonly index: number,
    private readonly emit: (event: EngineEvent) => void,
  ) {
    this.seen = Atomics.load(cell, 0);
  }

  check(): void {
    const generation = Atomics.load(this.cell, 0);
    if (generation === this.seen) return;
    this.seen = generation;
    try {
      this.dtls.reloadCertificate();
      this.emit({ kind: "log", level: "info", message: `engine ${this.index}: DTLS certificate reloaded` });
    } catch (error) {
      this.emit({ kind: "log", level: "error", message: `engine ${this.index}: DTLS certificate reload failed, keeping the old one: ${(error as Error).message}` });
    }
  }
}

/** -v: why OpenSSL refused a DTLS client, one line a second at most (a client can make it fail at will). */
export function dtlsFailureLog(index: number, emit: (event: EngineEvent) => void): (client: Endpoint, why: string) => void {
  let last = 0;
  return (client, why) => {
    const now = Date.now();
    if (now - last < 1000) return;
    last = now;
    emit({ kind: "log", level: "debug", message: `engine ${index}: DTLS with ${formatEndpoint(client)} failed: ${why}` });
  };
}
