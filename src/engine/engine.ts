/**
 * One relay engine's event loop: the only place where I/O meets the protocol. It owns an epoll set, a
 * UDP listener per listening address (shared with the other engines through SO_REUSEPORT), the relay
 * sockets of the allocations it made (RelaySockets), and one set of batch buffers. It runs synchronously
 * inside its Worker, sleeping in epoll_wait with a timeout from the protocol core's timers.
 *
 * Path of a datagram: epoll says a socket is readable -> receiveBatch (recvmmsg, or recvmsg per datagram)
 * -> per datagram: source Endpoint (cached, no strings for IPv4), TTL/TOS from cmsg -> TurnServer.handle*
 * -> the core calls back the Outbox (reply/relayToClient/relayToPeer) -> SendBatch -> one sendmmsg per
 * socket run.
 */
import {
  EPOLLERR, EPOLLIN, Epoll, EventFd, MAX_DATAGRAM, RECV_BATCH_MAX, RecvBatch, SendBatch, SyscallError, UdpCapabilities, boundPort, libc,
} from "../../ffi/index.ts";
import { listenerId, type ConnectionId } from "../turn/api.ts";
import { NatDiscoveryTable } from "../turn/nat-discovery.ts";
import type { CoreFactory, EngineEvent, EngineInit, TurnCore } from "./engine-init.ts";
import { SLOT } from "./counters.ts";
import { AdminInbox } from "./admin-inbox.ts";
import { Outbox, type UdpListener } from "./outbox.ts";
import { RelaySockets, type RelaySocket } from "./relay-sockets.ts";
import type { TcpTransport } from "./tcp-transport.ts";
import { engineTcpTransport, openListeners } from "./engine-listeners.ts";
import { CertificateReloads } from "./engine-tls.ts";
import { answerHeapCensus } from "./heap-census.ts";
import { TcpRelayPipes } from "./tcp-relay-pipes.ts";
import { ConnectionBindRouter } from "./connection-bind-route.ts";
import { DtlsCertificateReloads, dtlsFailureLog, engineDtlsTransport, type DtlsTransport } from "./engine-dtls.ts";
import { UdpDrain } from "./udp-drain.ts";

export type { CoreFactory, EngineEvent, EngineInit, TurnCore };

/** A TCP/TLS connection without an allocation is closed after this long: each holds an fd and a buffer. */
const TCP_UNALLOCATED_MS = 60_000;
/** A load balancer's connection on --tcp-proxy-port that has not sent its PROXY header by then is closed. */
const PROXY_HEADER_TIMEOUT_MS = 5_000;

export class Engine {
  private readonly init: EngineInit;
  private readonly emit: (event: EngineEvent) => void;
  private readonly epoll = new Epoll(256);
  private readonly wake = new EventFd();
  private readonly caps: UdpCapabilities;
  private readonly counters: Float64Array;
  /**
   * Room before each received datagram: peer data becomes ChannelData in place (4 bytes; 8 keeps
   * alignment). Public so that a bench can play the kernel and write datagrams where the iovecs point.
   */
  readonly recv = new RecvBatch(RECV_BATCH_MAX, MAX_DATAGRAM, 8);
  /** What a readable UDP socket gets: its datagrams to the core or DTLS (udp-drain.ts). */
  private readonly udp: UdpDrain;
  private readonly out: Outbox;
  readonly relays: RelaySockets;
  private readonly turn: TurnCore;
  private readonly tcp: TcpTransport;
  /** RFC 6062 TCP relays: peers' connections and the pipes to clients' data connections. */
  private readonly tcpRelays: TcpRelayPipes;
  /** Moves a ConnectionBind's connection to the engine that holds its peer connection. */
  private readonly bindRouter: ConnectionBindRouter | undefined;
  /** The operator's requests (sessions, kill), answered between batches. */
  private readonly admin: AdminInbox;
  private nextTcpSweep = 0;
  /** Date.now() when epoll_wait last returned. */
  private lastWake = Date.now();
  /** SIGUSR2 or changed files: a new TLS context for new connections (engine-tls.ts). */
  private readonly certificates: CertificateReloads | undefined;
  /** The UDP listeners, by the core's listener id. */
  readonly listeners: UdpListener[] = [];
  private readonly sockets = new Map<number, UdpListener | RelaySocket>();
  /** --rfc5780: the listeners by address, filled as they open (the core reads it). */
  private readonly natDiscovery: NatDiscoveryTable | undefined;
  /** TURN over DTLS on the UDP listeners (--dtls); null without. */
  readonly dtls: DtlsTransport | null;
  /** SIGUSR2 or changed files: a new DTLS context for new associations (engine-dtls.ts). */
  private readonly dtlsCertificates: DtlsCertificateReloads | undefined;

  constructor(init: EngineInit, emit: (event: EngineEvent) => void, core: CoreFactory) {
    this.init = init;
    this.emit = emit;
    const config = init.config;
    this.counters = init.counters;
    this.caps = new UdpCapabilities({ recvmmsg: config.udpRecvmmsg, sendmmsg: config.udpSendmmsg }, init.capabilityCells);
    this.caps.onDowngrade = (feature, errno) =>
      emit({ kind: "log", level: "warn", message: `${feature} refused by the kernel (${new SyscallError(feature, errno).code}); using one datagram per system call from now on` });
    const send = new SendBatch(64);
    send.borrowFrom(this.recv.payload, this.recv.payloadAddress);
    this.relays = new RelaySockets(
      { pool: init.pool, addresses: config.relayAddresses, bufferSize: config.sockBufSize, caps: this.caps, gso: config.udpGso, gro: config.udpGro },
      {
        opened: (socket) => {
          this.sockets.set(socket.udp.fd, socket);
          this.epoll.add(socket.udp.fd, EPOLLIN);
          this.counters[SLOT.relaySockets] = this.relays.count;
        },
        closing: (socket) => {
          this.out.flush(); // queued datagrams for this socket leave before it closes
          this.sockets.delete(socket.udp.fd);
          this.epoll.remove(socket.udp.fd);
        },
        closed: () => {
          this.counters[SLOT.relaySockets] = this.relays.count;
        },
        tcpOpened: (listener) => {
          this.tcpRelays.listening(listener);
          this.counters[SLOT.relaySockets] = this.relays.count;
        },
        tcpClosing: (listener) => {
          this.tcpRelays.unlisten(listener);
          this.counters[SLOT.relaySockets] = this.relays.count - 1;
        },
      },
    );
    this.epoll.add(this.wake.fd, EPOLLIN);
    this.tcp = engineTcpTransport(
      init,
      this.epoll,
      {
        frame: (listener, client, frame, now) => {
          if (this.bindRouter?.route(listener, frame, now)) return;
          this.out.ttl = -1; // a stream has no per-message TTL/TOS to carry
          this.out.tos = -1;
          this.turn.handleClientDatagram(listener, client, frame, now);
        },
        closed: (listener) => {
          this.turn.handleClientClosed(listener);
          this.tcpRelays.clientClosed(listener);
        },
      },
      (message) => emit({ kind: "log", level: "warn", message: `engine ${init.index}: ${message}` }),
    );
    this.bindRouter = init.handoff && new ConnectionBindRouter(init.handoff, init.index, this.tcp, this.wake.fd, this.counters);
    this.tcpRelays = new TcpRelayPipes(this.epoll, this.tcp, this.counters, init.index, (id) => this.relays.tcpListener(id), (message) => emit({ kind: "log", level: "warn", message: `engine ${init.index}: TCP relay: ${message}` }), config.streams.maxBufferPerEngine);
    this.admin = new AdminInbox(init.admin, init.index, emit);
    const tls = this.tcp.tls;
    if (tls && init.certificateGeneration) {
      this.certificates = new CertificateReloads(init.certificateGeneration, init.index, () => tls.reload(), (message) => emit({ kind: "log", level: "error", message }));
    }
    this.out = new Outbox(send, this.counters, this.listeners, this.relays, this.tcp);
    const rfc5780 = config.rfc5780;
    this.natDiscovery = rfc5780 && new NatDiscoveryTable(rfc5780.alternates, config.listeningPort, rfc5780.altPort);
    this.dtls = engineDtlsTransport(init, {
      datagram: (id, client, arena, offset, length, now) => this.turn.handleClientDatagram(id, client, arena, now, offset, length),
      closed: (id) => this.turn.handleClientClosed(id),
      send: (listener, client, bytes, offset, length) => this.out.sendFromListener(listener, client, bytes, offset, length),
      ...(config.verbose ? { failed: dtlsFailureLog(init.index, emit) } : {}),
    });
    this.out.dtls = this.dtls;
    if (this.dtls && init.certificateGeneration) this.dtlsCertificates = new DtlsCertificateReloads(init.certificateGeneration, this.dtls, init.index, emit);
    this.turn = core({
      ...(this.natDiscovery ? { natDiscovery: this.natDiscovery } : {}),
      sink: this.out,
      relays: this.relays,
      isTls: (id) => this.dtls?.owns(id) === true || this.tcp.isTls(id),
      isDtls: (id) => this.dtls?.owns(id) === true,
      allocationEnded: (session) => emit({ kind: "usage", index: init.index, session, endedAt: Date.now() }),
      tcpRelays: this.tcpRelays,
    });
    this.tcpRelays.events = {
      connected: (id, ok, now) => this.turn.handlePeerConnected?.(id, ok, now),
      accepted: (relay, peer, id, now) => this.turn.handlePeerAccepted?.(relay, peer, id, now) === true,
      closed: (id) => this.turn.handlePeerConnectionClosed?.(id),
      traffic: (id, toPeer, toClient) => this.turn.handlePeerTraffic?.(id, toPeer, toClient),
    };
    this.udp = new UdpDrain({
      recv: this.recv, counters: this.counters, out: this.out, relays: this.relays, turn: this.turn, dtls: this.dtls,
      reportCrash: (error) => this.reportCrash(error),
      ...(config.verbose ? { debug: (message: string) => emit({ kind: "log", level: "debug", message }) } : {}),
    });
  }

  /** Binds the listeners (engine-listeners.ts). Throws SyscallError (e.g. EADDRINUSE) with the address in the message. */
  openListeners(): string[] {
    return openListeners(this.init, this.caps, this.tcp, (udp, family, label, local, dtlsOnly) => {
      const listener: UdpListener = { kind: "listener", id: listenerId(this.listeners.length), udp, family, label, dtlsOnly };
      this.listeners.push(listener);
      this.natDiscovery?.register(listener.id, local);
      this.sockets.set(udp.fd, listener);
      this.epoll.add(udp.fd, EPOLLIN);
    });
  }

  /** The port listener `index` is bound to (the warm-up listens on port 0). */
  listenerPort(index: number): number {
    return boundPort(this.listeners[index]!.udp.fd);
  }

  get wakeFd(): number {
    return this.wake.fd;
  }

  /** The event loop. Returns after a stop request, with every fd it owned closed. */
  run(): void {
    const control = this.init.control;
    while (Atomics.load(control, 0) === 0) this.step(1000);
    this.shutdown();
  }

  /**
   * One turn of the loop: waits up to `maxWaitMs` (less when a timer is due) for readiness, handles what
   * is ready, the timers, the operator's requests and the TCP sweeps, and flushes. Public so that the
   * start-up warm-up (warmup.ts) can drive a throwaway engine through the same code.
   */
  step(maxWaitMs: number): void {
    this.certificates?.check();
    const due = this.turn.pollTimeout();
    const dtlsDue = this.dtls?.pollTimeout();
    let timeout = maxWaitMs;
    // The clock as of the last wake-up (one Date.now() per turn, as the loop always had).
    if (due !== undefined) timeout = Math.max(0, Math.min(timeout, Math.ceil(due - this.lastWake)));
    if (dtlsDue !== undefined) timeout = Math.max(0, Math.min(timeout, Math.ceil(dtlsDue - this.lastWake)));
    const ready = this.epoll.wait(timeout);
    const now = (this.lastWake = Date.now());
    for (let i = 0; i < ready; i++) {
      const fd = this.epoll.eventToken(i);
      const socket = this.sockets.get(fd);
      if (socket === undefined) {
        if (fd === this.wake.fd) this.wake.drain();
        else if (this.tcp.owns(fd) || this.tcpRelays.owns(fd)) {
          try {
            if (this.tcp.owns(fd)) this.tcp.handleEvent(fd, this.epoll.eventMask(i), now);
            else this.tcpRelays.handleEvent(fd, this.epoll.eventMask(i), now);
          } catch (error) {
            this.reportCrash(error);
          }
        }
        continue;
      }
      try {
        if (this.epoll.eventMask(i) & EPOLLERR) this.udp.drainErrorQueue(socket);
        this.udp.drain(socket, now);
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
    if (dtlsDue !== undefined && now >= dtlsDue) {
      try {
        this.dtls!.handleTimeout(now); // DTLS handshake retransmissions
      } catch (error) {
        this.reportCrash(error);
      }
    }
    this.bindRouter?.receive(now);
    if (this.admin.pending) this.admin.answer(this.turn, (id) => this.closeConnection(id), now, (error) => this.reportCrash(error));
    if (now >= this.nextTcpSweep) {
      this.nextTcpSweep = now + 1000;
      this.dtls?.sweep(now, (id) => this.turn.hasAllocationOn(id));
      this.dtlsCertificates?.check();
      this.tcp.sweep(now, TCP_UNALLOCATED_MS, (listener) => this.turn.hasAllocationOn(listener));
      this.tcp.sweepProxyHeaders(now, PROXY_HEADER_TIMEOUT_MS);
    }
    this.flush();
    if (this.init.heapCensus) answerHeapCensus(this.init.heapCensus);
  }

  private flush(): void {
    this.out.flush();
  }

  /** An operator's kill: the allocation's TCP/TLS connection or DTLS association closes with it. */
  private closeConnection(id: ConnectionId): void {
    if (this.dtls?.owns(id)) this.dtls.closeConnection(id);
    else this.tcp.closeConnection(id);
  }

  // --- bookkeeping ----------------------------------------------------------------------------------

  private lastCrashReport = 0;
  private reportCrash(error: unknown): void {
    this.counters[SLOT.crashes]!++;
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
    this.dtls?.closeAll(); // close_notify to each DTLS client, queued before the flush
    this.flush();
    this.tcpRelays.closeAll();
    this.tcp.closeAll();
    this.turn.closeAll();
    for (const l of this.listeners) l.udp.close(libc);
    this.listeners.length = 0;
    this.sockets.clear();
    this.epoll.close();
    this.wake.close();
  }

  /** For diagnostics: the relay sockets this engine holds now. */
  get relaySocketCount(): number {
    return this.relays.count;
  }
}

