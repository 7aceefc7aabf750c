/**
 * Moving a client's TCP/TLS connection between engines (RFC 6062 §5.4): its ConnectionBind arrived at
 * this engine, but the peer connection it names belongs to another (connection-bind-route.ts). `detach`
 * takes it out of this transport without closing it; `adopt` serves one another engine detached
 * (stream-handoff.ts carries it across), starting with the bytes it had read. A TLS session goes along:
 * OpenSSL's objects belong to the process, so the new owner wraps the same SSL.
 */
import { EPOLLIN, EPOLLRDHUP, type Epoll } from "../../ffi/index.ts";
import type { ConnectionId } from "../turn/api.ts";
import type { StreamBuffers } from "./stream-buffers.ts";
import type { HandedConnection } from "./stream-handoff.ts";
import type { Connection, ConnectionTable } from "./tcp-connections.ts";
import type { TcpReader } from "./tcp-reading.ts";
import type { TlsEngine } from "./tls-connection.ts";

/** A detached connection: what crosses, with the bytes read after its ConnectionBind as `rest`. */
export type DetachedConnection = Omit<HandedConnection, "bytes"> & { rest: Uint8Array };

export class TcpHandover {
  constructor(
    private readonly connections: ConnectionTable,
    private readonly epoll: Epoll,
    private readonly buffers: StreamBuffers,
    private readonly tls: TlsEngine | null,
    private readonly reader: TcpReader,
    /** The transport's close (`byLimit`: closed by a limit of ours, counted). */
    private readonly close: (c: Connection, byLimit?: boolean) => void,
  ) {}

  /**
   * Takes connection `id` out of this transport without closing it (its ConnectionBind, the frame being
   * handled, belongs to another engine): its fd, client, and the bytes after that frame. Undefined when
   * it is gone or has replies pending (it cannot move then).
   */
  detach(id: ConnectionId): DetachedConnection | undefined {
    const c = this.connections.withId(id);
    if (!c || c.backlogLength > 0 || c.raw) return undefined;
    this.connections.remove(c);
    this.epoll.remove(c.fd);
    this.buffers.closed(c);
    const session = c.link ? this.tls!.detach(c.link) : 0;
    return { fd: c.fd, client: c.client, tls: c.link !== null, session, onSocket: c.link?.onSocket === true, counted: c.counted !== null, openedAt: c.openedAt, rest: c.bytes.slice(c.start, c.end) };
  }

  /** A connection another engine detached: served here from now on, starting with the bytes it had read. */
  adopt(handed: HandedConnection, now: number): void {
    const c: Connection = {
      ...this.buffers.fresh(), fd: handed.fd, id: this.connections.newId(), client: handed.client, openedAt: Math.min(now, handed.openedAt), spoke: false,
      awaitingProxyHeader: null, counted: handed.counted ? handed.client.address : null,
      link: handed.tls && this.tls ? this.tls.adopt(handed.session, handed.onSocket, now) : null,
    };
    this.connections.add(c);
    this.epoll.add(c.fd, EPOLLIN | EPOLLRDHUP);
    if (handed.bytes.length > c.bytes.length) return this.close(c, true);
    c.bytes.set(handed.bytes);
    c.end = handed.bytes.length;
    // Then what OpenSSL had decrypted already, which is not on the socket any more.
    if (this.reader.consume(c, now) && c.link) this.tls!.resume(c, c.link, now);
  }
}
