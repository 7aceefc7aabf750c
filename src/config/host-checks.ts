/**
 * Start-up checks that need this host or the peer policy: addresses that are not this host's, peer ranges
 * that do not parse or run backwards, lifetimes out of range. Each refusal is one ConfigError line, so a
 * configuration that cannot work never starts (coturn would start and fail per request).
 */
import { networkInterfaces } from "node:os";
import { parseIp } from "../net/endpoint.ts";
import { MAX_LIFETIME_SECONDS as MAX_NONCE_LIFETIME_SECONDS } from "../turn/nonce.ts";
import { parsePeerRange, type PeerPolicyOptions } from "../turn/peer-policy.ts";
import { ConfigError } from "./config-error.ts";
import type { ExternalIp } from "./addresses.ts";

/** Every address on this host's interfaces, read once at start (an address added later is not known). */
export function hostInterfaceAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (parseIp(a.address)) out.push(a.address);
  }
  return out;
}

function isWildcard(ip: string): boolean {
  return parseIp(ip)?.every((b) => b === 0) ?? false;
}

function sameAddress(a: string, b: string): boolean {
  const x = parseIp(a);
  const y = parseIp(b);
  return x !== null && y !== null && x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Listening addresses: a wildcard or one of this host's (bind would fail with EADDRNOTAVAIL anyway, later and less clearly). */
export function checkListeningIps(ips: string[], host: string[]): void {
  for (const ip of ips) {
    if (isWildcard(ip) || host.some((h) => sameAddress(h, ip)) || onLoopbackNet(ip, host)) continue;
    throw new ConfigError(`--listening-ip ${ip}: not an address of this host (it has ${host.join(", ")})`);
  }
}

/**
 * Any 127.0.0.0/8 address is this host's when it has 127.0.0.1 (RFC 1122 §3.2.1.3: the whole block loops
 * back, and Linux binds each): a second loopback IP serves --rfc5780 on one machine (127.0.0.1 and .2).
 */
function onLoopbackNet(ip: string, host: string[]): boolean {
  return parseIp(ip)?.[0] === 127 && ip.includes(".") && host.includes("127.0.0.1");
}

/** Relay addresses: one of this host's, never a wildcard (clients are told the relayed address). */
export function checkRelayIps(ips: string[], host: string[], external: ExternalIp[]): void {
  for (const ip of ips) {
    if (isWildcard(ip)) throw new ConfigError(`--relay-ip ${ip}: a relay needs a specific address of this host, not a wildcard`);
    if (!host.some((h) => sameAddress(h, ip))) {
      throw new ConfigError(`--relay-ip ${ip}: not an address of this host (it has ${host.join(", ")}); behind NAT use --external-ip PUBLIC/PRIVATE`);
    }
  }
  for (const e of external) {
    if (e.private !== undefined && !ips.some((ip) => sameAddress(ip, e.private!))) {
      throw new ConfigError(`--external-ip ${e.public}/${e.private}: ${e.private} is not a relay address (${ips.join(", ")})`);
    }
  }
}

/** Longest lifetime accepted, in seconds (one year); a nonce's is shorter (it travels as 24 bits, nonce.ts). */
export const MAX_LIFETIME_SECONDS = 365 * 86400;

export function checkLifetime(seconds: number, option: string): number {
  const max = option === "stale-nonce" ? MAX_NONCE_LIFETIME_SECONDS : MAX_LIFETIME_SECONDS;
  if (!(seconds >= 1 && seconds <= max)) throw new ConfigError(`--${option}: ${seconds} is out of range (1-${max} seconds)`);
  return seconds;
}

export function checkRealm(realm: string): string {
  if (realm.trim() === "") throw new ConfigError("--realm must not be empty (clients hash it into their keys)");
  return realm;
}

export interface PeerPolicyInputs {
  allowLoopback: boolean;
  allowed: string[];
  denied: string[];
  host: string[];
  listeningIps: string[];
  relayIps: string[];
  externalIps: ExternalIp[];
  minPort: number;
  maxPort: number;
}

/**
 * The peer policy as plain data for the engines: the operator's ranges (checked here, one line each), and
 * this host's own addresses with the relay addresses and port range that stay reachable (docs/peer-policy.md).
 */
export function resolvePeerPolicy(p: PeerPolicyInputs): PeerPolicyOptions {
  for (const [option, list] of [["allowed-peer-ip", p.allowed], ["denied-peer-ip", p.denied]] as const) {
    for (const spec of list) {
      try {
        parsePeerRange(spec, option === "denied-peer-ip");
      } catch (error) {
        throw new ConfigError(`--${option} ${(error as Error).message}`);
      }
    }
  }
  const relayAddresses = [...p.relayIps];
  for (const e of p.externalIps) if (!relayAddresses.includes(e.public)) relayAddresses.push(e.public);
  const hostAddresses = [...new Set([...p.host, ...p.listeningIps.filter((ip) => !isWildcard(ip))])];
  return {
    allowLoopback: p.allowLoopback,
    allowed: p.allowed,
    denied: p.denied,
    hostAddresses,
    relayAddresses,
    relayPorts: { min: p.minPort, max: p.maxPort },
  };
}
