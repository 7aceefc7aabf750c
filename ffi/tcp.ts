/**
 * TCP sockets over raw libc for TURN over TCP (RFC 8656 §3.1: the client talks TCP, relays stay UDP).
 * Non-blocking listeners and connections; reads and writes are plain read(2)/write(2) on the fd.
 */
import {
  AF_INET, AF_INET6, IPPROTO_IPV6, IPPROTO_TCP, IPV6_V6ONLY, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM,
  SOL_SOCKET, SO_REUSEADDR, SO_REUSEPORT, TCP_NODELAY,
} from "./constants.ts";
import { EAGAIN, EINTR, check } from "./errno.ts";
import { SOCKADDR_SLOT } from "./layout.ts";
import { libc, type Syscalls } from "./libc.ts";
import { writeSockaddr } from "./sockaddr.ts";
import { setIntOption } from "./socket.ts";

export interface TcpListenerOptions {
  family: 4 | 6;
  address: Uint8Array;
  port: number;
  /** SO_REUSEADDR + SO_REUSEPORT: one listener per engine, the kernel spreads connections. */
  reusePort?: boolean;
  backlog?: number;
}

const nameScratch = new Uint8Array(new ArrayBuffer(SOCKADDR_SLOT));

export function openTcpListener(options: TcpListenerOptions, sys: Syscalls = libc): number {
  const v6 = options.family === 6;
  const fd = check("socket", sys.socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  try {
    if (v6) check("setsockopt(IPV6_V6ONLY)", setIntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1, sys));
    // SO_REUSEADDR always: a restarted server must not wait for TIME_WAIT connections.
    check("setsockopt(SO_REUSEADDR)", setIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, sys));
    if (options.reusePort) check("setsockopt(SO_REUSEPORT)", setIntOption(fd, SOL_SOCKET, SO_REUSEPORT, 1, sys));
    const len = writeSockaddr(nameScratch, 0, options.address, options.port);
    check("bind", sys.bind(fd, nameScratch, len));
    check("listen", sys.listen(fd, options.backlog ?? 1024));
    return fd;
  } catch (error) {
    sys.close(fd);
    throw error;
  }
}

/**
 * Accepts one pending connection, non-blocking, with its peer address written into `name` at offset 0.
 * Returns the fd, or -errno (-EAGAIN when none is pending).
 */
export function acceptConnection(fd: number, name: Uint8Array, lenCell: Uint32Array, sys: Syscalls = libc): number {
  lenCell[0] = SOCKADDR_SLOT;
  const conn = sys.accept4(fd, name, lenCell, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (conn >= 0) setIntOption(conn, IPPROTO_TCP, TCP_NODELAY, 1, sys);
  return conn;
}

/**
 * Writes up to `length` bytes at `address` to a non-blocking stream socket, as many as it takes now
 * (EINTR retried): how many it took (fewer than `length` when it is full), or -errno when the connection
 * failed (whatever was written before is then of no use: the caller closes it).
 */
export function writeSome(fd: number, address: number, length: number, sys: Syscalls = libc): number {
  let written = 0;
  while (written < length) {
    const n = sys.write(fd, address + written, length - written);
    if (n === -EINTR) continue;
    if (n === -EAGAIN) break;
    if (n < 0) return n;
    written += n;
  }
  return written;
}
