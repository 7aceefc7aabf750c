/**
 * One engine's parts, built and wired to each other: the epoll set and its eventfd, the batch buffers,
 * the relay sockets, the TCP/TLS transport, the RFC 6062 pipes, DTLS, the Outbox and the protocol core,
 * each told what to call in the others. Also opens the UDP listeners into that epoll set and closes
 * everything again. Separate from engine.ts so that the loop reads alone: it only drives what is built here.
 */
import {
  EPOLLIN, Epoll, EventFd, MAX_DATAGRAM, RECV_BATCH_MAX, RecvBatch, SendBatch, SyscallError, UdpCapabilities, libc,
} from "../../ffi/index.ts";
import { listenerId } from "../turn/api.ts";
import { NatDiscoveryTable } from "../turn/nat-discovery.ts";
import type { CoreFactory, EngineEvent, EngineInit, TurnCore } from "./engine-init.ts";
import { SLOT } from "./counters.ts";
import { AdminInbox } from "./admin-inbox.ts";
import { Outbox, type UdpListener } from "./outbox.ts";
import { RelaySockets, type RelaySocket } from "./relay-sockets.ts";
import type { TcpTransport } from "./tcp-transport.ts";
import { engineTcpTransport, openListeners } from "./engine-listeners.ts";
import { CertificateReloads } from "./engine-tls.ts";
import { TcpRelayPipes } from "./tcp-relay-pipes.ts";
import { ConnectionBindRouter } from "./connection-bind-route.ts";
import { DtlsCertificateReloads, dtlsFailureLog, engineDtlsTransport, type DtlsTransport } from "./engine-dtls.ts";
import { UdpDrain } from "./udp-drain.ts";

export interface EngineParts {
  readonly epoll: Epoll;
  readonly wake: EventFd;
  readonly caps: UdpCapabilities;
  readonly counters: Float64Array;
  /** Room before each received datagram: peer data becomes ChannelData in place (4 bytes; 8 keeps alignment). */
  readonly recv: RecvBatch;
  /** What a readable UDP socket gets: its datagrams to the core or DTLS (udp-drain.ts). */
  readonly udp: UdpDrain;
  readonly out: Outbox;
  readonly relays: RelaySockets;
  readonly turn: TurnCore;
  readonly tcp: TcpTransport;
  /** RFC 6062 TCP relays: peers' connections and the pipes to clients' data connections. */
  readonly tcpRelays: TcpRelayPipes;
  /** Moves a ConnectionBind's connection to the engine that holds its peer connection. */
  readonly bindRouter: ConnectionBindRouter | undefined;
  /** The operator's requests (sessions, kill), answered between batches. */
  readonly admin: AdminInbox;
  /** SIGUSR2 or changed files: a new TLS context for new connections (engine-tls.ts). */
  readonly certificates: CertificateReloads | undefined;
  /** The UDP listeners, by the core's listener id. */
  readonly listeners: UdpListener[];
  /** Every UDP socket in the epoll set (listeners and relay sockets), by fd. */
  readonly sockets: Map<number, UdpListener | RelaySocket>;
  /** --rfc5780: the listeners by address, filled as they open (the core reads it). */
  readonly natDiscovery: NatDiscoveryTable | undefined;
  /** TURN over DTLS on the UDP listeners (--dtls); null without. */
  readonly dtls: DtlsTransport | null;
  /** SIGUSR2 or changed files: a new DTLS context for new associations (engine-dtls.ts). */
  readonly dtlsCertificates: DtlsCertificateReloads | undefined;
}

/** Builds the parts; `reportCrash` is the engine's: a handler's bug costs the datagrams in hand, no more. */
export function buildEngineParts(init: EngineInit, emit: (event: EngineEvent) => void, core: CoreFactory, reportCrash: (error: unknown) => void): EngineParts {
  const config = init.config;
  const counters = init.counters;
  const epoll = new Epoll(256);
  const wake = new EventFd();
  const recv = new RecvBatch(RECV_BATCH_MAX, MAX_DATAGRAM, 8);
  const listeners: UdpListener[] = [];
  const sockets = new Map<number, UdpListener | RelaySocket>();
  const caps = new UdpCapabilities({ recvmmsg: config.udpRecvmmsg, sendmmsg: config.udpSendmmsg }, init.capabilityCells);
  caps.onDowngrade = (feature, errno) =>
    emit({ kind: "log", level: "warn", message: `${feature} refused by the kernel (${new SyscallError(feature, errno).code}); using one datagram per system call from now on` });
  const send = new SendBatch(64);
  send.borrowFrom(recv.payload, recv.payloadAddress);
  // The callbacks below name parts built further down: none is called before this function returns.
  const relays: RelaySockets = new RelaySockets(
    { pool: init.pool, addresses: config.relayAddresses, bufferSize: config.sockBufSize, caps, gso: config.udpGso, gro: config.udpGro },
    {
      opened: (socket) => {
        sockets.set(socket.udp.fd, socket);
        epoll.add(socket.udp.fd, EPOLLIN);
        counters[SLOT.relaySockets] = relays.count;
      },
      closing: (socket) => {
        out.flush(); // queued datagrams for this socket leave before it closes
        sockets.delete(socket.udp.fd);
        epoll.remove(socket.udp.fd);
      },
      closed: () => {
        counters[SLOT.relaySockets] = relays.count;
      },
      tcpOpened: (listener) => {
        tcpRelays.listening(listener);
        counters[SLOT.relaySockets] = relays.count;
      },
      tcpClosing: (listener) => {
        tcpRelays.unlisten(listener);
        counters[SLOT.relaySockets] = relays.count - 1;
      },
    },
  );
  epoll.add(wake.fd, EPOLLIN);
  const tcp = engineTcpTransport(
    init,
    epoll,
    {
      frame: (listener, client, bytes, offset, length, now) => {
        if (bindRouter?.route(listener, bytes, offset, length, now)) return;
        out.ttl = -1; // a stream has no per-message TTL/TOS to carry
        out.tos = -1;
        turn.handleClientDatagram(listener, client, bytes, now, offset, length);
      },
      closed: (listener) => {
        turn.handleClientClosed(listener);
        tcpRelays.clientClosed(listener);
      },
    },
    (message) => emit({ kind: "log", level: "warn", message: `engine ${init.index}: ${message}` }),
  );
  const bindRouter = init.handoff && new ConnectionBindRouter(init.handoff, init.index, tcp, wake.fd, counters);
  const tcpRelays = new TcpRelayPipes(epoll, tcp, counters, init.index, (id) => relays.tcpListener(id), (message) => emit({ kind: "log", level: "warn", message: `engine ${init.index}: TCP relay: ${message}` }), config.streams.maxBufferPerEngine);
  const admin = new AdminInbox(init.admin, init.index, emit);
  const tls = tcp.tls;
  const certificates = tls && init.certificateGeneration
    ? new CertificateReloads(init.certificateGeneration, init.index, () => tls.reload(), (message) => emit({ kind: "log", level: "error", message }))
    : undefined;
  const out = new Outbox(send, counters, listeners, relays, tcp);
  const rfc5780 = config.rfc5780;
  const natDiscovery = rfc5780 && new NatDiscoveryTable(rfc5780.alternates, config.listeningPort, rfc5780.altPort);
  const dtls = engineDtlsTransport(init, {
    datagram: (id, client, arena, offset, length, now) => turn.handleClientDatagram(id, client, arena, now, offset, length),
    closed: (id) => turn.handleClientClosed(id),
    send: (listener, client, bytes, offset, length) => out.sendFromListener(listener, client, bytes, offset, length),
    ...(config.verbose ? { failed: dtlsFailureLog(init.index, emit) } : {}),
  });
  out.dtls = dtls;
  const dtlsCertificates = dtls && init.certificateGeneration ? new DtlsCertificateReloads(init.certificateGeneration, dtls, init.index, emit) : undefined;
  const turn = core({
    ...(natDiscovery ? { natDiscovery } : {}),
    sink: out,
    relays,
    isTls: (id) => dtls?.owns(id) === true || tcp.isTls(id),
    isDtls: (id) => dtls?.owns(id) === true,
    allocationEnded: (session) => emit({ kind: "usage", index: init.index, session, endedAt: Date.now() }),
    tcpRelays,
  });
  tcpRelays.events = {
    connected: (id, ok, now) => turn.handlePeerConnected?.(id, ok, now),
    accepted: (relay, peer, id, now) => turn.handlePeerAccepted?.(relay, peer, id, now) === true,
    closed: (id) => turn.handlePeerConnectionClosed?.(id),
    traffic: (id, toPeer, toClient) => turn.handlePeerTraffic?.(id, toPeer, toClient),
  };
  const udp = new UdpDrain({
    recv, counters, out, relays, turn, dtls, reportCrash,
    ...(config.verbose ? { debug: (message: string) => emit({ kind: "log", level: "debug", message }) } : {}),
  });
  return {
    epoll, wake, caps, counters, recv, udp, out, relays, turn, tcp, tcpRelays, bindRouter, admin, certificates,
    listeners, sockets, natDiscovery, dtls, dtlsCertificates,
  };
}

/** Binds the listeners (engine-listeners.ts) and registers each UDP one. Throws SyscallError (e.g. EADDRINUSE). */
export function openEngineListeners(init: EngineInit, parts: EngineParts): string[] {
  const { listeners, natDiscovery, sockets, epoll } = parts;
  return openListeners(init, parts.caps, parts.tcp, (udp, family, label, local, dtlsOnly) => {
    const listener: UdpListener = { kind: "listener", id: listenerId(listeners.length), udp, family, label, dtlsOnly };
    listeners.push(listener);
    natDiscovery?.register(listener.id, local);
    sockets.set(udp.fd, listener);
    epoll.add(udp.fd, EPOLLIN);
  });
}

/** Closes every fd the parts hold, telling DTLS clients (close_notify) before the last flush. */
export function closeEngineParts(parts: EngineParts): void {
  parts.dtls?.closeAll(); // close_notify to each DTLS client, queued before the flush
  parts.out.flush();
  parts.tcpRelays.closeAll();
  parts.tcp.closeAll();
  parts.turn.closeAll();
  for (const l of parts.listeners) l.udp.close(libc);
  parts.listeners.length = 0;
  parts.sockets.clear();
  parts.epoll.close();
  parts.wake.close();
}
