/**
 * One relay engine's event loop: the only place where I/O meets the protocol. It owns an epoll set, a
 * UDP listener per listening address (shared with the other engines through SO_REUSEPORT), the relay
 * sockets of the allocations it made (RelaySockets), and one set of batch buffers. It runs synchronously
 * inside its Worker, sleeping in epoll_wait with a timeout from the protocol core's timers. This file is
 * the loop alone; engine-parts.ts builds those parts, wires them to each other and closes them.
 *
 * Path of a datagram: epoll says a socket is readable -> receiveBatch (recvmmsg, or recvmsg per datagram)
 * -> per datagram: source Endpoint (cached, no strings for IPv4), TTL/TOS from cmsg -> TurnServer.handle*
 * -> the core calls back the Outbox (reply/relayToClient/relayToPeer) -> SendBatch -> one sendmmsg per
 * socket run.
 */
import { EPOLLERR, type Epoll, type EventFd, type RecvBatch, boundPort } from "../../ffi/index.ts";
import type { ConnectionId } from "../turn/api.ts";
import type { CoreFactory, EngineEvent, EngineInit, TurnCore } from "./engine-init.ts";
import { SLOT } from "./counters.ts";
import type { AdminInbox } from "./admin-inbox.ts";
import type { Outbox, UdpListener } from "./outbox.ts";
import type { RelaySocket, RelaySockets } from "./relay-sockets.ts";
import type { TcpTransport } from "./tcp-transport.ts";
import type { CertificateReloads } from "./engine-tls.ts";
import { answerHeapCensus } from "./heap-census.ts";
import type { TcpRelayPipes } from "./tcp-relay-pipes.ts";
import type { ConnectionBindRouter } from "./connection-bind-route.ts";
import type { DtlsCertificateReloads, DtlsTransport } from "./engine-dtls.ts";
import type { UdpDrain } from "./udp-drain.ts";
import { type EngineParts, buildEngineParts, closeEngineParts, openEngineListeners } from "./engine-parts.ts";

export type { CoreFactory, EngineEvent, EngineInit, TurnCore };

/** A TCP/TLS connection without an allocation is closed after this long: each holds an fd and a buffer. */
const TCP_UNALLOCATED_MS = 60_000;
/** A load balancer's connection on --tcp-proxy-port that has not sent its PROXY header by then is closed. */
const PROXY_HEADER_TIMEOUT_MS = 5_000;

export class Engine {
  private readonly init: EngineInit;
  private readonly emit: (event: EngineEvent) => void;
  /** What the loop drives, built and wired in engine-parts.ts; the fields below are its parts, read directly. */
  private readonly parts: EngineParts;
  private readonly epoll: Epoll;
  private readonly wake: EventFd;
  private readonly counters: Float64Array;
  /**
   * Room before each received datagram: peer data becomes ChannelData in place (4 bytes; 8 keeps
   * alignment). Public so that a bench can play the kernel and write datagrams where the iovecs point.
   */
  readonly recv: RecvBatch;
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
  readonly listeners: UdpListener[];
  private readonly sockets: Map<number, UdpListener | RelaySocket>;
  /** TURN over DTLS on the UDP listeners (--dtls); null without. */
  readonly dtls: DtlsTransport | null;
  /** SIGUSR2 or changed files: a new DTLS context for new associations (engine-dtls.ts). */
  private readonly dtlsCertificates: DtlsCertificateReloads | undefined;

  constructor(init: EngineInit, emit: (event: EngineEvent) => void, core: CoreFactory) {
    this.init = init;
    this.emit = emit;
    const parts = (this.parts = buildEngineParts(init, emit, core, (error) => this.reportCrash(error)));
    this.epoll = parts.epoll;
    this.wake = parts.wake;
    this.counters = parts.counters;
    this.recv = parts.recv;
    this.udp = parts.udp;
    this.out = parts.out;
    this.relays = parts.relays;
    this.turn = parts.turn;
    this.tcp = parts.tcp;
    this.tcpRelays = parts.tcpRelays;
    this.bindRouter = parts.bindRouter;
    this.admin = parts.admin;
    this.certificates = parts.certificates;
    this.listeners = parts.listeners;
    this.sockets = parts.sockets;
    this.dtls = parts.dtls;
    this.dtlsCertificates = parts.dtlsCertificates;
  }

  /** Binds the listeners (engine-listeners.ts). Throws SyscallError (e.g. EADDRINUSE) with the address in the message. */
  openListeners(): string[] {
    return openEngineListeners(this.init, this.parts);
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
    const due = this.turn.pollTimeout();
    const dtlsDue = this.dtls?.pollTimeout();
    let timeout = maxWaitMs;
    // The clock as of the last wake-up (one Date.now() per turn, as the loop always had).
    if (due !== undefined) timeout = Math.max(0, Math.min(timeout, Math.ceil(due - this.lastWake)));
    if (dtlsDue !== undefined) timeout = Math.max(0, Math.min(timeout, Math.ceil(dtlsDue - this.lastWake)));
    const ready = this.epoll.wait(timeout);
    const now = (this.lastWake = Date.now());
    let woken = false;
    for (let i = 0; i < ready; i++) {
      const fd = this.epoll.eventToken(i);
      const socket = this.sockets.get(fd);
      if (socket === undefined) {
        if (fd === this.wake.fd) {
          this.wake.drain();
          woken = true;
          continue;
        }
        try {
          // One lookup for a client connection's event (the common case), the RFC 6062 pipes after.
          if (!this.tcp.handleEvent(fd, this.epoll.eventMask(i), now) && this.tcpRelays.owns(fd)) {
            this.tcpRelays.handleEvent(fd, this.epoll.eventMask(i), now);
          }
        } catch (error) {
          this.reportCrash(error);
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
    // What other threads ask of the engine (a connection handed over, the operator's request, a certificate
    // reload, a heap census) is written to shared memory and then signalled on the wake eventfd: turns
    // without that signal skip the shared-memory loads. The once-a-second pass also looks, for a request
    // made before the engine's eventfd was known to the asker.
    const housekeeping = now >= this.nextTcpSweep;
    const asked = woken || housekeeping;
    if (asked) {
      this.certificates?.check();
      this.bindRouter?.receive(now);
      if (this.admin.pending) this.admin.answer(this.turn, (id) => this.closeConnection(id), now, (error) => this.reportCrash(error));
    }
    if (housekeeping) {
      this.nextTcpSweep = now + 1000;
      this.dtls?.sweep(now, (id) => this.turn.hasAllocationOn(id));
      this.dtlsCertificates?.check();
      this.tcp.sweep(now, TCP_UNALLOCATED_MS, (listener) => this.turn.hasAllocationOn(listener));
      this.tcp.sweepProxyHeaders(now, PROXY_HEADER_TIMEOUT_MS);
    }
    this.flush();
    if (asked && this.init.heapCensus) answerHeapCensus(this.init.heapCensus);
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
    closeEngineParts(this.parts);
  }

  /** For diagnostics: the relay sockets this engine holds now. */
  get relaySocketCount(): number {
    return this.relays.count;
  }
}

