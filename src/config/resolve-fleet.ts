/**
 * What a fleet of relays shares (docs/fleet.md): --fleet-redis, --redis-statsdb, --nonce-secret-file,
 * and for load-aware redirects --fleet-capacity and the addresses other relays send clients to
 * (--fleet-address, else --external-ip's public addresses, else the specific listening addresses).
 */
import type { RawOptions } from "./options.ts";
import { ConfigError } from "./config-error.ts";
import { checkIp, checkNotNegative, get } from "./raw-options.ts";
import { parseRedisTarget } from "./redis-target.ts";
import type { FleetConfig, RelayConfig } from "./relay-config.ts";
import { parseIp } from "../net/endpoint.ts";

const WILDCARDS = new Set(["0.0.0.0", "::"]);

/** One address per family: the first given of each. */
function onePerFamily(ips: string[]): string[] {
  const out: string[] = [];
  for (const ip of ips) {
    const length = parseIp(ip)?.length;
    if (length !== undefined && !out.some((o) => parseIp(o)?.length === length)) out.push(ip);
  }
  return out;
}

export function resolveFleet(raw: RawOptions, config: RelayConfig): FleetConfig {
  const fleet: FleetConfig = {
    capacity: checkNotNegative(get<number>(raw, "fleet-capacity"), "fleet-capacity"),
    addresses: [],
    port: config.listeningPort,
    ...(config.tls ? { tlsPort: config.tls.port } : {}),
  };
  const redis = get<string | undefined>(raw, "fleet-redis");
  if (redis !== undefined) fleet.redis = parseRedisTarget(redis, "fleet-redis");
  const statsdb = get<string | undefined>(raw, "redis-statsdb");
  if (statsdb !== undefined) fleet.statsdb = parseRedisTarget(statsdb, "redis-statsdb");
  const nonceSecretFile = get<string | undefined>(raw, "nonce-secret-file");
  if (nonceSecretFile !== undefined) {
    if (nonceSecretFile.trim() === "") throw new ConfigError("--nonce-secret-file needs a file name");
    fleet.nonceSecretFile = nonceSecretFile;
  }
  const given = get<string[] | undefined>(raw, "fleet-address") ?? [];
  for (const ip of given) {
    checkIp(ip, "fleet-address");
    if (WILDCARDS.has(ip)) throw new ConfigError(`--fleet-address: ${ip} is no address a client can be sent to`);
  }
  fleet.addresses = onePerFamily(given.length > 0
    ? given
    : config.externalIps.length > 0
      ? config.externalIps.map((e) => e.public)
      : config.listeningIps.filter((ip) => !WILDCARDS.has(ip)));
  if ((fleet.capacity > 0 || given.length > 0) && fleet.redis === undefined) {
    throw new ConfigError(`--${fleet.capacity > 0 ? "fleet-capacity" : "fleet-address"} needs --fleet-redis (where the relays find each other)`);
  }
  return fleet;
}
