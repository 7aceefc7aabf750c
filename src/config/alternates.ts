/**
 * coturn's `alternate-server`, `udp-alternate-server`, `tcp-alternate-server` and `tls-alternate-server`
 * (each repeatable, `IP`, `IP:PORT` or `[IPv6]:PORT`), resolved per client transport the way coturn's
 * handle_turn_command picks its list: UDP clients use the UDP list when it is set, TCP clients the TCP
 * list, TLS clients the TLS list, and each falls back to `alternate-server`. The default port is 3478
 * (5349 for `tls-alternate-server`), as in coturn.
 *
 * coturn's loop guard: a list that names this server itself (a listening address and port, or on a
 * wildcard listener any address of the host or its --external-ip) redirects nobody, so one pool-wide
 * list can be given to every server. bunturn keeps that rule and adds one: while draining, such a list
 * redirects to its other servers.
 */
import { formatHostPort, parseIp } from "../net/endpoint.ts";
import { ConfigError } from "./config-error.ts";

export type ClientTransport = "udp" | "tcp" | "tls";

export interface AlternateServer {
  ip: string;
  port: number;
}

export interface AlternateList {
  /** The servers to redirect to, this server's own addresses left out, in the order given. */
  servers: AlternateServer[];
  /** The list named this server: no redirection except while draining (coturn's loop guard). */
  namesSelf: boolean;
}

export type Alternates = Record<ClientTransport, AlternateList>;

export interface AlternateInputs {
  any: string[];
  udp: string[];
  tcp: string[];
  tls: string[];
  /** This server's listening addresses (wildcards included), port, TLS port, --external-ip publics. */
  listeningIps: string[];
  listeningPort: number;
  tlsPort: number | undefined;
  externalIps: string[];
  /** Every address of this host's interfaces (stands in for a wildcard listener). */
  hostAddresses: string[];
}

const DEFAULT_PORT = 3478;
const DEFAULT_TLS_PORT = 5349;

/** `IP`, `IP:PORT`, `[IPv6]:PORT` or a bare IPv6 address. */
export function parseAlternate(text: string, option: string, defaultPort: number): AlternateServer {
  const fail = (): never => {
    throw new ConfigError(`--${option}: '${text}' is not IP, IP:PORT or [IPv6]:PORT`);
  };
  let ip = text;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    ip = bracketed[1]!;
    portText = bracketed[2];
  } else if (parseIp(text) === null) {
    const colon = text.lastIndexOf(":");
    if (colon < 0 || text.indexOf(":") !== colon) fail();
    ip = text.slice(0, colon);
    portText = text.slice(colon + 1);
  }
  if (parseIp(ip) === null) fail();
  const port = portText === undefined ? defaultPort : /^\d{1,5}$/.test(portText) ? Number(portText) : 0;
  if (!(port >= 1 && port <= 65535)) fail();
  return { ip, port };
}

function sameIp(a: string, b: string): boolean {
  const x = parseIp(a);
  const y = parseIp(b);
  return x !== null && y !== null && x.length === y.length && x.every((v, i) => v === y[i]);
}

function isWildcard(ip: string): boolean {
  return parseIp(ip)?.every((b) => b === 0) ?? false;
}

export function resolveAlternates(o: AlternateInputs): Alternates {
  const own = (ip: string, port: number): boolean => {
    const bytes = parseIp(ip)!;
    const portMatches = port === o.listeningPort || (o.tlsPort !== undefined && port === o.tlsPort);
    if (!portMatches) return false;
    if (o.externalIps.some((e) => sameIp(e, ip))) return true;
    return o.listeningIps.some((l) => {
      if (sameIp(l, ip)) return true;
      // A wildcard listener of the same family answers on every address of the host.
      return isWildcard(l) && parseIp(l)!.length === bytes.length && o.hostAddresses.some((h) => sameIp(h, ip));
    });
  };
  const list = (values: string[], option: string, defaultPort: number): AlternateList => {
    const parsed = values.map((v) => parseAlternate(v, option, defaultPort));
    const servers = parsed.filter((s) => !own(s.ip, s.port));
    return { servers, namesSelf: servers.length !== parsed.length };
  };
  const any = list(o.any, "alternate-server", DEFAULT_PORT);
  const pick = (values: string[], option: string, defaultPort: number) => (values.length > 0 ? list(values, option, defaultPort) : any);
  return {
    udp: pick(o.udp, "udp-alternate-server", DEFAULT_PORT),
    tcp: pick(o.tcp, "tcp-alternate-server", DEFAULT_PORT),
    tls: pick(o.tls, "tls-alternate-server", DEFAULT_TLS_PORT),
  };
}

/** Whether any transport redirects at all (for the start-up line). */
export function describeAlternates(a: Alternates): string | undefined {
  const parts: string[] = [];
  for (const t of ["udp", "tcp", "tls"] as const) {
    const { servers, namesSelf } = a[t];
    if (servers.length === 0) continue;
    const names = servers.map((s) => formatHostPort(s.ip, s.port)).join(", ");
    parts.push(`${t.toUpperCase()} ${namesSelf ? "while draining only (the list names this server) " : ""}to ${names}`);
  }
  return parts.length > 0 ? `Allocates redirected (300 ALTERNATE-SERVER): ${parts.join("; ")}` : undefined;
}
