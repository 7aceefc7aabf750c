/**
 * What the main thread checks before any engine starts: that every listening port is free (and which
 * addresses this host really has), and how many TCP/TLS connections the descriptor limit allows.
 */
import { SyscallError, closeSocket, openTcpListener, openUdpSocket } from "../../ffi/index.ts";
import { EADDRNOTAVAIL, EAFNOSUPPORT } from "../../ffi/errno.ts";
import { raiseDescriptorLimit } from "../../ffi/rlimit.ts";
import type { ListenAddress, RelayConfig } from "../config/resolve.ts";
import { formatHostPort } from "../net/endpoint.ts";
import type { Logger } from "../logger.ts";

/** A start-up failure the operator can act on (port in use, address not on this host). */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StartupError";
  }
}

/**
 * The cap on TCP and TLS client connections. The soft descriptor limit is raised to the hard one first
 * (every engine's sockets are descriptors of this one process). Without --max-tcp-connections the cap
 * is a quarter of the limit (at least 256): each TCP or TLS connection takes one descriptor, and the
 * rest stays for relay sockets (one or two per allocation) and everything else.
 * Reaching the limit anyway (relay sockets, other descriptors) parks the listeners instead of spinning.
 */
export function connectionCap(config: RelayConfig, logger: Logger): number {
  const limit = raiseDescriptorLimit();
  const configured = config.streams.maxConnections;
  const cap = configured > 0 ? configured : Math.max(256, Math.floor(limit.soft / 4));
  if (config.tcp || config.tls) {
    logger.debug(
      `TCP/TLS clients: at most ${cap} connections${configured > 0 ? "" : " (a quarter of the descriptor limit)"}, ` +
        `${config.streams.maxConnectionsPerIp || "unlimited"} per source address; descriptor limit ${limit.soft}`,
    );
  }
  if (configured > 0 && configured * 2 > limit.soft) {
    logger.warn(`--max-tcp-connections ${configured} can exceed the descriptor limit (${limit.soft}; each connection and its allocation's relay socket take one each); raise LimitNOFILE or ulimit -n`);
  }
  return cap;
}

/** Why a bind failed, in the operator's words. */
function whyNot(error: unknown): string {
  return error instanceof SyscallError && error.code === "EADDRINUSE" ? "address already in use" : String((error as Error).message);
}

/**
 * Binds each listening address once without SO_REUSEPORT, so that a port held by another server
 * (which may itself use SO_REUSEPORT, as coturn does) is an error instead of silently shared. The
 * default IPv6 wildcard is dropped with a warning on hosts without IPv6.
 */
export function probeListeners(config: RelayConfig, logger: Logger): ListenAddress[] {
  const usable: ListenAddress[] = [];
  for (const listen of config.listenAddresses) {
    const { ip, family, address, label } = listen;
    try {
      closeSocket(openUdpSocket({ family, address, port: config.listeningPort }));
      if (config.tcp) closeSocket(openTcpListener({ family, address, port: config.listeningPort }));
      if (config.dtls && config.dtls.port !== config.listeningPort) closeSocket(openUdpSocket({ family, address, port: config.dtls.port }));

      usable.push(listen);
    } catch (error) {
      const errno = error instanceof SyscallError ? error.errno : 0;
      if (ip === "::" && (errno === EAFNOSUPPORT || errno === EADDRNOTAVAIL)) {
        logger.warn(`IPv6 is not available here; not listening on ${label}`);
        continue;
      }
      throw new StartupError(`cannot listen on ${label}: ${whyNot(error)}`);
    }
  }
  if (usable.length === 0) throw new StartupError("no listening address left");
  const rfc5780 = config.rfc5780;
  for (const { family, address, ip } of rfc5780 ? usable : []) {
    if (!rfc5780!.alternates.some((a) => a.address.join() === address.join())) continue;
    try {
      closeSocket(openUdpSocket({ family, address, port: rfc5780!.altPort }));
    } catch (error) {
      throw new StartupError(`cannot listen on ${formatHostPort(ip, rfc5780!.altPort)} (--alt-listening-port, RFC 5780): ${whyNot(error)}`);
    }
  }
  if (config.tcpProxyPort !== undefined) {
    for (const { family, address, ip } of usable) {
      try {
        closeSocket(openTcpListener({ family, address, port: config.tcpProxyPort }));
      } catch (error) {
        throw new StartupError(`cannot listen on ${formatHostPort(ip, config.tcpProxyPort)} (--tcp-proxy-port): ${whyNot(error)}`);
      }
    }
  }
  return usable;
}
