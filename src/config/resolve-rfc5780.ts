/**
 * coturn's --rfc5780 (RFC 5780 NAT behaviour discovery): which listening IP stands as each one's
 * alternate, and the alternate port. Refused with one line when it cannot be served as asked, where
 * coturn only warns and serves without it: an operator who asked for it would otherwise find out from
 * a client's wrong NAT verdict.
 */
import { parseIp, type Family } from "../net/endpoint.ts";
import type { AlternateIp } from "../turn/nat-discovery.ts";
import { ConfigError } from "./config-error.ts";
import type { RawOptions } from "./options.ts";
import { checkPort, get } from "./raw-options.ts";

export interface NatDiscoveryConfig {
  /** --alt-listening-port: every listening IP with an alternate listens on UDP here too. */
  altPort: number;
  /** Each specific listening IP of a family with two or more, and the next one of its family (coturn's rule). */
  alternates: AlternateIp[];
}

export interface Rfc5780Context {
  listeningIps: readonly string[];
  listeningPort: number;
  /** The other ports the server listens on (TLS, the proxy ports) and the relay range: the alternate port must avoid them. */
  otherPorts: readonly (number | undefined)[];
  minPort: number;
  maxPort: number;
  udp: boolean;
  externalIps: readonly unknown[];
}

const NEEDS = "--rfc5780 needs two listening IPs of one family (e.g. --listening-ip 192.0.2.1 --listening-ip 192.0.2.2): the second answers as the alternate address";

export function resolveRfc5780(raw: RawOptions, c: Rfc5780Context): NatDiscoveryConfig | undefined {
  if (get<boolean | undefined>(raw, "rfc5780") !== true) return undefined;
  if (!c.udp) throw new ConfigError("--rfc5780 with --no-udp: RFC 5780 is served over UDP");
  // coturn turns RFC 5780 off behind NAT too: the addresses it would name are not the ones clients reach.
  if (c.externalIps.length > 0) throw new ConfigError("--rfc5780 with --external-ip: behind NAT, the alternate addresses the server would name are not the ones clients reach");
  const byFamily = new Map<Family, Uint8Array[]>();
  for (const ip of c.listeningIps) {
    if (ip === "0.0.0.0" || ip === "::") continue; // a wildcard has no address to name in RESPONSE-ORIGIN
    const address = parseIp(ip)!;
    const family: Family = address.length === 4 ? 4 : 6;
    const list = byFamily.get(family) ?? [];
    if (!list.some((a) => a.every((b, i) => b === address[i]))) list.push(address);
    byFamily.set(family, list);
  }
  const alternates: AlternateIp[] = [];
  for (const list of byFamily.values()) {
    if (list.length < 2) continue;
    list.forEach((address, i) => alternates.push({ address, alternate: list[(i + 1) % list.length]! }));
  }
  if (alternates.length === 0) throw new ConfigError(`${NEEDS} (got ${c.listeningIps.join(", ")})`);

  const given = get<number | undefined>(raw, "alt-listening-port");
  const altPort = given === undefined ? c.listeningPort + 1 : checkPort(given, "alt-listening-port");
  if (altPort > 65535 || altPort === c.listeningPort || c.otherPorts.includes(altPort)) {
    throw new ConfigError(`--alt-listening-port ${altPort}: must be a port other than the listening, TLS and proxy ports`);
  }
  if (altPort >= c.minPort && altPort <= c.maxPort) {
    throw new ConfigError(`--alt-listening-port ${altPort}: inside the relay port range ${c.minPort}-${c.maxPort}`);
  }
  return { altPort, alternates };
}
