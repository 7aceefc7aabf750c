/**
 * What an engine listens on, from the configuration: a UDP listener per listening address (shared with
 * the other engines through SO_REUSEPORT), the TCP transport with its listeners on the same addresses,
 * the load balancers' --tcp-proxy-port, and the TLS ports (--tls-listening-port, --tls-proxy-port).
 */
import { type Epoll, type UdpCapabilities, UdpSocketState } from "../../ffi/index.ts";
import { endpointFromBytes, formatHostPort, type Endpoint, type Family } from "../net/endpoint.ts";
import { ConnectionLimits, createConnectionTable } from "./connection-limits.ts";
import type { EngineInit } from "./engine-init.ts";
import { kernelTlsAvailable, serverContext } from "./engine-tls.ts";
import { TcpTransport, type TcpHandlers } from "./tcp-transport.ts";

/** The engine's TCP transport, with the stream limits of the configuration and the shared connection caps. */
export function engineTcpTransport(init: EngineInit, epoll: Epoll, handlers: TcpHandlers, warn: (message: string) => void): TcpTransport {
  const { streams, tls } = init.config;
  const kernelTls = tls !== undefined && kernelTlsAvailable();
  return new TcpTransport(epoll, handlers, {
    ...(tls ? { tls: { context: () => serverContext(tls, kernelTls), onSocket: kernelTls } } : {}),
    tlsHandshakeTimeoutMs: streams.tlsHandshakeTimeoutMs,
    limits: new ConnectionLimits(init.connections ?? createConnectionTable(), { total: streams.maxConnections, perSource: streams.maxConnectionsPerIp }),
    maxBufferPerConnection: streams.maxBufferPerConnection,
    maxBufferPerEngine: streams.maxBufferPerEngine,
    firstMessageTimeoutMs: streams.firstMessageTimeoutMs,
    counters: init.counters,
    warn,
  });
}

/**
 * Binds every listener of the configuration; each UDP one goes to `addUdp` (the engine registers it).
 * Returns the labels for the start-up log. Throws SyscallError (e.g. EADDRINUSE) with the address in
 * the message.
 */
export function openListeners(
  init: EngineInit,
  caps: UdpCapabilities,
  tcp: TcpTransport,
  addUdp: (udp: UdpSocketState, family: Family, label: string, local: Endpoint, dtlsOnly: boolean) => void,
): string[] {
  const { listenAddresses, listeningPort, sockBufSize, tcpProxyPort, tlsProxyPort, tls, udpGso: gso, udpGro: gro } = init.config;
  const { udp: withUdp, tcp: withTcp } = init.config;
  const balancers: string[] = [];
  const labels: string[] = [];
  const { dtls } = init.config;
  const transports = [withUdp ? (dtls ? "UDP+DTLS" : "UDP") : "", withTcp ? "TCP" : ""].filter(Boolean).join("+");
  const openUdp = (family: Family, address: Uint8Array, port: number) => UdpSocketState.open(
    { family, address, port, reusePort: true, bufferSize: sockBufSize, receiveTtlTos: true, receiveErrors: true, stickyTtlTos: true, gso, gro },
    caps,
  );
  for (const { family, address, label, ip } of listenAddresses) {
    if (transports !== "") labels.push(`${label} (${transports})`);
    if (withUdp) {
      addUdp(openUdp(family, address, listeningPort), family, label, endpointFromBytes(address, listeningPort), false);
      const alternatePort = rfc5780Port(init, address);
      if (alternatePort !== undefined) {
        const altLabel = formatHostPort(ip, alternatePort);
        addUdp(openUdp(family, address, alternatePort), family, altLabel, endpointFromBytes(address, alternatePort), false);
        labels.push(`${altLabel} (UDP, RFC 5780 alternate port)`);
      }
    }
    if (dtls && (dtls.port !== listeningPort || !withUdp)) {
      // coturn serves DTLS on --tls-listening-port's UDP too; plain UDP there only when UDP is on.
      const dtlsLabel = formatHostPort(ip, dtls.port);
      addUdp(openUdp(family, address, dtls.port), family, dtlsLabel, endpointFromBytes(address, dtls.port), !withUdp);
      labels.push(`${dtlsLabel} (${withUdp ? "UDP+DTLS" : "DTLS"})`);
    }
    if (withTcp) tcp.listen(family, address, listeningPort);
    if (tcpProxyPort !== undefined) {
      tcp.listenBalancer(family, address, tcpProxyPort);
      balancers.push(`${formatHostPort(ip, tcpProxyPort)} (TCP, PROXY protocol)`);
    }
    // TURN over TLS, terminated here (tls-connection.ts); the main thread logs these ports' labels.
    if (tls) tcp.listenTls(family, address, tls.port);
    if (tls && tlsProxyPort !== undefined) tcp.listenTls(family, address, tlsProxyPort, true);
  }
  return [...labels, ...balancers];
}

/** --rfc5780: the alternate port when this listening address has an alternate IP (it then listens there too). */
function rfc5780Port(init: EngineInit, address: Uint8Array): number | undefined {
  const rfc5780 = init.config.rfc5780;
  if (rfc5780 === undefined) return undefined;
  const has = rfc5780.alternates.some((a) => a.address.length === address.length && a.address.every((b, i) => b === address[i]));
  return has ? rfc5780.altPort : undefined;
}
