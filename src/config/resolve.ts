/**
 * Turns merged raw options into a checked RelayConfig (relay-config.ts), or one clear ConfigError line.
 * Each area has its resolver (resolve-addresses.ts, resolve-auth.ts, resolve-tls.ts, resolve-log.ts,
 * stream-limits.ts, alternates.ts, host-checks.ts); this puts them together, in the order the checks
 * have always run, and checks what spans areas (ports that must differ, something to listen on).
 */
import { cpus } from "node:os";
import type { RawOptions } from "./options.ts";
import { listenAddresses, relayAddresses, type ExternalIp, type ListenAddress, type RelayAddress } from "./addresses.ts";
import { resolveStreamLimits } from "./stream-limits.ts";
import { ConfigError } from "./config-error.ts";
import { resolveAlternates } from "./alternates.ts";
import { checkLifetime, checkRealm, hostInterfaceAddresses, resolvePeerPolicy } from "./host-checks.ts";
import { checkIp, checkNotNegative, checkPort, checkPositive, get, mergeOption, mergeRaw } from "./raw-options.ts";
import type { AuthConfig, LogConfig, RelayConfig, TlsConfig } from "./relay-config.ts";
import { resolveAddresses } from "./resolve-addresses.ts";
import { resolveAuth } from "./resolve-auth.ts";
import { resolveLog } from "./resolve-log.ts";
import { resolveTls } from "./resolve-tls.ts";
import { resolveDtls } from "./resolve-dtls.ts";
import { resolveFleet } from "./resolve-fleet.ts";
import { resolveRfc5780 } from "./resolve-rfc5780.ts";

/** Start-up warm-up per engine (src/engine/warmup.ts, engines in parallel): iteration 16 of docs/PerformanceIterationLog.md. */
const WARMUP_MS = 400;

export type { AuthConfig, ExternalIp, ListenAddress, LogConfig, RelayAddress, RelayConfig, TlsConfig };
export { ConfigError, mergeOption, mergeRaw };

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
  const { listeningIps, listeningPort, relayIps, externalIps, minPort, maxPort } = resolveAddresses(raw, host);

  const realm = checkRealm(get<string>(raw, "realm"));
  const { auth, generatedUser } = resolveAuth(raw);

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
    dynamicIpList: get<boolean>(raw, "no-dynamic-ip-list") !== true,
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
    udpGso: get<boolean>(raw, "udp-gso") !== false,
    udpGro: get<boolean>(raw, "udp-gro") !== false,
    warmupMs: get<boolean>(raw, "warmup") === false ? 0 : WARMUP_MS,
    udp: get<boolean>(raw, "no-udp") !== true,
    tcp: get<boolean>(raw, "no-tcp") !== true,
    ...resolveTls(raw),
    ...resolveDtls(raw),
    defaultFamily: resolveDefaultFamily(raw),
    noUdpRelay: get<boolean>(raw, "no-udp-relay") === true,
    noTcpRelay: get<boolean>(raw, "no-tcp-relay") === true,
    ...testTcpRelayTimeout(),
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
    fleet: { capacity: 0, addresses: [], port: listeningPort },
  };
  config.fleet = resolveFleet(raw, config);
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
  const rfc5780 = resolveRfc5780(raw, {
    listeningIps, listeningPort, minPort, maxPort, externalIps, udp: config.udp,
    otherPorts: [config.tls?.port, config.tcpProxyPort, config.tlsProxyPort],
  });
  if (rfc5780) config.rfc5780 = rfc5780;
  else if (raw["alt-listening-port"] !== undefined) config.notes.push("--alt-listening-port: no effect without --rfc5780");
  if (!config.udp && !config.tcp && config.tls === undefined && config.dtls === undefined && config.tcpProxyPort === undefined) {
    throw new ConfigError("--no-udp and --no-tcp without TLS, DTLS or --tcp-proxy-port leave nothing to listen on");
  }
  return config;
}

/** Tests shorten RFC 6062's 30 s timers through the environment; nothing an operator sets. */
function testTcpRelayTimeout(): { tcpRelayTimeoutMs?: number } {
  const ms = Number(process.env.BUNTURN_TEST_TCP_RELAY_TIMEOUT_MS);
  return Number.isFinite(ms) && ms > 0 ? { tcpRelayTimeoutMs: ms } : {};
}
