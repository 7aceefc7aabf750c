/**
 * Reading a client connection that became a byte pipe (RFC 6062 §5.4): no framing, every byte goes to
 * the connection's RawReader, which may ask for a pause (its peer is not keeping up); a paused connection
 * leaves epoll's read interest until it is resumed, so the client meets TCP's own back-pressure.
 */
import { ptr } from "bun:ffi";
import { EAGAIN, EINTR, EPOLLIN, EPOLLOUT, EPOLLRDHUP } from "../../ffi/index.ts";
import type { Connection } from "./tcp-connections.ts";

/** The epoll interest of a connection: reading unless paused, writing while it has a backlog. */
export function rawInterest(c: Connection): number {
  return (c.paused ? 0 : EPOLLIN | EPOLLRDHUP) | (c.backlogLength > 0 ? EPOLLOUT : 0);
}

/**
 * Hands the bytes left after the ConnectionBind, then what the socket has (up to `rounds` reads), to the
 * reader. "closed": the client closed or failed; "paused": the reader asked to stop (c.paused is set);
 * "drained": nothing more to read now.
 */
export function readRaw(
  c: Connection,
  scratch: Uint8Array,
  rounds: number,
  /** The transport's own read of a connection (whatever it takes to get the client's bytes). */
  receive: (c: Connection, address: number, length: number) => number,
): "closed" | "paused" | "drained" {
  const reader = c.raw!;
  if (c.start < c.end) {
    const start = c.start;
    const end = c.end;
    c.start = c.end = 0;
    if (!reader.data(c.bytes, start, end - start)) return pause(c);
  }
  const address = ptr(scratch) as unknown as number;
  for (let round = 0; round < rounds; round++) {
    if (c.raw === undefined) return "drained";
    const n = receive(c, address, scratch.length);
    if (n === -EINTR) continue;
    if (n === -EAGAIN) return "drained";
    if (n <= 0) return "closed";
    if (!reader.data(scratch, 0, n)) return pause(c);
  }
  return "drained";
}

function pause(c: Connection): "paused" {
  c.paused = true;
  return "paused";
}
