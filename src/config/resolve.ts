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
  /** TURN over TCP on the listening port (RFC 8656 §3.1); relays stay UDP. */
  tcp: boolean;
  /** coturn --tcp-proxy-port: TCP connections from a load balancer, each prefixed with a PROXY v1/v2 header. */
  tcpProxyPort?: number;
  /** TURN over TLS (RFC 8656 §3.1): set when --cert and --pkey are given and --no-tls is not. */
  tls?: { port: number; cert: string; key: string };
  /** Caps on TCP/TLS clients: connections, handshake time, buffered bytes (stream-limits.ts). */
  streams: StreamLimits;
  serverName: string;
  verbose: boolean;
  logStatsInterval: number;
  /** `--prometheus`: where the metrics endpoint listens; absent = off. */
  prometheus?: { address: string; port: number; path: string };
  log: LogConfig;
  /** `--pidfile` */
  pidfile?: string;
}

export interface LogConfig {
  /** A file to append to; absent with `--log-file stdout` or none. */
  file?: string;
  /** Log to standard output too (false only with a file and --no-stdout-log). */
  stdout: boolean;
  format: "text" | "json";
}

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
    if (OPTIONS[k].kind === "list") out[k] = [...((out[k] as string[]) ?? []), ...(v as string[])];
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

/** coturn's logging options: --log-file FILE|stdout|-, --no-stdout-log, --simple-log (no-op); plus --log-format. */
function resolveLog(raw: RawOptions): LogConfig {
  const format = get<string>(raw, "log-format");
  if (format !== "text" && format !== "json") throw new ConfigError(`--log-format: expected text or json, got '${format}'`);
  const file = get<string | undefined>(raw, "log-file");
  if (file === "syslog") throw new ConfigError("--log-file syslog is not supported: log to stdout and let journald or your collector take it");
  if (file !== undefined && file.trim() === "") throw new ConfigError("--log-file needs a file name");
  if (file === undefined || file === "stdout" || file === "-") return { stdout: true, format };
  return { file, stdout: get<boolean>(raw, "no-stdout-log") !== true, format };
}

function resolveTls(raw: RawOptions): Pick<RelayConfig, "tls"> {
  const cert = get<string | undefined>(raw, "cert");
  const key = get<string | undefined>(raw, "pkey");
  if (get<boolean>(raw, "no-tls") === true || (cert === undefined && key === undefined)) return {};
  if (cert === undefined || key === undefined) throw new ConfigError("TURN over TLS needs both --cert and --pkey");
  for (const [file, option] of [[cert, "cert"], [key, "pkey"]] as const) {
    if (!existsSync(file)) throw new ConfigError(`--${option}: no such file ${file}`);
  }
  return { tls: { port: checkPort(get<number>(raw, "tls-listening-port"), "tls-listening-port"), cert, key } };
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
    relayIps = specific.length > 0 ? specific : [defaultRelayIpv4()];
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
  const chosen = [useAuthSecret, noAuth, ltCredMech].filter(Boolean).length;
  if (chosen > 1) throw new ConfigError("choose one of --lt-cred-mech, --use-auth-secret and --no-auth");
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
    tcp: get<boolean>(raw, "no-tcp") !== true,
    ...resolveTls(raw),
    streams: resolveStreamLimits(raw, (message) => {
      throw new ConfigError(message);
    }),
    serverName: get<string>(raw, "server-name"),
    verbose: get<boolean>(raw, "verbose") === true,
    logStatsInterval: checkPositive(get<number>(raw, "log-stats-interval"), "log-stats-interval"),
    log: resolveLog(raw),
  };
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
  const pidfile = get<string | undefined>(raw, "pidfile");
  if (pidfile !== undefined) {
    if (pidfile.trim() === "") throw new ConfigError("--pidfile needs a file name");
    config.pidfile = pidfile;
  }
  return config;
}
