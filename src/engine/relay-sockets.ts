/**
 * The relay sockets of one engine (RFC 8656 §7.2 steps 3-4: the relayed transport address): opening one
 * on a port from the shared pool (even port, port + 1 reserved, or a reservation token redeemed),
 * mapping its local address to the advertised one, and closing it. The engine's event loop learns of
 * each socket through `RelaySocketHooks` (epoll registration, flushing before a close).
 */
import { UdpSocketState, canBindUdp, closeSocket, libc, openTcpRelayListener, type UdpCapabilities } from "../../ffi/index.ts";
import { endpointFromBytes, type Family } from "../net/endpoint.ts";
import { relayId, type RelayAllocator, type RelayHandle, type RelayId, type RelayOpenRequest, type RelayOpenResult } from "../turn/api.ts";
import type { RelayAddress } from "../config/resolve.ts";
import { PortPool, type PortPoolShared } from "./port-pool.ts";
import type { TcpRelayListener } from "./tcp-relay-pipes.ts";

export interface RelaySocket {
  readonly kind: "relay";
  /** The socket, with what the kernel accepted for it (batching, sticky TTL/TOS, DONT-FRAGMENT). */
  readonly udp: UdpSocketState;
  readonly family: Family;
  readonly port: number;
  readonly handle: RelayHandle;
}

export interface RelaySocketHooks {
  /** A socket was bound: watch it. */
  opened(socket: RelaySocket): void;
  /** A socket is about to be closed: queued datagrams for it leave now, and it is no longer watched. */
  closing(socket: RelaySocket): void;
  /** The socket is closed and its port back in the pool. */
  closed(socket: RelaySocket): void;
  /** RFC 6062: a TCP relay's listening socket was opened, or is about to be closed. */
  tcpOpened?(listener: TcpRelayListener): void;
  tcpClosing?(listener: TcpRelayListener): void;
}

export interface RelaySocketOptions {
  pool: PortPoolShared;
  /** From RelayConfig.relayAddresses: per family, where to bind and what to advertise. */
  addresses: readonly RelayAddress[];
  /** SO_RCVBUF/SO_SNDBUF wish (coturn --sock-buf-size). */
  bufferSize: number;
  /** The process-wide batching capabilities every socket shares. */
  caps: UdpCapabilities;
  /** --udp-gso / --udp-gro: asked for on every relay socket (each keeps what its kernel takes). */
  gso?: boolean;
  gro?: boolean;
}

export class RelaySockets implements RelayAllocator {
  private readonly pool: PortPool;
  private readonly addresses: { 4?: RelayAddress; 6?: RelayAddress } = {};
  private readonly bufferSize: number;
  private readonly caps: UdpCapabilities;
  private readonly gso: boolean;
  private readonly gro: boolean;
  private readonly hooks: RelaySocketHooks;
  private readonly byId = new Map<RelayId, RelaySocket>();
  /** RFC 6062: TCP relays' listening sockets. */
  private readonly tcpById = new Map<RelayId, TcpRelayListener>();
  private nextId = 1;

  constructor(options: RelaySocketOptions, hooks: RelaySocketHooks) {
    this.pool = new PortPool(options.pool);
    for (const a of options.addresses) this.addresses[a.family] = a;
    this.bufferSize = options.bufferSize;
    this.caps = options.caps;
    this.gso = options.gso === true;
    this.gro = options.gro === true;
    this.hooks = hooks;
  }

  /** The live relay socket with this id (the core's RelayHandle.id), if any. */
  get(id: RelayId): RelaySocket | undefined {
    return this.byId.get(id);
  }

  get count(): number {
    return this.byId.size + this.tcpById.size;
  }

  /** The listening socket of TCP relay `id` (RFC 6062), if any. */
  tcpListener(id: RelayId): TcpRelayListener | undefined {
    return this.tcpById.get(id);
  }

  /** Every live relay socket (for diagnostics and benches). */
  all(): IterableIterator<RelaySocket> {
    return this.byId.values();
  }

  open(request: RelayOpenRequest, now: number): RelayOpenResult {
    // A token redeemed here may come from another engine: its family travels inside it.
    const family = request.kind === "token" ? PortPool.tokenFamily(request.reservationToken) : request.family;
    const address = this.addresses[family];
    if (!address) return { ok: false, code: 440 };
    let udp: UdpSocketState | undefined;
    let tcpFd = -1;
    const tcp = request.kind === "fresh" && request.transport === "tcp";
    const bind = (port: number): boolean => {
      try {
        if (tcp) {
          tcpFd = openTcpRelayListener(address.local, port, 128);
          return true;
        }
        udp = UdpSocketState.open(
          { family, address: address.local, port, bufferSize: this.bufferSize, receiveTtlTos: true, receiveErrors: true, stickyTtlTos: true, gso: this.gso, gro: this.gro },
          this.caps,
        );
        return true;
      } catch {
        return false; // taken by another process, or refused: try the next port
      }
    };
    let port = 0;
    let reservationToken: bigint | undefined;
    if (request.kind === "token") {
      port = this.pool.redeem(request.reservationToken, now);
      if (port === 0) return { ok: false, code: 508 };
      if (!bind(port)) {
        this.pool.release(port);
        return { ok: false, code: 508 };
      }
    } else {
      // With EVEN-PORT's R bit, port + 1 must be bindable too, or the token's redemption would get 508
      // later: another process (an outgoing connection from the ephemeral range, which overlaps the
      // default relay range) may hold it. A probe, not a hold: the pool keeps it from our own engines.
      const acceptable = !request.reserveNext
        ? bind
        : (candidate: number): boolean => {
            if (!canBindUdp(address.local, candidate + 1)) return false;
            return bind(candidate);
          };
      port = this.pool.claim(request.evenPort, request.reserveNext, now, acceptable);
      if (port === 0) return { ok: false, code: 508 };
      if (request.reserveNext) reservationToken = this.pool.newToken(port + 1, family);
    }
    const handle: RelayHandle = { id: relayId(this.nextId++), address: endpointFromBytes(address.advertised, port) };
    if (tcp) {
      const listener: TcpRelayListener = { fd: tcpFd, handle, local: address.local, port };
      this.tcpById.set(handle.id, listener);
      this.hooks.tcpOpened?.(listener);
      return { ok: true, relay: handle };
    }
    const socket: RelaySocket = { kind: "relay", udp: udp!, family, port, handle };
    this.byId.set(handle.id, socket);
    this.hooks.opened(socket);
    return reservationToken === undefined ? { ok: true, relay: handle } : { ok: true, relay: handle, reservationToken };
  }

  close(relay: RelayHandle): void {
    const listener = this.tcpById.get(relay.id);
    if (listener !== undefined) {
      this.hooks.tcpClosing?.(listener);
      this.tcpById.delete(relay.id);
      closeSocket(listener.fd, libc);
      this.pool.release(listener.port);
      return;
    }
    const socket = this.byId.get(relay.id);
    if (!socket) return;
    this.hooks.closing(socket);
    this.byId.delete(relay.id);
    socket.udp.close();
    this.pool.release(socket.port);
    this.hooks.closed(socket);
  }

  releaseReservation(token: bigint): void {
    const port = this.pool.redeem(token, 0);
    if (port !== 0) this.pool.release(port);
  }
}
