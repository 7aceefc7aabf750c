/**
 * Where the server listens and what it relays from: the listening addresses and port, the relay
 * addresses (this host's own when none are given), --external-ip pairs and the relay port range.
 */
import { networkInterfaces } from "node:os";
import type { RawOptions } from "./options.ts";
import { parseIp } from "../net/endpoint.ts";
import { ConfigError } from "./config-error.ts";
import { checkListeningIps, checkRelayIps } from "./host-checks.ts";
import { checkIp, checkPort, get } from "./raw-options.ts";
import type { RelayConfig } from "./relay-config.ts";

export type ResolvedAddresses = Pick<RelayConfig, "listeningIps" | "listeningPort" | "relayIps" | "externalIps" | "minPort" | "maxPort">;

/** `host`: this host's interface addresses (hostInterfaceAddresses), which listening and relay addresses must be. */
export function resolveAddresses(raw: RawOptions, host: string[]): ResolvedAddresses {
  const listeningIps = (get<string[]>(raw, "listening-ip") ?? ["0.0.0.0", "::"]).map((ip) => checkIp(ip, "listening-ip"));
  checkListeningIps(listeningIps, host);
  const listeningPort = checkPort(get<number>(raw, "listening-port"), "listening-port");
  const minPort = checkPort(get<number>(raw, "min-port"), "min-port");
  const maxPort = checkPort(get<number>(raw, "max-port"), "max-port");
  if (minPort > maxPort) throw new ConfigError(`--min-port ${minPort} is above --max-port ${maxPort}`);

  let relayIps = (get<string[] | undefined>(raw, "relay-ip") ?? []).map((ip) => checkIp(ip, "relay-ip"));
  if (relayIps.length === 0) {
    const specific = listeningIps.filter((ip) => ip !== "0.0.0.0" && ip !== "::");
    // On a dual-stack host both families get relays: browsers never send REQUESTED-ADDRESS-FAMILY, and
    // an IPv6 peer can only be reached from an IPv6 relay (RFC 8656 §7.2).
    // The first specific listening IP of each family: a relay address per family is all a client can use.
    const firstOfFamily = specific.filter((ip, i) => specific.findIndex((o) => parseIp(o)!.length === parseIp(ip)!.length) === i);
    relayIps = firstOfFamily.length > 0 ? firstOfFamily : defaultRelayIps(listeningIps);
  }
  for (const family of [4, 16]) {
    if (relayIps.filter((ip) => parseIp(ip)!.length === family).length > 1) {
      throw new ConfigError(`--relay-ip: give at most one address per family (got ${relayIps.join(", ")})`);
    }
  }

  const externalIps = (get<string[] | undefined>(raw, "external-ip") ?? []).map((text) => {
    const [pub, priv] = text.split("/");
    checkIp(pub!, "external-ip");
    if (priv !== undefined) checkIp(priv, "external-ip");
    return priv === undefined ? { public: pub! } : { public: pub!, private: priv };
  });
  checkRelayIps(relayIps, host, externalIps);
  return { listeningIps, listeningPort, relayIps, externalIps, minPort, maxPort };
}

/** The first non-internal IPv4 address of this host, for relays when nothing says otherwise. */
export function defaultRelayIpv4(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return "127.0.0.1";
}

/**
 * The relay addresses when none are configured: the first non-internal IPv4 address, and the first global
 * IPv6 address when the server listens on IPv6 at all (not link-local: a relay there reaches no one).
 */
export function defaultRelayIps(listeningIps: readonly string[]): string[] {
  const ips = [defaultRelayIpv4()];
  if (!listeningIps.some((ip) => ip.includes(":"))) return ips;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family === "IPv6" && !a.internal && !/^fe[89ab]/i.test(a.address) && a.scopeid === 0) return [...ips, a.address];
    }
  }
  return ips;
}
