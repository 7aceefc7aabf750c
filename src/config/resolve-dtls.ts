/**
 * TURN over DTLS 1.2 (RFC 8656 §3.1; coturn's --dtls, off unless asked for, as in coturn 4.17): served on
 * the UDP listeners of the listening port and of --tls-listening-port, with --cert and --pkey.
 */
import { existsSync } from "node:fs";
import type { RawOptions } from "./options.ts";
import { ConfigError } from "./config-error.ts";
import { checkPort, checkPositive, get } from "./raw-options.ts";
import type { DtlsConfig, RelayConfig } from "./relay-config.ts";

export function resolveDtls(raw: RawOptions): Pick<RelayConfig, "dtls"> {
  // coturn 4.17: --dtls starts the DTLS listeners; --no-dtls (deprecated there) keeps them off.
  if (get<boolean>(raw, "dtls") !== true || get<boolean>(raw, "no-dtls") === true) return {};
  const cert = get<string | undefined>(raw, "cert");
  const key = get<string | undefined>(raw, "pkey");
  if (cert === undefined || key === undefined) throw new ConfigError("--dtls needs --cert and --pkey");
  for (const [file, option] of [[cert, "cert"], [key, "pkey"]] as const) {
    if (!existsSync(file)) throw new ConfigError(`--${option}: no such file ${file}`);
  }
  const handshake = get<number>(raw, "tls-handshake-timeout");
  if (!(handshake > 0)) throw new ConfigError("--tls-handshake-timeout: must be above 0 seconds");
  const dtls: DtlsConfig = {
    port: checkPort(get<number>(raw, "tls-listening-port"), "tls-listening-port"),
    cert,
    key,
    handshakeTimeoutMs: handshake * 1000,
    maxSessions: checkPositive(get<number>(raw, "dtls-max-sessions"), "dtls-max-sessions"),
    maxSessionsPerIp: checkPositive(get<number>(raw, "dtls-max-sessions-per-ip"), "dtls-max-sessions-per-ip"),
  };
  const passphrase = get<string | undefined>(raw, "pkey-pwd");
  if (passphrase !== undefined) dtls.passphrase = passphrase;
  const ciphers = get<string | undefined>(raw, "cipher-list");
  if (ciphers !== undefined && ciphers.trim() !== "") dtls.ciphers = ciphers;
  return { dtls };
}
