/**
 * The engine's TurnSink: where the core's replies and relayed data go. UDP datagrams are queued on the
 * engine's SendBatch (zero-copy when they point into the receive arena) and leave in one sendmmsg per
 * socket run at `flush`; TCP/TLS clients are written to at once. Relayed datagrams keep the TOS and lose
 * one hop of TTL of the datagram being handled, which the event loop sets in `ttl`/`tos`.
 *
 * Inside a UDP_GRO buffer the 4 bytes before a segment are the previous segment's tail, not free room:
 * while the engine hands such a segment to the core it guards them (guardHeaderRoom), and a ChannelData
 * header the core wrote there leaves from the SendBatch's own header slot (a second iovec) while the
 * tail is put back at once, before anything can be sent from it.
 */
import { SendBatch, flushSendBatch, libc, type UdpSocketState } from "../../ffi/index.ts";
import { CHANNEL_DATA_HEADER } from "../stun/index.ts";
import type { Endpoint, Family } from "../net/endpoint.ts";
import { isConnection, type ClientPath, type ConnectionId, type ListenerId, type RelayHandle, type TurnSink } from "../turn/api.ts";
import type { RelaySockets } from "./relay-sockets.ts";
import type { TcpTransport } from "./tcp-transport.ts";

export interface UdpListener {
  readonly kind: "listener";
  /** The core's listener id: the index in the engine's listener list. */
  readonly id: ListenerId;
  readonly udp: UdpSocketState;
  readonly family: Family;
  readonly label: string;
  /** Opened for DTLS alone (--dtls with --no-udp): plain datagrams are dropped. */
  readonly dtlsOnly: boolean;
}

/** Where messages for a DTLS association go (dtls-transport.ts): encrypted, then queued here again. */
export interface DtlsSink {
  owns(id: number): boolean;
  send(id: ConnectionId, bytes: Uint8Array, offset: number, length: number): void;
}

export class Outbox implements TurnSink {
  readonly batch: SendBatch;
  /** TTL/TOS of the datagram being handled; -1 when unknown (a stream, a timer). */
  ttl = -1;
  tos = -1;
  private readonly counters: Float64Array;
  private readonly listeners: readonly UdpListener[];
  private readonly relays: RelaySockets;
  private readonly tcp: TcpTransport;
  /** Guarded header room (see the file comment): where it starts in `guardArena` (-1: none), and its bytes. */
  private guardAt = -1;
  private guardArena: Uint8Array | null = null;
  private readonly guardSaved = new Uint8Array(CHANNEL_DATA_HEADER);
  /** DTLS associations (connection ids of their own); null without --dtls. */
  dtls: DtlsSink | null = null;

  constructor(batch: SendBatch, counters: Float64Array, listeners: readonly UdpListener[], relays: RelaySockets, tcp: TcpTransport) {
    this.batch = batch;
    this.counters = counters;
    this.listeners = listeners;
    this.relays = relays;
    this.tcp = tcp;
  }

  /** Sends what is queued. Must run before the receive arena the queue points into is reused. */
  flush(): void {
    if (this.batch.count > 0) flushSendBatch(this.batch, this.counters, libc);
  }

  /** The CHANNEL_DATA_HEADER bytes before `segmentOffset` in `arena` belong to a segment that may be queued. */
  guardHeaderRoom(arena: Uint8Array, segmentOffset: number): void {
    const at = segmentOffset - CHANNEL_DATA_HEADER;
    for (let k = 0; k < CHANNEL_DATA_HEADER; k++) this.guardSaved[k] = arena[at + k]!;
    this.guardAt = at;
    this.guardArena = arena;
  }

  /** Puts the guarded bytes back (the core may have written a header there) and ends the guard. */
  releaseHeaderRoom(): void {
    const arena = this.guardArena;
    if (arena === null) return;
    for (let k = 0; k < CHANNEL_DATA_HEADER; k++) arena[this.guardAt + k] = this.guardSaved[k]!;
    this.guardAt = -1;
    this.guardArena = null;
  }

  private queue(socket: UdpSocketState, to: Endpoint, data: Uint8Array, offset: number, length: number, relayed: boolean): void {
    let ttl = -1;
    let tos = -1;
    if (relayed) {
      // Relayed datagrams keep their TOS and lose one hop of TTL, as coturn does.
      if (this.ttl > 0) ttl = this.ttl > 1 ? this.ttl - 1 : 1;
      tos = this.tos;
    }
    this.batch.pushRange(socket, to.address, to.port, data, offset, length, ttl, tos);
    if (this.batch.full) this.flush();
  }

  /** A datagram from a listener's socket (DTLS records): copied into the batch. */
  sendFromListener(listener: UdpListener, client: Endpoint, bytes: Uint8Array, offset: number, length: number): void {
    this.queue(listener.udp, client, bytes, offset, length, false);
  }

  reply(listener: ClientPath, client: Endpoint, data: Uint8Array): void {
    if (isConnection(listener)) {
      if (this.dtls?.owns(listener)) this.dtls.send(listener, data, 0, data.length);
      else this.tcp.send(listener, data);
      return;
    }
    const l = this.listeners[listener];
    if (l) this.queue(l.udp, client, data, 0, data.length, false);
  }

  relayToClient(listener: ClientPath, client: Endpoint, bytes: Uint8Array, offset: number, length: number): void {
    if (isConnection(listener)) {
      if (this.dtls?.owns(listener)) return this.dtls.send(listener, bytes, offset, length);
      this.tcp.sendRange(listener, bytes, offset, length);
      return;
    }
    const l = this.listeners[listener];
    if (!l) return;
    if (bytes === this.guardArena && offset === this.guardAt) {
      // A ChannelData header in a guarded room: from the batch's header slot, the payload in place.
      const ttl = this.ttl > 0 ? (this.ttl > 1 ? this.ttl - 1 : 1) : -1;
      this.batch.pushWithHeader(l.udp, client.address, client.port, bytes, offset, CHANNEL_DATA_HEADER, bytes, offset + CHANNEL_DATA_HEADER, length - CHANNEL_DATA_HEADER, ttl, this.tos);
      this.releaseHeaderRoom();
      if (this.batch.full) this.flush();
      return;
    }
    this.queue(l.udp, client, bytes, offset, length, true);
  }

  relayToPeer(relay: RelayHandle, peer: Endpoint, bytes: Uint8Array, offset: number, length: number, dontFragment: boolean): void {
    const socket = this.relays.get(relay.id);
    if (!socket || peer.family !== socket.family) return;
    if (socket.udp.dontFragment !== dontFragment) {
      // DONT-FRAGMENT (RFC 8656 §14.8) is a socket option: queued datagrams go out under the old setting.
      this.flush();
      socket.udp.setDontFragment(dontFragment, libc);
    }
    this.queue(socket.udp, peer, bytes, offset, length, true);
  }
}
