/**
 * The engine's DTLS transport from the configuration (--dtls): the OpenSSL context built from --cert and
 * --pkey (DTLS 1.2 only, coturn's --cipher-list), the per-engine limits, and the engine's counters.
 */
import { DTLS1_2_VERSION, SSL_CTRL_SET_MAX_CERT_LIST, SSL_CTRL_SET_MIN_PROTO_VERSION, SSL_OP_NO_TICKET } from "../../ffi/libssl.ts";
import { TlsContext } from "../../ffi/tls-context.ts";
import type { DtlsConfig } from "../config/relay-config.ts";
import type { EngineInit } from "./engine-init.ts";
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
