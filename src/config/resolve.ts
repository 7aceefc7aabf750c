/** Turns merged raw options into a checked RelayConfig, or one clear ConfigError line. */
import { existsSync } from "node:fs";
import { cpus, networkInterfaces } from "node:os";
import { randomBytes } from "node:crypto";
import { OPTIONS, type OptionName, type OptionSpec, type RawOptions } from "./options.ts";
import { parseIp } from "../net/endpoint.ts";
import { listenAddresses, relayAddresses, type ExternalIp, type ListenAddress, type RelayAddress } from "./addresses.ts";
import { resolveStreamLimits, type StreamLimits } from "./stream-limits.ts";
import type { PeerPolicyOptions } from "../turn/peer-policy.ts";
import { ConfigError } from "./config-error.ts";
import { resolveAlternates, type Alternates } from "./alternates.ts";
import { checkLifetime, checkListeningIps, checkRealm, checkRelayIps, hostInterfaceAddresses, resolvePeerPolicy } from "./host-checks.ts";

export type { ExternalIp, ListenAddress, RelayAddress };
export { ConfigError };

export type AuthConfig =
  | { kind: "none" }
  | {
      kind: "long-term";
      /** `--user` entries; a password of the form 0x + 32 hex digits is a ready MD5 key (coturn). */
      users: Array<[name: string, password: string]>;
      /** `--userdb`: SQLite file with coturn's turnusers_lt table, read by each engine. */
      userdb?: string;
    }
  | {
      kind: "rest";
      /** `--static-auth-secret`, repeatable: a username is valid under any of them. */
      secrets: string[];
      /** `--rest-api-separator`: between the expiry timestamp and the user in a REST username. */
      separator: string;
      /** `--userdb`: its turn_secret rows for the realm are secrets too, read live. */
      userdb?: string;
    };

/** Everything an engine needs; plain data so it crosses into Workers unchanged. */
export interface RelayConfig {
  listeningIps: string[];
  listeningPort: number;
  relayIps: string[];
  externalIps: ExternalIp[];
  /** listeningIps parsed, with labels: the Workers bind these bytes and parse nothing. */
  listenAddresses: ListenAddress[];
  /** Per family, the relay address to bind and the one to advertise (--external-ip already matched). */
  relayAddresses: RelayAddress[];
  minPort: number;
  maxPort: number;
  realm: string;
  auth: AuthConfig;
  /** Set when no credentials were configured and bunturn made a user up, so the operator can log in. */
  generatedUser?: { name: string; password: string };
  /** Which peers clients may reach: the operator's ranges plus this host's own addresses (resolved once, here). */
  peerPolicy: PeerPolicyOptions;
  maxAllocateLifetime: number;
  defaultAllocateLifetime: number;
  permissionLifetime: number;
  channelLifetime: number;
  staleNonce: number;
  /** coturn --user-quota, --total-quota (allocations; 0 = unlimited). */
  userQuota: number;
  totalQuota: number;
  /** coturn --max-bps (per session, each direction) and --bps-capacity (server), bytes per second; 0 = unlimited. */
  maxBps: number;
  bpsCapacity: number;
  /** coturn --unauthorized-ratelimit(-rps): responses per second per source IP to unauthenticated requests; 0 = off. */
  unauthorizedRatelimit: number;
  relayThreads: number;
  sockBufSize: number;
  udpRecvmmsg: boolean;
  udpRecvmmsgLog: boolean;
  udpSendmmsg: boolean;
  /** TURN over UDP on the listening port (coturn --no-udp turns it off). */
  udp: boolean;
  /** TURN over TCP on the listening port (RFC 8656 §3.1); relays stay UDP. */
  tcp: boolean;
  /** --tls-proxy-port (bunturn's own): TLS passed through a load balancer, each connection prefixed with a PROXY v1/v2 header. */
  tlsProxyPort?: number;
  /** coturn --tcp-proxy-port: TCP connections from a load balancer, each prefixed with a PROXY v1/v2 header. */
  tcpProxyPort?: number;
  /** TURN over TLS (RFC 8656 §3.1): set when --cert and --pkey are given and --no-tls is not. */
  tls?: TlsConfig;
  /** Relay family of an Allocate without REQUESTED-ADDRESS-FAMILY (coturn -A / -K); "keep" = the client's. */
  defaultFamily: "ipv4" | "ipv6" | "keep";
  /** coturn --no-udp-relay: every Allocate gets 442 (bunturn relays only UDP). */
  noUdpRelay: boolean;
  /** coturn --stun-only: TURN requests get 400. */
  stunOnly: boolean;
  /** coturn --no-stun: Binding requests are not answered. */
  noStun: boolean;
  /** Accepted coturn keys that change nothing, one line each (logged at -v). */
  notes: string[];
  /** Caps on TCP/TLS clients: connections, handshake time, buffered bytes (stream-limits.ts). */
  streams: StreamLimits;
  /** SOFTWARE attribute value; empty = none (--no-software-attribute). */
  serverName: string;
  verbose: boolean;
  logStatsInterval: number;
  /** `--prometheus`: where the metrics endpoint listens; absent = off. */
  prometheus?: { address: string; port: number; path: string };
  log: LogConfig;
  /** `--control-socket`: the operator's local control channel (src/metrics/control-socket.ts). */
  controlSocket?: string;
  /** `--usage-log`: where usage records go; absent = the log. */
  usageLog?: string;
  /** `--pidfile` */
  pidfile?: string;
  /** `--alternate-server` and its per-transport forms (./alternates.ts): where Allocates are redirected. */
  alternates: Alternates;
  /** `--drain-min-allocations`: a draining server exits once allocations fall to this many. */
  drainMinAllocations: number;
}

export interface TlsConfig {
  port: number;
  cert: string;
  key: string;
  /** coturn --pkey-pwd */
  passphrase?: string;
  /** coturn --cipher-list (TLS 1.2 suites, OpenSSL syntax) */
  ciphers?: string;
  /** coturn --CA-file: clients must present a certificate signed by one of these. */
  caFile?: string;
  /** coturn --no-tlsv1_2: TLS 1.3 only. */
  tls13Only: boolean;
}

export interface LogConfig {
  /** A file to append to; absent with `--log-file stdout` or none. */
  file?: string;
  /** Log to standard output too (false only with a file and --no-stdout-log). */
  stdout: boolean;
  format: "text" | "json";
  /** coturn --syslog: datagrams to this Unix socket with this facility (RFC 3164). */
  syslog?: { socket: string; facility: number };
}

/** coturn's --syslog-facility names (syslog.h numbers). */
const FACILITIES: Record<string, number> = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9, authpriv: 10, ftp: 11,
  local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
};

/** Adds one value to raw options: repeatable options accumulate, others keep the last value. */
export function mergeOption(raw: RawOptions, name: OptionName, value: string | number | boolean, where?: string): void {
  const spec: OptionSpec = OPTIONS[name];
  if (spec.kind === "list") {
    const list = (raw[name] as string[] | undefined) ?? [];
    const values = spec.verbatim === true ? [String(value)] : String(value).split(",").map((s) => s.trim()).filter(Boolean);
    for (const v of values) list.push(v);
    raw[name] = list;
    return;
  }
  if (spec.kind === "number") {
    const n = typeof value === "number" ? value : Number(value);
    if (!Number.isInteger(n)) throw new ConfigError(`${where ? where + ": " : ""}--${name} needs a whole number, got '${value}'`);
    raw[name] = n;
    return;
  }
  raw[name] = value;
}

/** Later sources win; lists from both are kept (a conf file's users plus the command line's). */
export function mergeRaw(base: RawOptions, over: RawOptions): RawOptions {
  const out: RawOptions = { ...base };
  for (const [k, v] of Object.entries(over) as Array<[OptionName, RawOptions[OptionName]]>) {
    if (v === undefined) continue;
    // A value given twice (the file's listening-ip repeated on the command line) is one value.
    if (OPTIONS[k].kind === "list") out[k] = [...new Set([...((out[k] as string[]) ?? []), ...(v as string[])])];
    else out[k] = v;
  }
  return out;
}

function get<T>(raw: RawOptions, name: OptionName): T {
  return (raw[name] ?? (OPTIONS[name] as { default?: unknown }).default) as T;
}

function checkIp(text: string, option: string): string {
  if (!parseIp(text)) throw new ConfigError(`--${option}: '${text}' is not an IP address`);
  return text;
}

function checkPort(n: number, option: string): number {
  if (!(n >= 1 && n <= 65535)) throw new ConfigError(`--${option}: ${n} is not a port (1-65535)`);
  return n;
}

function checkPositive(n: number, option: string): number {
  if (!(n > 0)) throw new ConfigError(`--${option}: must be above 0, got ${n}`);
  return n;
}

/** Limits where 0 means unlimited (coturn's quotas). */
function checkNotNegative(n: number, option: string): number {
  if (!(n >= 0)) throw new ConfigError(`--${option}: must be 0 (unlimited) or more, got ${n}`);
  return n;
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

/** coturn's logging options: --log-file FILE|stdout|-, --no-stdout-log, --simple-log (no-op); plus --log-format. */
function resolveLog(raw: RawOptions): LogConfig {
  const format = get<string>(raw, "log-format");
  if (format !== "text" && format !== "json") throw new ConfigError(`--log-format: expected text or json, got '${format}'`);
  const file = get<string | undefined>(raw, "log-file");
  if (file !== undefined && file.trim() === "") throw new ConfigError("--log-file needs a file name");
  let syslog: LogConfig["syslog"];
  if (get<boolean>(raw, "syslog") === true || file === "syslog") {
    const name = get<string>(raw, "syslog-facility").toLowerCase().replace(/^log_/, "");
    const facility = FACILITIES[name];
    if (facility === undefined) throw new ConfigError(`--syslog-facility: unknown facility '${name}' (user, daemon, local0 ... local7)`);
    const socket = get<string>(raw, "syslog-socket");
    if (socket.trim() === "") throw new ConfigError("--syslog-socket needs a path");
    syslog = { socket, facility };
  }
  const toFile = file !== undefined && file !== "stdout" && file !== "-" && file !== "syslog";
  // --no-stdout-log means something only when the lines go somewhere else.
  const stdout = !(get<boolean>(raw, "no-stdout-log") === true && (toFile || syslog !== undefined));
  const base: LogConfig = syslog ? { stdout, format, syslog } : { stdout, format };
  return toFile ? { ...base, file } : base;
}

function resolveTls(raw: RawOptions): Pick<RelayConfig, "tls"> {
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

/** coturn -A ipv4|ipv6|keep, and -K (keep-address-family), its older spelling of keep. */
function resolveDefaultFamily(raw: RawOptions): RelayConfig["defaultFamily"] {
  const given = get<string>(raw, "allocation-default-address-family").toLowerCase();
  if (given !== "ipv4" && given !== "ipv6" && given !== "keep") {
    throw new ConfigError(`--allocation-default-address-family: expected ipv4, ipv6 or keep, got '${given}'`);
  }
  if (get<boolean>(raw, "keep-address-family") === true) {
    if (raw["allocation-default-address-family"] !== undefined && given !== "keep") {
      throw new ConfigError(`--keep-address-family contradicts --allocation-default-address-family ${given}`);
    }
    return "keep";
  }
  return given;
}

export function resolveConfig(raw: RawOptions): RelayConfig {
  const host = hostInterfaceAddresses();
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
    relayIps = specific.length > 0 ? specific : defaultRelayIps(listeningIps);
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

  const realm = checkRealm(get<string>(raw, "realm"));
  const users = (get<string[] | undefined>(raw, "user") ?? []).map((u): [string, string] => {
    const at = u.indexOf(":");
    if (at <= 0 || at === u.length - 1) throw new ConfigError(`--user: expected NAME:PASSWORD, got '${u}'`);
    return [u.slice(0, at), u.slice(at + 1)];
  });
  const useAuthSecret = get<boolean>(raw, "use-auth-secret") === true;
  const noAuth = get<boolean>(raw, "no-auth") === true;
  const ltCredMech = get<boolean>(raw, "lt-cred-mech") === true;
  // coturn: --use-auth-secret is a kind of long-term credentials, so --lt-cred-mech may come with it.
  if (noAuth && (useAuthSecret || ltCredMech)) throw new ConfigError("--no-auth cannot be combined with --lt-cred-mech or --use-auth-secret");
  let auth: AuthConfig;
  let generatedUser: RelayConfig["generatedUser"];
  const userdb = get<string | undefined>(raw, "userdb");
  if (userdb !== undefined && userdb.trim() === "") throw new ConfigError("--userdb needs a file name");
  if (useAuthSecret) {
    const secrets = get<string[] | undefined>(raw, "static-auth-secret") ?? [];
    if (secrets.some((secret) => secret === "")) throw new ConfigError("--static-auth-secret must not be empty");
    if (secrets.length === 0 && userdb === undefined) throw new ConfigError("--use-auth-secret needs --static-auth-secret (or a --userdb whose turn_secret table holds the secrets)");
    const separator = get<string>(raw, "rest-api-separator");
    if (separator.length !== 1) throw new ConfigError(`--rest-api-separator: one character, got '${separator}'`);
    auth = userdb === undefined ? { kind: "rest", secrets, separator } : { kind: "rest", secrets, separator, userdb };
  } else if (noAuth) {
    auth = { kind: "none" };
  } else {
    // Safe by default: with no credentials configured, make up one user rather than run an open relay.
    if (users.length === 0 && userdb === undefined) {
      generatedUser = { name: "bunturn", password: randomBytes(12).toString("base64url") };
      users.push([generatedUser.name, generatedUser.password]);
    }
    auth = userdb === undefined ? { kind: "long-term", users } : { kind: "long-term", users, userdb };
  }

  const relayThreads = get<number | undefined>(raw, "relay-threads") ?? Math.max(1, cpus().length);
  if (!(relayThreads >= 1 && relayThreads <= 64)) throw new ConfigError(`--relay-threads: must be 1-64, got ${relayThreads}`);

  const config: RelayConfig = {
    listeningIps,
    listeningPort,
    relayIps,
    externalIps,
    listenAddresses: listenAddresses(listeningIps, listeningPort),
    relayAddresses: relayAddresses(relayIps, externalIps),
    minPort,
    maxPort,
    realm,
    auth,
    peerPolicy: resolvePeerPolicy({
      allowLoopback: get<boolean>(raw, "allow-loopback-peers") === true,
      allowed: get<string[] | undefined>(raw, "allowed-peer-ip") ?? [],
      denied: get<string[] | undefined>(raw, "denied-peer-ip") ?? [],
      host, listeningIps, relayIps, externalIps, minPort, maxPort,
    }),
    maxAllocateLifetime: checkLifetime(get<number>(raw, "max-allocate-lifetime"), "max-allocate-lifetime"),
    defaultAllocateLifetime: checkLifetime(get<number>(raw, "default-allocate-lifetime"), "default-allocate-lifetime"),
    permissionLifetime: checkLifetime(get<number>(raw, "permission-lifetime"), "permission-lifetime"),
    channelLifetime: checkLifetime(get<number>(raw, "channel-lifetime"), "channel-lifetime"),
    staleNonce: checkLifetime(get<number>(raw, "stale-nonce"), "stale-nonce"),
    userQuota: checkNotNegative(get<number>(raw, "user-quota"), "user-quota"),
    totalQuota: checkNotNegative(get<number>(raw, "total-quota"), "total-quota"),
    maxBps: checkNotNegative(get<number>(raw, "max-bps"), "max-bps"),
    bpsCapacity: checkNotNegative(get<number>(raw, "bps-capacity"), "bps-capacity"),
    unauthorizedRatelimit: get<boolean>(raw, "unauthorized-ratelimit") === false
      ? 0
      : checkPositive(get<number>(raw, "unauthorized-ratelimit-rps"), "unauthorized-ratelimit-rps"),
    relayThreads,
    sockBufSize: checkPositive(get<number>(raw, "sock-buf-size"), "sock-buf-size"),
    udpRecvmmsg: get<boolean>(raw, "udp-recvmmsg") === true,
    udpRecvmmsgLog: get<boolean>(raw, "udp-recvmmsg-log") === true,
    udpSendmmsg: get<boolean>(raw, "udp-sendmmsg") !== false,
    udp: get<boolean>(raw, "no-udp") !== true,
    tcp: get<boolean>(raw, "no-tcp") !== true,
    ...resolveTls(raw),
    defaultFamily: resolveDefaultFamily(raw),
    noUdpRelay: get<boolean>(raw, "no-udp-relay") === true,
    stunOnly: get<boolean>(raw, "stun-only") === true,
    noStun: get<boolean>(raw, "no-stun") === true,
    notes: [],
    streams: resolveStreamLimits(raw, (message) => {
      throw new ConfigError(message);
    }),
    serverName: get<boolean>(raw, "no-software-attribute") === true ? "" : get<string>(raw, "server-name"),
    verbose: get<boolean>(raw, "verbose") === true,
    logStatsInterval: checkPositive(get<number>(raw, "log-stats-interval"), "log-stats-interval"),
    log: resolveLog(raw),
    alternates: resolveAlternates({
      any: get<string[] | undefined>(raw, "alternate-server") ?? [],
      udp: get<string[] | undefined>(raw, "udp-alternate-server") ?? [],
      tcp: get<string[] | undefined>(raw, "tcp-alternate-server") ?? [],
      tls: get<string[] | undefined>(raw, "tls-alternate-server") ?? [],
      listeningIps, listeningPort,
      tlsPort: get<boolean>(raw, "no-tls") === true ? undefined : get<number>(raw, "tls-listening-port"),
      externalIps: externalIps.map((e) => e.public),
      hostAddresses: host,
    }),
    drainMinAllocations: checkNotNegative(get<number>(raw, "drain-min-allocations"), "drain-min-allocations"),
  };
  if (config.stunOnly && config.noStun) throw new ConfigError("--stun-only and --no-stun together leave nothing to serve");
  if (generatedUser) config.generatedUser = generatedUser;
  if (get<boolean>(raw, "prometheus") === true) {
    const address = get<string>(raw, "prometheus-address");
    if (address !== "" && address !== "localhost") checkIp(address, "prometheus-address");
    const path = get<string>(raw, "prometheus-path");
    if (!path.startsWith("/")) throw new ConfigError(`--prometheus-path must start with '/', got '${path}'`);
    config.prometheus = { address: address || "0.0.0.0", port: checkPort(get<number>(raw, "prometheus-port"), "prometheus-port"), path };
  }
  const tcpProxyPort = get<number | undefined>(raw, "tcp-proxy-port");
  if (tcpProxyPort !== undefined) {
    config.tcpProxyPort = checkPort(tcpProxyPort, "tcp-proxy-port");
    // The normal port must never read a header: a client there could claim any address.
    if (config.tcpProxyPort === listeningPort || config.tcpProxyPort === config.tls?.port) {
      throw new ConfigError(`--tcp-proxy-port ${tcpProxyPort}: must differ from the listening and TLS ports (headers are read on the proxy port only)`);
    }
  }
  for (const [option, key] of [["control-socket", "controlSocket"], ["usage-log", "usageLog"]] as const) {
    const path = get<string | undefined>(raw, option);
    if (path === undefined) continue;
    if (path.trim() === "") throw new ConfigError(`--${option} needs a file name`);
    config[key] = path;
  }
  const tlsProxyPort = get<number | undefined>(raw, "tls-proxy-port");
  if (tlsProxyPort !== undefined) {
    if (!config.tls) throw new ConfigError("--tls-proxy-port needs --cert and --pkey (and no --no-tls): it terminates the clients' TLS");
    config.tlsProxyPort = checkPort(tlsProxyPort, "tls-proxy-port");
    if ([listeningPort, config.tls.port, config.tcpProxyPort].includes(config.tlsProxyPort)) {
      throw new ConfigError(`--tls-proxy-port ${tlsProxyPort}: must differ from the listening, TLS and TCP proxy ports (headers are read on the proxy ports only)`);
    }
  }
  const pidfile = get<string | undefined>(raw, "pidfile");
  if (pidfile !== undefined) {
    if (pidfile.trim() === "") throw new ConfigError("--pidfile needs a file name");
    config.pidfile = pidfile;
  }
  if (!config.udp && !config.tcp && config.tls === undefined && config.tcpProxyPort === undefined) {
    throw new ConfigError("--no-udp and --no-tcp without TLS or --tcp-proxy-port leave nothing to listen on");
  }
  return config;
}
