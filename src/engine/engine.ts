/**
 * One relay engine: the only place where I/O meets the protocol. It owns an epoll set, a UDP listener
 * per listening address (shared with the other engines through SO_REUSEPORT), the relay sockets of the
 * allocations it made, and one set of batch buffers. It runs synchronously inside its Worker, sleeping
 * in epoll_wait with a timeout from the protocol core's timers.
 *
 * Path of a datagram: epoll says a socket is readable -> receiveBatch (recvmmsg, or recvmsg per datagram)
 * -> per datagram: source Endpoint (cached, no strings for IPv4), TTL/TOS from cmsg -> TurnServer.handle*
 * -> the core calls back reply/relayToClient/relayToPeer -> SendBatch -> one sendmmsg per socket run.
 */
import {
  AF_INET, CmsgInfo, ECONNREFUSED, EPOLLERR, EPOLLIN, Epoll, EventFd, MAX_DATAGRAM, RECV_BATCH_MAX, RecvBatch, SendBatch,
  SyscallError, UdpCapabilities, closeSocket, flushSendBatch, libc, openUdpSocket,
  readErrorQueue, receiveBatch, receivedTtlTos, setDontFragment,
} from "../../ffi/index.ts";
import { endpointFromBytes, ipv4Endpoint, ipv6Endpoint, parseIp, type Endpoint, type Family } from "../net/endpoint.ts";
import type { RelayAllocator, RelayHandle, RelayOpenRequest, RelayOpenResult, TurnSink } from "../turn/api.ts";
import { TurnServer } from "../turn/server.ts";
import { PeerPolicy } from "../turn/peer-policy.ts";
import { credentialStoreFor } from "./credentials.ts";
import { GAUGE, sharedProtocolCounters } from "./counters.ts";
import { PortPool, type PortPoolShared } from "./port-pool.ts";
import { TCP_LISTENER_BASE, TcpTransport } from "./tcp-transport.ts";
import { SharedQuota, type QuotaShared } from "./quota.ts";
import type { RelayConfig } from "../config/resolve.ts";

export interface EngineInit {
  index: number;
  config: RelayConfig;
  pool: PortPoolShared;
  capabilityCells: Int32Array;
  counters: Float64Array;
  /** [0]: stop requested. */
  control: Int32Array;
  nonceSecret: Uint8Array;
  /** Allocation and bandwidth counts shared by every engine (coturn --user-quota, --total-quota, --bps-capacity). */
  quota: QuotaShared;
  /** Unix socket where the main thread's TLS front end hands this engine decrypted streams. */
  tlsSocketPath?: string;
}

export type EngineEvent =
  | { kind: "ready"; index: number; wakeFd: number; listeners: string[] }
  | { kind: "log"; level: "info" | "warn" | "error" | "debug"; message: string }
  | { kind: "failed"; index: number; message: string }
  | { kind: "stopped"; index: number };

interface Listener {
  kind: "listener";
  id: number;
  fd: number;
  family: Family;
  label: string;
}

interface RelaySocket {
  kind: "relay";
  fd: number;
  family: Family;
  port: number;
  handle: RelayHandle;
  dontFragment: boolean;
}

/** Datagrams per socket per wake before the others get a turn: fairness under load. */
const MAX_BATCHES_PER_WAKE = 8;
/** A TCP/TLS connection without an allocation is closed after this long: each holds an fd and a buffer. */
const TCP_UNALLOCATED_MS = 60_000;
/** Bound on the source-address cache: a spoofed flood must not grow memory. */
const ENDPOINT_CACHE_LIMIT = 65536;

export class Engine implements TurnSink, RelayAllocator {
  private readonly init: EngineInit;
  private readonly emit: (event: EngineEvent) => void;
  private readonly epoll = new Epoll(256);
  private readonly wake = new EventFd();
  private readonly caps: UdpCapabilities;
  private readonly stats: Float64Array;
  /** Room before each received datagram: peer data becomes ChannelData in place (4 bytes; 8 keeps alignment). */
  private readonly recv = new RecvBatch(RECV_BATCH_MAX, MAX_DATAGRAM, 8);
  private readonly send = new SendBatch(64);
  private readonly cmsg = new CmsgInfo();
  private readonly errInfo = new CmsgInfo();
  private readonly pool: PortPool;
  private readonly turn: TurnServer;
  private readonly tcp: TcpTransport;
  private nextTcpSweep = 0;
  private readonly listeners: Listener[] = [];
  private readonly sockets = new Map<number, Listener | RelaySocket>();
  private readonly relaysById = new Map<number, RelaySocket>();
  private readonly relayAddresses: { 4?: Uint8Array; 6?: Uint8Array } = {};
  private readonly advertised: { 4?: Uint8Array; 6?: Uint8Array } = {};
  private readonly v4Cache = new Map<number, Endpoint>();
  private readonly v6Cache = new Map<string, Endpoint>();
  private nextRelayId = 1;
  /** TTL/TOS of the datagram being handled; -1 when unknown. */
  private currentTtl = -1;
  private currentTos = -1;

  constructor(init: EngineInit, emit: (event: EngineEvent) => void) {
    this.init = init;
    this.emit = emit;
    const config = init.config;
    this.stats = init.counters;
    this.caps = new UdpCapabilities({ recvmmsg: config.udpRecvmmsg, sendmmsg: config.udpSendmmsg }, init.capabilityCells);
    this.caps.onDowngrade = (feature, errno) =>
      emit({ kind: "log", level: "warn", message: `${feature} refused by the kernel (${new SyscallError(feature, errno).code}); using one datagram per system call from now on` });
    this.send.borrowFrom(this.recv.payload, this.recv.payloadAddress);
    // Relayed TTL/TOS as socket options while they stay the same, cmsg otherwise (forgetSocket on open/close).
    this.send.stickyTtlTos(true);
    this.pool = new PortPool(init.pool);
    for (const ip of config.relayIps) {
      const bytes = parseIp(ip)!;
      this.relayAddresses[bytes.length === 4 ? 4 : 6] = bytes;
    }
    for (const family of [4, 6] as const) {
      const local = this.relayAddresses[family];
      if (!local) continue;
      const localText = config.relayIps.find((ip) => parseIp(ip)!.length === local.length);
      const external = config.externalIps.find((e) => parseIp(e.public)!.length === local.length && (e.private === undefined || e.private === localText));
      this.advertised[family] = external ? parseIp(external.public)! : local;
    }
    this.turn = new TurnServer({
      realm: config.realm,
      software: config.serverName,
      credentials: credentialStoreFor(config, (message) => emit({ kind: "log", level: "warn", message })),
      nonceSecret: init.nonceSecret,
      nonceLifetimeSeconds: config.staleNonce,
      defaultLifetimeSeconds: config.defaultAllocateLifetime,
      maxLifetimeSeconds: config.maxAllocateLifetime,
      permissionLifetimeSeconds: config.permissionLifetime,
      channelLifetimeSeconds: config.channelLifetime,
      peerPolicy: new PeerPolicy({
        allowLoopback: config.allowLoopbackPeers,
        allowed: config.allowedPeerIps,
        denied: config.deniedPeerIps,
      }),
      relays: this,
      sink: this,
      quota: new SharedQuota(init.quota, {
        userQuota: config.userQuota,
        totalQuota: config.totalQuota,
        bpsCapacity: config.bpsCapacity,
        restUsernames: config.auth.kind === "rest",
      }),
      maxBytesPerSecond: config.maxBps,
      counters: sharedProtocolCounters(init.counters),
    });
    this.epoll.add(this.wake.fd, EPOLLIN);
    this.tcp = new TcpTransport(this.epoll, {
      frame: (listener, client, frame, now) => {
        this.currentTtl = -1; // a stream has no per-message TTL/TOS to carry
        this.currentTos = -1;
        this.turn.handleClientDatagram(listener, client, frame, now);
      },
      closed: (listener) => this.turn.handleClientClosed(listener),
    });
  }

  /** Binds the listeners. Throws SyscallError (e.g. EADDRINUSE) with the address in the message. */
  openListeners(): string[] {
    const { listeningIps, listeningPort, sockBufSize } = this.init.config;
    for (const ip of listeningIps) {
      const address = parseIp(ip)!;
      const family: Family = address.length === 4 ? 4 : 6;
      const label = family === 4 ? `${ip}:${listeningPort}` : `[${ip}]:${listeningPort}`;
      const fd = openUdpSocket({ family, address, port: listeningPort, reusePort: true, bufferSize: sockBufSize, receiveTtlTos: true, receiveErrors: true });
      this.send.forgetSocket(fd);
      const listener: Listener = { kind: "listener", id: this.listeners.length, fd, family, label };
      this.listeners.push(listener);
      this.sockets.set(fd, listener);
      this.epoll.add(fd, EPOLLIN);
      if (this.init.config.tcp) this.tcp.listen(family, address, listeningPort);
    }
    if (this.init.tlsSocketPath) this.tcp.listenUnix(this.init.tlsSocketPath);
    const transports = this.init.config.tcp ? "UDP+TCP" : "UDP";
    return this.listeners.map((l) => `${l.label} (${transports})`);
  }

  get wakeFd(): number {
    return this.wake.fd;
  }

  /** The event loop. Returns after a stop request, with every fd it owned closed. */
  run(): void {
    const control = this.init.control;
    let now = Date.now();
    while (Atomics.load(control, 0) === 0) {
      const due = this.turn.pollTimeout();
      let timeout = 1000;
      if (due !== undefined) timeout = Math.max(0, Math.min(timeout, Math.ceil(due - now)));
      const ready = this.epoll.wait(timeout);
      now = Date.now();
      for (let i = 0; i < ready; i++) {
        const fd = this.epoll.eventToken(i);
        const socket = this.sockets.get(fd);
        if (socket === undefined) {
          if (fd === this.wake.fd) this.wake.drain();
          else if (this.tcp.owns(fd)) {
            try {
              this.tcp.handleEvent(fd, this.epoll.eventMask(i), now);
            } catch (error) {
              this.reportCrash(error);
            }
          }
          continue;
        }
        try {
          if (this.epoll.eventMask(i) & EPOLLERR) this.drainErrorQueue(socket);
          this.drain(socket, now);
        } catch (error) {
          // A bug must cost at most the datagrams in hand, never the engine and its other sessions.
          this.reportCrash(error);
        }
      }
      if (due !== undefined && now >= due) {
        try {
          this.turn.handleTimeout(now);
        } catch (error) {
          this.reportCrash(error);
        }
      }
      if (now >= this.nextTcpSweep) {
        this.nextTcpSweep = now + 1000;
        this.tcp.sweep(now, TCP_UNALLOCATED_MS, (listener) => this.turn.hasAllocationOn(listener));
      }
      this.flush();
    }
    this.shutdown();
  }

  private drain(socket: Listener | RelaySocket, now: number): void {
    const batch = this.recv;
    const arena = batch.payload;
    for (let round = 0; round < MAX_BATCHES_PER_WAKE; round++) {
      const n = receiveBatch(socket.fd, batch, this.caps, this.stats, libc);
      if (n < 0) {
        // A pending socket error (an ICMP error reported through IP_RECVERR): read it and go on.
        if (!this.drainErrorQueue(socket)) return;
        continue;
      }
      if (n === 0) return;
      if (socket.kind === "listener") {
        for (let i = 0; i < n; i++) {
          if (!this.prepareDatagram(i)) continue;
          try {
            this.turn.handleClientDatagram(socket.id, this.source(i), arena, now, batch.datagramOffset(i), batch.length(i));
          } catch (error) {
            // One bad datagram must not cost the others in the batch (other clients' traffic).
            this.reportCrash(error);
          }
        }
      } else {
        const relayId = socket.handle.id;
        for (let i = 0; i < n; i++) {
          if (!this.prepareDatagram(i)) continue;
          try {
            this.turn.handlePeerDatagram(relayId, this.source(i), arena, now, batch.datagramOffset(i), batch.length(i));
          } catch (error) {
            this.reportCrash(error);
          }
          // The core may have closed this relay while handling (it never does for peer data today).
          if (!this.relaysById.has(relayId)) break;
        }
      }
      // Sends may point into the receive slots (zero-copy): they must leave before the next receive.
      this.flush();
      if (n < batch.capacity) return; // a short batch: the queue was empty a moment ago
      if (socket.kind === "relay" && !this.relaysById.has(socket.handle.id)) return;
    }
  }

  /** Reads TTL/TOS of datagram i. False when it must be dropped (arrived with TTL 0). */
  private prepareDatagram(i: number): boolean {
    const info = receivedTtlTos(this.recv, i, this.cmsg);
    this.currentTtl = info.ttl;
    this.currentTos = info.tos;
    if (info.ttl === 0) {
      this.stats[GAUGE.ttlDropped]!++;
      return false;
    }
    return true;
  }

  private source(i: number): Endpoint {
    const batch = this.recv;
    const port = batch.sourcePort(i);
    if (batch.sourceFamily(i) === AF_INET) {
      const ip = batch.sourceIpv4(i);
      const key = ip * 65536 + port;
      let e = this.v4Cache.get(key);
      if (e === undefined) {
        if (this.v4Cache.size >= ENDPOINT_CACHE_LIMIT) this.v4Cache.clear();
        e = ipv4Endpoint(ip, port);
        this.v4Cache.set(key, e);
      }
      return e;
    }
    const fresh = ipv6Endpoint(batch.sourceIpv6(i), port);
    const cached = this.v6Cache.get(fresh.key as string);
    if (cached) return cached;
    if (this.v6Cache.size >= ENDPOINT_CACHE_LIMIT) this.v6Cache.clear();
    this.v6Cache.set(fresh.key as string, fresh);
    return fresh;
  }

  /** Drains the IP_RECVERR queue: ICMP errors from peers or clients are counted, never fatal. */
  private drainErrorQueue(socket: Listener | RelaySocket): boolean {
    let any = false;
    while (readErrorQueue(socket.fd, this.recv, this.errInfo, libc)) {
      any = true;
      this.stats[GAUGE.icmpErrors]!++;
      if (this.init.config.verbose && this.errInfo.errno === ECONNREFUSED) {
        this.emit({ kind: "log", level: "debug", message: `ICMP port unreachable from port ${this.recv.sourcePort(0)} (fd ${socket.fd})` });
      }
    }
    return any;
  }

  private flush(): void {
    if (this.send.count > 0) flushSendBatch(this.send, this.caps, this.stats, libc);
  }

  private queue(fd: number, to: Endpoint, data: Uint8Array, offset: number, length: number, relayed: boolean): void {
    let ttl = -1;
    let tos = -1;
    if (relayed) {
      // Relayed datagrams keep their TOS and lose one hop of TTL, as coturn does.
      if (this.currentTtl > 0) ttl = this.currentTtl > 1 ? this.currentTtl - 1 : 1;
      tos = this.currentTos;
    }
    this.send.pushRange(fd, to.address, to.port, data, offset, length, ttl, tos);
    if (this.send.full) this.flush();
  }

  // --- TurnSink -------------------------------------------------------------------------------------

  reply(listener: number, client: Endpoint, data: Uint8Array): void {
    if (listener >= TCP_LISTENER_BASE) {
      this.tcp.send(listener, data);
      return;
    }
    const l = this.listeners[listener];
    if (l) this.queue(l.fd, client, data, 0, data.length, false);
  }

  relayToClient(listener: number, client: Endpoint, bytes: Uint8Array, offset: number, length: number): void {
    if (listener >= TCP_LISTENER_BASE) {
      this.tcp.send(listener, bytes.subarray(offset, offset + length));
      return;
    }
    const l = this.listeners[listener];
    if (l) this.queue(l.fd, client, bytes, offset, length, true);
  }

  relayToPeer(relay: RelayHandle, peer: Endpoint, bytes: Uint8Array, offset: number, length: number, dontFragment: boolean): void {
    const socket = this.relaysById.get(relay.id);
    if (!socket || peer.family !== socket.family) return;
    if (socket.dontFragment !== dontFragment) {
      // DONT-FRAGMENT (RFC 8656 §14.8) is a socket option: queued datagrams go out under the old setting.
      this.flush();
      setDontFragment(socket.fd, socket.family, dontFragment, libc);
      socket.dontFragment = dontFragment;
    }
    this.queue(socket.fd, peer, bytes, offset, length, true);
  }

  // --- RelayAllocator -------------------------------------------------------------------------------

  open(request: RelayOpenRequest, now: number): RelayOpenResult {
    // A token redeemed here may come from another engine: its family travels inside it.
    const family = request.reservationToken !== undefined ? PortPool.tokenFamily(request.reservationToken) : request.family;
    const local = this.relayAddresses[family];
    const advertised = this.advertised[family];
    if (!local || !advertised) return { ok: false, code: 440 };
    let fd = -1;
    const bind = (port: number): boolean => {
      try {
        fd = openUdpSocket({ family, address: local, port, bufferSize: this.init.config.sockBufSize, receiveTtlTos: true, receiveErrors: true });
        return true;
      } catch {
        return false; // taken by another process, or refused: try the next port
      }
    };
    let port = 0;
    let reservationToken: bigint | undefined;
    if (request.reservationToken !== undefined) {
      port = this.pool.redeem(request.reservationToken, now);
      if (port === 0) return { ok: false, code: 508 };
      if (!bind(port)) {
        this.pool.release(port);
        return { ok: false, code: 508 };
      }
    } else {
      port = this.pool.claim(request.evenPort, request.reserveNext, now, bind);
      if (port === 0) return { ok: false, code: 508 };
      if (request.reserveNext) reservationToken = this.pool.newToken(port + 1, family);
    }
    this.send.forgetSocket(fd);
    const handle: RelayHandle = { id: this.nextRelayId++, address: endpointFromBytes(advertised, port) };
    const socket: RelaySocket = { kind: "relay", fd, family, port, handle, dontFragment: false };
    this.sockets.set(fd, socket);
    this.relaysById.set(handle.id, socket);
    this.epoll.add(fd, EPOLLIN);
    this.stats[GAUGE.relaySockets] = this.relaysById.size;
    return reservationToken === undefined ? { ok: true, relay: handle } : { ok: true, relay: handle, reservationToken };
  }

  close(relay: RelayHandle): void {
    const socket = this.relaysById.get(relay.id);
    if (!socket) return;
    this.flush(); // queued datagrams for this socket leave before it closes
    this.relaysById.delete(relay.id);
    this.sockets.delete(socket.fd);
    this.epoll.remove(socket.fd);
    closeSocket(socket.fd, libc);
    this.send.forgetSocket(socket.fd);
    this.pool.release(socket.port);
    this.stats[GAUGE.relaySockets] = this.relaysById.size;
  }

  releaseReservation(token: bigint): void {
    const port = this.pool.redeem(token, 0);
    if (port !== 0) this.pool.release(port);
  }

  // --- bookkeeping ----------------------------------------------------------------------------------

  private lastCrashReport = 0;
  private reportCrash(error: unknown): void {
    this.stats[GAUGE.crashes]!++;
    const now = Date.now();
    if (now - this.lastCrashReport < 1000) return; // one line a second at most: a hostile peer can trigger it
    this.lastCrashReport = now;
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    this.emit({ kind: "log", level: "error", message: `engine ${this.init.index}: handler failed, datagram dropped: ${text}` });
  }

  /** Releases what a half-built engine holds (startup failed before run()). */
  stop(): void {
    this.shutdown();
  }

  private shutdown(): void {
    this.flush();
    this.tcp.closeAll();
    this.turn.closeAll();
    for (const l of this.listeners) closeSocket(l.fd, libc);
    this.listeners.length = 0;
    this.sockets.clear();
    this.epoll.close();
    this.wake.close();
  }

  /** For diagnostics: the relay sockets this engine holds now. */
  get relaySocketCount(): number {
    return this.relaysById.size;
  }
}

