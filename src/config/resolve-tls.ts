/** TURN over TLS (RFC 8656 §3.1): the certificate, key and TLS settings, checked to exist. */
import { existsSync } from "node:fs";
import type { RawOptions } from "./options.ts";
import { ConfigError } from "./config-error.ts";
import { checkPort, get } from "./raw-options.ts";
import type { RelayConfig, TlsConfig } from "./relay-config.ts";

export function resolveTls(raw: RawOptions): Pick<RelayConfig, "tls"> {
  const cert = get<string | undefined>(raw, "cert");
  const key = get<string | undefined>(raw, "pkey");
  if (get<boolean>(raw, "no-tls") === true || (cert === undefined && key === undefined)) return {};
  if (cert === undefined || key === undefined) throw new ConfigError("TURN over TLS needs both --cert and --pkey");
  const tls: TlsConfig = {
    port: checkPort(get<number>(raw, "tls-listening-port"), "tls-listening-port"), cert, key,
    tls13Only: get<boolean>(raw, "no-tlsv1_2") === true,
  };
  const files: Array<[string, string]> = [[cert, "cert"], [key, "pkey"]];
  const ca = get<string | undefined>(raw, "CA-file");
  if (ca !== undefined) files.push([(tls.caFile = ca), "CA-file"]);
  for (const [file, option] of files) {
    if (!existsSync(file)) throw new ConfigError(`--${option}: no such file ${file}`);
  }
  const passphrase = get<string | undefined>(raw, "pkey-pwd");
  if (passphrase !== undefined) tls.passphrase = passphrase;
  const ciphers = get<string | undefined>(raw, "cipher-list");
  if (ciphers !== undefined) {
    if (ciphers.trim() === "") throw new ConfigError("--cipher-list needs a cipher list");
    tls.ciphers = ciphers;
  }
  return { tls };
}
