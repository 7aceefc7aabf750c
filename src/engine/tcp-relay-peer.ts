/**
 * One peer's TCP connection on a relayed address (RFC 6062) and, once a client data connection is bound
 * to it (ConnectionBind, RFC 6062 §5.4), the data phase: the byte pipe between the two, both ways.
 * Apart from tcp-relay-pipes.ts, which opens, tracks and closes these connections (accept, connect,
 * bind), because this is the per-message path and knows nothing of how the connection came to be.
 *
 * Back-pressure: a side is read only while the other side has nothing left unwritten, so each direction
 * holds at most one read (64 KiB) in memory; past that the reader leaves epoll's read interest and TCP's
 * own flow control pushes back on its sender. Closing either side closes the other.
 */
import { ptr } from "bun:ffi";
import { EAGAIN, EINTR, EPOLLIN, EPOLLOUT, EPOLLRDHUP, type Epoll, libc, writeSome } from "../../ffi/index.ts";
import type { Endpoint } from "../net/endpoint.ts";
import type { ConnectionId, PeerConnectionId, RelayId } from "../turn/api.ts";
import { SLOT } from "./counters.ts";
import type { RawReader } from "./tcp-connections.ts";
import type { TcpTransport } from "./tcp-transport.ts";

/** One read from a peer (the most a direction holds). */
export const CHUNK = 1 << 16;
const MAX_READS_PER_WAKE = 16;

/** What the pipes report to the protocol core. */
export interface TcpRelayEvents {
  connected(id: PeerConnectionId, ok: boolean, now: number): void;
  accepted(relay: RelayId, peer: Endpoint, id: PeerConnectionId, now: number): boolean;
  closed(id: PeerConnectionId): void;
  /** Bytes piped each way through connection `id` (for its allocation's usage record). */
  traffic(id: PeerConnectionId, toPeer: number, toClient: number): void;
}

/** What a pipe needs of the engine's TcpRelayPipes. */
export interface PipeHost {
  readonly epoll: Epoll;
  readonly tcp: TcpTransport;
  readonly counters: Float64Array;
  /** --max-tcp-buffer-total: what this engine's pipes may hold together; a pipe that needs more is closed. */
  readonly maxBuffered: number;
  readonly events: TcpRelayEvents | undefined;
  /** Where a peer's bytes are read (CHUNK), shared by the engine's pipes. */
  readonly scratch: Uint8Array;
  readonly scratchAddress: number;
  /** Whether `p` is still open (not dropped). */
  holds(p: PeerSide): boolean;
  /** `p` failed or ended: it is closed with its client connection, and the core told. */
  lost(p: PeerSide): void;
}

export class PeerSide implements RawReader {
  state: "connecting" | "waiting" | "piped" = "waiting";
  client = 0 as ConnectionId;
  /** Bytes from the client the peer's socket has not taken yet (at most one read). */
  backlog: Uint8Array | null = null;
  backlogAt = 0;
  /** Peer reading stopped until the client's backlog drains. */
  paused = false;
  /** What this pipe holds in the client connection's backlog, for the tcpRelayBuffered gauge. */
  clientHeld = 0;
  constructor(readonly fd: number, readonly id: PeerConnectionId, private readonly host: PipeHost) {}

  /** Client bytes for the peer: written at once, the rest kept; false pauses the client until it leaves. */
  data(bytes: Uint8Array, offset: number, length: number): boolean {
    const host = this.host;
    if (!host.holds(this)) return false;
    host.counters[SLOT.tcpRelayBytesToPeer]! += length;
    host.events?.traffic(this.id, length, 0);
    const written = writeSome(this.fd, (ptr(bytes) as unknown as number) + offset, length);
    if (written < 0) {
      host.lost(this);
      return false;
    }
    if (written === length) return true;
    if (host.counters[SLOT.tcpRelayBuffered]! + length - written > host.maxBuffered) {
      host.counters[SLOT.tcpClosedByLimit]!++;
      host.lost(this);
      return false;
    }
    this.backlog = bytes.slice(offset + written, offset + length);
    this.backlogAt = 0;
    host.counters[SLOT.tcpRelayBuffered]! += this.backlog.length;
    host.epoll.modify(this.fd, this.interest());
    return false;
  }

  /** The peer's socket is writable: the client's bytes it did not take go on. */
  writeBacklog(): void {
    const backlog = this.backlog;
    if (backlog === null) return;
    const written = writeSome(this.fd, (ptr(backlog) as unknown as number) + this.backlogAt, backlog.length - this.backlogAt);
    if (written < 0) return this.host.lost(this);
    this.backlogAt += written;
    if (this.backlogAt < backlog.length) return;
    this.host.counters[SLOT.tcpRelayBuffered]! -= backlog.length;
    this.backlog = null;
    this.host.epoll.modify(this.fd, this.interest());
    this.host.tcp.resumeReading(this.client);
  }

  /** The peer's socket is readable: its bytes go to the client, while the client has nothing pending. */
  readPeer(): void {
    const host = this.host;
    for (let round = 0; round < MAX_READS_PER_WAKE; round++) {
      if (host.tcp.backlogOf(this.client) > 0) {
        this.paused = true;
        host.epoll.modify(this.fd, this.interest());
        return;
      }
      const n = libc.read(this.fd, host.scratchAddress, CHUNK);
      if (n === -EINTR) continue;
      if (n === -EAGAIN) return;
      // The peer ended: read only while the client has nothing pending, so nothing is left behind (and
      // the client's side is read only while the peer's has nothing pending: the same holds the other way).
      if (n <= 0) return host.lost(this);
      host.counters[SLOT.tcpRelayBytesToClient]! += n;
      host.events?.traffic(this.id, 0, n);
      if (!host.tcp.send(this.client, host.scratch.subarray(0, n), true)) return; // the client is gone: its close dropped this
      this.holdClient();
    }
  }

  /** The client's backlog emptied: the peer is read again. */
  drained(): void {
    this.holdClient();
    if (!this.paused || !this.host.holds(this)) return;
    this.paused = false;
    this.host.epoll.modify(this.fd, this.interest());
  }

  private holdClient(): void {
    const held = this.host.tcp.backlogOf(this.client);
    this.host.counters[SLOT.tcpRelayBuffered]! += held - this.clientHeld;
    this.clientHeld = held;
  }

  /** epoll's interest in the peer's socket: read unless paused, write while a backlog waits. */
  private interest(): number {
    if (this.state !== "piped") return 0;
    return (this.paused ? 0 : EPOLLIN | EPOLLRDHUP) | (this.backlog !== null ? EPOLLOUT : 0);
  }
}
