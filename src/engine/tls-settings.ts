/**
 * coturn's TLS options as Bun.listen's `tls` settings: --pkey-pwd (passphrase), --cipher-list (ciphers),
 * --CA-file (client certificates required and checked against it) and
 * --no-tlsv1_2 (TLS 1.3 only). TLS 1.0 and 1.1 are never offered whatever is configured.
 */
import { constants } from "node:crypto";
import type { TlsConfig } from "../config/resolve.ts";

/** OpenSSL's options for coturn's protocol versions: never TLS 1.0 or 1.1; with --no-tlsv1_2, 1.3 only. */
export function tlsSecureOptions(tls: TlsConfig): number {
  let secureOptions = constants.SSL_OP_NO_TLSv1 | constants.SSL_OP_NO_TLSv1_1;
  if (tls.tls13Only) secureOptions |= constants.SSL_OP_NO_TLSv1_2;
  return secureOptions;
}

export function bunTlsSettings(tls: TlsConfig): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  if (tls.passphrase !== undefined) settings.passphrase = tls.passphrase;
  if (tls.ciphers !== undefined) settings.ciphers = tls.ciphers;
  if (tls.caFile !== undefined) {
    settings.ca = Bun.file(tls.caFile);
    settings.requestCert = true;
    settings.rejectUnauthorized = true;
  }
  settings.secureOptions = tlsSecureOptions(tls);
  return settings;
}
