/**
 * The addresses of a RelayConfig, parsed once in the main thread (resolveConfig) so the Workers only
 * read bytes: each listening address with its family and label, and per family the local relay address
 * with the one advertised in XOR-RELAYED-ADDRESS (coturn --external-ip PUBLIC[/PRIVATE] mapping).
 */
import { formatHostPort, parseIp, type Family } from "../net/endpoint.ts";

export interface ListenAddress {
  /** As configured, e.g. "0.0.0.0" or "::1". */
  ip: string;
  family: Family;
  /** 4 or 16 bytes, network order. */
  address: Uint8Array;
  /** "ip:port" or "[ip]:port", for logs. */
  label: string;
}

export interface RelayAddress {
  family: Family;
  /** Where relay sockets bind. */
  local: Uint8Array;
  /** What clients are told (XOR-RELAYED-ADDRESS): the matching --external-ip, else `local`. */
  advertised: Uint8Array;
}

export interface ExternalIp {
  public: string;
  /** The local relay address this public one stands for; absent = all. */
  private?: string;
}

function bytes(ip: string): Uint8Array {
  const parsed = parseIp(ip);
  if (!parsed) throw new RangeError(`not an IP address: ${ip}`); // resolveConfig checked every address
  return parsed;
}

export function listenAddresses(ips: readonly string[], port: number): ListenAddress[] {
  return ips.map((ip) => {
    const address = bytes(ip);
    const family: Family = address.length === 4 ? 4 : 6;
    return { ip, family, address, label: formatHostPort(ip, port) };
  });
}

/**
 * One entry per family that has a relay address (resolveConfig allows at most one per family). The
 * advertised address is the first --external-ip of that family whose PRIVATE part is absent or names
 * this relay address.
 */
export function relayAddresses(relayIps: readonly string[], externalIps: readonly ExternalIp[]): RelayAddress[] {
  return relayIps.map((ip) => {
    const local = bytes(ip);
    const family: Family = local.length === 4 ? 4 : 6;
    const external = externalIps.find((e) => bytes(e.public).length === local.length && (e.private === undefined || e.private === ip));
    return { family, local, advertised: external ? bytes(external.public) : local };
  });
}
