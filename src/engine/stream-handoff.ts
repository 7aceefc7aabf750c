/**
 * Handing a client's TCP/TLS connection from one engine to another (RFC 6062 §5.4). A ConnectionBind
 * arrives on a new data connection, which the kernel gave to whichever engine's listener it hashed to;
 * the peer connection it names lives in the engine that minted its CONNECTION-ID (./tcp-relay-ids.ts).
 * The receiving engine takes the connection out of its epoll set and posts it here: descriptors belong to
 * the process, so the fd, who the client is and the bytes already read (the ConnectionBind, and anything
 * after it) are all the owner needs to serve it as its own. coturn moves sockets between its threads for
 * the same reason.
 *
 * Shared memory, one mailbox per engine: slots claimed with compare-and-swap (any engine may post), read
 * by the owner between epoll waits, woken through its eventfd (whose number every engine publishes here).
 */
import { EventFd } from "../../ffi/index.ts";
import { endpointFromBytes, type Endpoint } from "../net/endpoint.ts";

const SLOTS = 32;
/** A ConnectionBind is about 100 bytes; a client that sends more before its answer is not served across engines. */
export const HANDOFF_BYTES = 4096;
const FREE = 0;
const WRITING = 1;
const READY = 2;
/**
 * Int32 cells per slot: state, fd, port, address length, flags, byte count, 4 cells of address, accept
 * time (s), then the TLS session's address (low, high 32 bits).
 */
const CELLS = 13;
const FLAG_TLS = 1;
const FLAG_COUNTED = 2;
const FLAG_TLS_ON_SOCKET = 4;
const TWO_32 = 2 ** 32;

export interface HandoffShared {
  /** Per engine: its wake eventfd (0 until it started), then its slots' cells. */
  cells: Int32Array;
  bytes: Uint8Array;
  engines: number;
}

export function createHandoffShared(engines: number): HandoffShared {
  return {
    cells: new Int32Array(new SharedArrayBuffer(4 * engines * (1 + SLOTS * CELLS))),
    bytes: new Uint8Array(new SharedArrayBuffer(engines * SLOTS * HANDOFF_BYTES)),
    engines,
  };
}

/** A connection as it crosses: what TcpTransport.adopt needs. */
export interface HandedConnection {
  fd: number;
  client: Endpoint;
  tls: boolean;
  /** With `tls`: the address of its OpenSSL session (SSL *), which the new owner wraps (tls-connection.ts). */
  session: number;
  /** With `tls`: the session reads and writes the socket itself (kTLS mode), not memory BIOs. */
  onSocket: boolean;
  /** Its source is counted in the connection caps (the new owner releases it when it closes). */
  counted: boolean;
  /** Bytes read from it already, not handled yet. */
  bytes: Uint8Array;
  /** When it was accepted (Unix ms; crosses in whole seconds): moving does not restart its idle clock. */
  openedAt: number;
}

export class StreamHandoff {
  constructor(private readonly shared: HandoffShared, private readonly index: number) {}

  private base(engine: number): number {
    return engine * (1 + SLOTS * CELLS);
  }

  /** Publishes this engine's wake eventfd, so that others can wake it after posting. */
  publish(wakeFd: number): void {
    Atomics.store(this.shared.cells, this.base(this.index), wakeFd);
  }

  /** Posts `c` to engine `target`. False (nothing posted, the caller still owns the fd): no such engine, not started, full. */
  post(target: number, c: HandedConnection): boolean {
    const { cells, bytes, engines } = this.shared;
    if (target < 0 || target >= engines || target === this.index || c.bytes.length > HANDOFF_BYTES) return false;
    const base = this.base(target);
    const wakeFd = Atomics.load(cells, base);
    if (wakeFd <= 0) return false;
    for (let slot = 0; slot < SLOTS; slot++) {
      const at = base + 1 + slot * CELLS;
      if (Atomics.compareExchange(cells, at, FREE, WRITING) !== FREE) continue;
      cells[at + 1] = c.fd;
      cells[at + 2] = c.client.port;
      cells[at + 3] = c.client.address.length;
      cells[at + 4] = (c.tls ? FLAG_TLS : 0) | (c.counted ? FLAG_COUNTED : 0) | (c.onSocket ? FLAG_TLS_ON_SOCKET : 0);
      cells[at + 11] = c.session % TWO_32;
      cells[at + 12] = Math.floor(c.session / TWO_32);
      cells[at + 5] = c.bytes.length;
      new Uint8Array(cells.buffer, (at + 6) * 4, 16).set(c.client.address);
      cells[at + 10] = Math.floor(c.openedAt / 1000);
      bytes.set(c.bytes, (target * SLOTS + slot) * HANDOFF_BYTES);
      Atomics.store(cells, at, READY);
      EventFd.signal(wakeFd);
      return true;
    }
    return false;
  }

  /** Every connection posted to this engine, each handed to `adopt` (which now owns its fd). */
  receive(adopt: (c: HandedConnection) => void): void {
    const { cells, bytes } = this.shared;
    const base = this.base(this.index);
    for (let slot = 0; slot < SLOTS; slot++) {
      const at = base + 1 + slot * CELLS;
      if (Atomics.load(cells, at) !== READY) continue;
      const length = cells[at + 3]!;
      const address = new Uint8Array(cells.buffer, (at + 6) * 4, 16).slice(0, length);
      const start = (this.index * SLOTS + slot) * HANDOFF_BYTES;
      const c: HandedConnection = {
        fd: cells[at + 1]!,
        client: endpointFromBytes(address, cells[at + 2]!),
        tls: (cells[at + 4]! & FLAG_TLS) !== 0,
        session: (cells[at + 11]! >>> 0) + cells[at + 12]! * TWO_32,
        onSocket: (cells[at + 4]! & FLAG_TLS_ON_SOCKET) !== 0,
        counted: (cells[at + 4]! & FLAG_COUNTED) !== 0,
        bytes: bytes.slice(start, start + cells[at + 5]!),
        openedAt: cells[at + 10]! * 1000,
      };
      Atomics.store(cells, at, FREE);
      adopt(c);
    }
  }
}
