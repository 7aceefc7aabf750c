/**
 * The TCP transport's listening sockets and their accept loop: the normal port and the TLS port (their
 * clients are counted in the connection caps here, at accept), the load balancers' --tcp-proxy-port and
 * --tls-proxy-port (whose streams start with a PROXY header naming the client), and the parking of a
 * listener while the process is out of descriptors (listener-park.ts).
 */
import {
  AF_INET, EPOLLIN, type Epoll, SOCKADDR_SLOT, acceptConnection, closeSocket, libc, openTcpListener,
  sockaddrFamily, sockaddrIn6Address, sockaddrInAddress, sockaddrPort,
} from "../../ffi/index.ts";
import { ipv4Endpoint, ipv6Endpoint, type Endpoint, type Family } from "../net/endpoint.ts";
import type { ConnectionLimits } from "./connection-limits.ts";
import { SLOT } from "./counters.ts";
import { ListenerPark, acceptWantsParking } from "./listener-park.ts";

const MAX_ACCEPTS_PER_WAKE = 64;

/**
 * Where an accepted connection came from: "direct" on the normal port; "balancer" from a load balancer
 * on --tcp-proxy-port (a PROXY v1 or v2 header); "tls" on
 * the TLS port (terminated in the engine, tls-connection.ts); "tlsBalancer" on --tls-proxy-port (a PROXY
 * header in clear, then TLS).
 */
export type Origin = "direct" | "balancer" | "tls" | "tlsBalancer";

export class TcpListeners {
  private readonly listeners = new Set<number>();
  /** --tcp-proxy-port listeners: a load balancer's connections, each starting with a PROXY v1 or v2 header. */
  private readonly balancerListeners = new Set<number>();
  /** TLS listeners (--tls-listening-port, and --tls-proxy-port among the balancer ones). */
  private readonly tlsListeners = new Set<number>();
  private readonly park: ListenerPark;
  private readonly name = new Uint8Array(new ArrayBuffer(SOCKADDR_SLOT));
  private readonly nameLength = new Uint32Array(1);

  constructor(
    private readonly epoll: Epoll,
    private readonly limits: ConnectionLimits,
    /** The engine's counter block: tcpRefused, tcpListenerParked. */
    private readonly counters: Float64Array,
    warn: (message: string) => void,
  ) {
    this.park = new ListenerPark(epoll, warn);
  }

  listen(family: Family, address: Uint8Array, port: number): number {
    const fd = openTcpListener({ family, address, port, reusePort: true });
    this.listeners.add(fd);
    this.epoll.add(fd, EPOLLIN);
    return fd;
  }

  /** See TcpTransport.listenBalancer. */
  listenBalancer(family: Family, address: Uint8Array, port: number): number {
    const fd = this.listen(family, address, port);
    this.balancerListeners.add(fd);
    return fd;
  }

  /** A TLS listener: `balancer` for --tls-proxy-port (a PROXY header before the TLS). */
  listenTls(family: Family, address: Uint8Array, port: number, balancer: boolean): number {
    const fd = balancer ? this.listenBalancer(family, address, port) : this.listen(family, address, port);
    this.tlsListeners.add(fd);
    return fd;
  }

  /** A listening socket or the park's timer. */
  owns(fd: number): boolean {
    return this.listeners.has(fd) || this.park.owns(fd);
  }

  /** Times a listener was parked because the process ran out of descriptors. */
  get parkings(): number {
    return this.park.parkings;
  }

  /**
   * Handles epoll's event on `fd` (owns(fd) is true): accepts what a listener has pending, each
   * connection admitted going to `accepted`; or, for the park's timer, brings parked listeners back.
   */
  handleEvent(fd: number, accepted: (fd: number, client: Endpoint, origin: Origin) => void): void {
    if (this.listeners.has(fd)) this.accept(fd, accepted);
    else this.park.resume();
  }

  private accept(listenerFd: number, accepted: (fd: number, client: Endpoint, origin: Origin) => void): void {
    for (let i = 0; i < MAX_ACCEPTS_PER_WAKE; i++) {
      const fd = acceptConnection(listenerFd, this.name, this.nameLength, libc);
      if (fd < 0 && acceptWantsParking(-fd)) {
        this.counters[SLOT.tcpListenerParked]!++;
        return this.park.park(listenerFd, -fd);
      }
      if (fd < 0) return; // EAGAIN, or a connection that died in the queue
      const origin = this.originOf(listenerFd);
      const port = sockaddrPort(this.name, 0);
      const client =
        sockaddrFamily(this.name, 0) === AF_INET
          ? ipv4Endpoint(sockaddrInAddress(this.name, 0), port)
          : ipv6Endpoint(sockaddrIn6Address(this.name, 0), port);
      // Over a cap: closed at once, before any TLS work (the client sees its connection reset). A
      // balancer's connections are counted by the client its header names (the balancer's own address
      // would hit the per-source cap).
      if ((origin === "direct" || origin === "tls") && !this.limits.admit(client.address)) {
        closeSocket(fd, libc);
        this.counters[SLOT.tcpRefused]!++;
        continue;
      }
      accepted(fd, client, origin);
    }
  }

  private originOf(listenerFd: number): Origin {
    const tls = this.tlsListeners.has(listenerFd);
    if (this.balancerListeners.has(listenerFd)) return tls ? "tlsBalancer" : "balancer";
    return tls ? "tls" : "direct";
  }

  /** Closes every listening socket (parked ones are out of epoll already) and the park. */
  closeAll(): void {
    for (const fd of this.listeners) {
      if (!this.park.isParked(fd)) this.epoll.remove(fd);
      this.park.forget(fd);
      closeSocket(fd, libc);
    }
    this.listeners.clear();
    this.balancerListeners.clear();
    this.tlsListeners.clear();
    this.park.close();
  }
}
