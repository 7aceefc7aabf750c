/**
 * The engine's UDP receive path, the hot loop: a readable listener or relay socket is drained in batches
 * (recvmmsg, or recvmsg per datagram) and each datagram goes to the core, or to DTLS on a listener when
 * its first byte says so (RFC 7983 §7); a UDP_GRO buffer is cut into its segments first. What the core
 * sends meanwhile is flushed after each batch, before the next receive reuses the slots it points into.
 * ICMP errors (IP_RECVERR) are read off the error queue and counted. engine.ts owns the sockets and the
 * loop; this is what it does with one readable socket.
 */
import {
  CmsgInfo, ECONNREFUSED, type RecvBatch, groSegmentCount, libc, readErrorQueue, receiveBatch, receivedTtlTos, recordGroBuffer,
} from "../../ffi/index.ts";
import { SLOT } from "./counters.ts";
import type { DtlsTransport } from "./engine-dtls.ts";
import type { TurnCore } from "./engine-init.ts";
import type { Outbox, UdpListener } from "./outbox.ts";
import type { RelaySocket, RelaySockets } from "./relay-sockets.ts";
import { SourceCache } from "./sources.ts";

/** Datagrams per socket per wake before the others get a turn: fairness under load. */
const MAX_BATCHES_PER_WAKE = 8;

export interface UdpDrainParts {
  /** The engine's receive batch (its slots are where sends point too, zero-copy). */
  recv: RecvBatch;
  counters: Float64Array;
  out: Outbox;
  relays: RelaySockets;
  turn: TurnCore;
  dtls: DtlsTransport | null;
  /** A handler threw: counted and logged; the datagrams in hand are lost, nothing else. */
  reportCrash: (error: unknown) => void;
  /** -v: ICMP port unreachable is logged here; absent: only counted. */
  debug?: (message: string) => void;
}

export class UdpDrain {
  private readonly recv: RecvBatch;
  private readonly counters: Float64Array;
  private readonly out: Outbox;
  private readonly relays: RelaySockets;
  private readonly turn: TurnCore;
  private readonly dtls: DtlsTransport | null;
  private readonly reportCrash: (error: unknown) => void;
  private readonly debug: ((message: string) => void) | undefined;
  private readonly cmsg = new CmsgInfo();
  private readonly errInfo = new CmsgInfo();
  private readonly sources = new SourceCache();

  constructor(parts: UdpDrainParts) {
    this.recv = parts.recv;
    this.counters = parts.counters;
    this.out = parts.out;
    this.relays = parts.relays;
    this.turn = parts.turn;
    this.dtls = parts.dtls;
    this.reportCrash = parts.reportCrash;
    this.debug = parts.debug;
  }

  drain(socket: UdpListener | RelaySocket, now: number): void {
    const batch = this.recv;
    const arena = batch.payload;
    for (let round = 0; round < MAX_BATCHES_PER_WAKE; round++) {
      const n = receiveBatch(socket.udp, batch, this.counters, libc);
      if (n < 0) {
        // A pending socket error (an ICMP error reported through IP_RECVERR): read it and go on.
        if (!this.drainErrorQueue(socket)) return;
        continue;
      }
      if (n === 0) return;
      // Clients' datagrams in a method of their own: the start-up warm-up runs both loops, and a relay
      // whose clients come over TCP/TLS then compiles only the peers' loop into this function.
      if (socket.kind === "listener") this.fromClients(socket, n, now);
      else {
        const relayId = socket.handle.id;
        for (let i = 0; i < n; i++) {
          if (!this.prepareDatagram(i)) continue;
          if (this.cmsg.groSize > 0 && batch.length(i) > this.cmsg.groSize) {
            this.handleGroBuffer(socket, i, now);
            if (this.relays.get(relayId) === undefined) break;
            continue;
          }
          try {
            this.turn.handlePeerDatagram(relayId, this.sources.of(batch, i), arena, now, batch.datagramOffset(i), batch.length(i));
          } catch (error) {
            this.reportCrash(error);
          }
          // The core may have closed this relay while handling (it never does for peer data today).
          if (this.relays.get(relayId) === undefined) break;
        }
      }
      // Sends may point into the receive slots (zero-copy): they must leave before the next receive.
      this.out.flush();
      if (n < batch.capacity) return; // a short batch: the queue was empty a moment ago
      if (socket.kind === "relay" && this.relays.get(socket.handle.id) === undefined) return;
    }
  }

  /** The `n` datagrams received on a client listener: each to the core, or to DTLS. */
  private fromClients(socket: UdpListener, n: number, now: number): void {
    const batch = this.recv;
    const arena = batch.payload;
    for (let i = 0; i < n; i++) {
      if (!this.prepareDatagram(i)) continue;
      if (this.cmsg.groSize > 0 && batch.length(i) > this.cmsg.groSize) {
        this.handleGroBuffer(socket, i, now);
        continue;
      }
      try {
        const offset = batch.datagramOffset(i);
        const length = batch.length(i);
        // RFC 7983 §7: a first byte of 20..63 is a DTLS record; STUN starts with 0..3, ChannelData 64..79.
        const first = length > 0 ? arena[offset]! : 0;
        if (first >= 20 && first <= 63 && this.dtls !== null) {
          this.dtls.handleDatagram(socket, this.sources.of(batch, i), arena, batch.payloadAddress, offset, length, now);
        } else if (!socket.dtlsOnly) {
          this.turn.handleClientDatagram(socket.id, this.sources.of(batch, i), arena, now, offset, length);
        }
      } catch (error) {
        // One bad datagram must not cost the others in the batch (other clients' traffic).
        this.reportCrash(error);
      }
    }
  }

  /**
   * A UDP_GRO buffer (--udp-gro): segments of the cmsg's gso_size, the last possibly shorter, each handled
   * as its own datagram with the buffer's source and TTL/TOS. On a relay socket the core puts a
   * ChannelData header in the 4 bytes before a segment, which inside the buffer are the previous
   * segment's tail: the Outbox is told, sends that header from a slot of its own and puts the tail back.
   */
  private handleGroBuffer(socket: UdpListener | RelaySocket, i: number, now: number): void {
    const batch = this.recv;
    const arena = batch.payload;
    const size = this.cmsg.groSize;
    const start = batch.datagramOffset(i);
    const end = start + batch.length(i);
    recordGroBuffer(this.counters, groSegmentCount(end - start, size));
    const source = this.sources.of(batch, i);
    for (let at = start; at < end; at += size) {
      const length = Math.min(size, end - at);
      try {
        if (socket.kind === "listener") {
          const first = arena[at]!;
          if (first >= 20 && first <= 63 && this.dtls !== null) this.dtls.handleDatagram(socket, source, arena, batch.payloadAddress, at, length, now);
          else if (!socket.dtlsOnly) this.turn.handleClientDatagram(socket.id, source, arena, now, at, length);
        } else {
          if (at > start) this.out.guardHeaderRoom(arena, at);
          this.turn.handlePeerDatagram(socket.handle.id, source, arena, now, at, length);
        }
      } catch (error) {
        this.reportCrash(error);
      }
      this.out.releaseHeaderRoom();
      if (socket.kind === "relay" && this.relays.get(socket.handle.id) === undefined) return;
    }
  }

  /** Reads TTL/TOS of datagram i. False when it must be dropped (arrived with TTL 0). */
  private prepareDatagram(i: number): boolean {
    const info = receivedTtlTos(this.recv, i, this.cmsg);
    this.out.ttl = info.ttl;
    this.out.tos = info.tos;
    if (info.ttl === 0) {
      this.counters[SLOT.ttlDropped]!++;
      return false;
    }
    return true;
  }

  /** Drains the IP_RECVERR queue: ICMP errors from peers or clients are counted, never fatal. */
  drainErrorQueue(socket: UdpListener | RelaySocket): boolean {
    let any = false;
    while (readErrorQueue(socket.udp, this.recv, this.errInfo, libc)) {
      any = true;
      this.counters[SLOT.icmpErrors]!++;
      if (this.debug && this.errInfo.errno === ECONNREFUSED) {
        this.debug(`ICMP port unreachable from port ${this.recv.sourcePort(0)} (fd ${socket.udp.fd})`);
      }
    }
    return any;
  }
}
