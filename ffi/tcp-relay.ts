/**
 * Sockets of TCP relays (RFC 6062): the listening socket on a relayed transport address, and connections
 * from that same address to peers. Both set SO_REUSEADDR and SO_REUSEPORT, as coturn does, so that an
 * outgoing connection can be bound to the address:port its allocation listens on.
 */
import {
  AF_INET, AF_INET6, IPPROTO_IPV6, IPPROTO_TCP, IPV6_V6ONLY, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM,
  SOL_SOCKET, SO_ERROR, SO_REUSEADDR, SO_REUSEPORT, TCP_NODELAY,
} from "./constants.ts";
import { check } from "./errno.ts";
import { SOCKADDR_SLOT } from "./layout.ts";
import { libc, type Syscalls } from "./libc.ts";
import { writeSockaddr } from "./sockaddr.ts";
import { setIntOption } from "./socket.ts";

/** connect(2) on a non-blocking socket: the handshake goes on; writable means done (read SO_ERROR). */
export const EINPROGRESS = 115;

const nameScratch = new Uint8Array(new ArrayBuffer(SOCKADDR_SLOT));
const intCell = new Int32Array(1);
const lenCell = new Uint32Array(1);

function openBoundStream(address: Uint8Array, port: number, sys: Syscalls): number {
  const v6 = address.length === 16;
  const fd = check("socket", sys.socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  try {
    if (v6) check("setsockopt(IPV6_V6ONLY)", setIntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1, sys));
    check("setsockopt(SO_REUSEADDR)", setIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, sys));
    check("setsockopt(SO_REUSEPORT)", setIntOption(fd, SOL_SOCKET, SO_REUSEPORT, 1, sys));
    check("bind", sys.bind(fd, nameScratch, writeSockaddr(nameScratch, 0, address, port)));
    return fd;
  } catch (error) {
    sys.close(fd);
    throw error;
  }
}

/** The listening socket of a TCP relayed transport address. Throws SyscallError; never leaks the fd. */
export function openTcpRelayListener(address: Uint8Array, port: number, backlog: number, sys: Syscalls = libc): number {
  const fd = openBoundStream(address, port, sys);
  const listened = sys.listen(fd, backlog);
  if (listened < 0) {
    sys.close(fd);
    check("listen", listened);
  }
  return fd;
}

/**
 * Starts a non-blocking connection from address:port (the relayed address) to peerAddress:peerPort.
 * Returns the fd (the handshake may still be going on: wait for EPOLLOUT, then read connectResult), or
 * -errno when it failed at once.
 */
export function startTcpRelayConnect(address: Uint8Array, port: number, peerAddress: Uint8Array, peerPort: number, sys: Syscalls = libc): number {
  let fd: number;
  try {
    fd = openBoundStream(address, port, sys);
  } catch (error) {
    return -((error as { errno?: number }).errno ?? 22);
  }
  setIntOption(fd, IPPROTO_TCP, TCP_NODELAY, 1, sys);
  const r = sys.connect(fd, nameScratch, writeSockaddr(nameScratch, 0, peerAddress, peerPort));
  if (r === 0 || r === -EINPROGRESS) return fd;
  sys.close(fd);
  return r;
}

/** After EPOLLOUT on a connecting socket: 0 when connected, else the errno (SO_ERROR). */
export function connectResult(fd: number, sys: Syscalls = libc): number {
  lenCell[0] = 4;
  const r = sys.getsockopt(fd, SOL_SOCKET, SO_ERROR, intCell, lenCell);
  return r < 0 ? -r : intCell[0]!;
}
