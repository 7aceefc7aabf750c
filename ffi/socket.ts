/**
 * UDP socket set-up over raw libc: open/bind with the options a relay needs, socket options, and the
 * address a socket is bound to. Batched receive and send are in batch-io.ts; per-socket state in
 * udp-state.ts.
 */
import {
  AF_INET, AF_INET6, IPPROTO_IP, IPPROTO_IPV6, IP_MTU_DISCOVER, IP_PMTUDISC_DO, IP_PMTUDISC_DONT,
  IP_RECVERR, IP_RECVTOS, IP_RECVTTL, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO, IPV6_PMTUDISC_DONT,
  IPV6_RECVERR, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS, IPV6_V6ONLY,
  SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOL_SOCKET, SO_RCVBUF, SO_REUSEADDR, SO_REUSEPORT, SO_SNDBUF,
} from "./constants.ts";
import { SyscallError, check } from "./errno.ts";
import { libc, type Syscalls } from "./libc.ts";
import { SOCKADDR_SLOT } from "./layout.ts";
import { sockaddrPort, writeSockaddr } from "./sockaddr.ts";

export interface UdpSocketOptions {
  family: 4 | 6;
  /** 4 or 16 bytes; all zeros = any. */
  address: Uint8Array;
  port: number;
  /** SO_REUSEADDR + SO_REUSEPORT: one listener per engine on the same address:port. */
  reusePort?: boolean;
  /** SO_RCVBUF/SO_SNDBUF wish (coturn --sock-buf-size); halved on error down to 64 KiB. */
  bufferSize?: number;
  /** Ask for TTL/TOS (hop limit/traffic class) on every received datagram. */
  receiveTtlTos?: boolean;
  /** IP_RECVERR: ICMP errors arrive on the error queue instead of being lost. */
  receiveErrors?: boolean;
}

const intCell = new Int32Array(1);
const lenCell = new Uint32Array(1);
const nameScratch = new Uint8Array(new ArrayBuffer(SOCKADDR_SLOT));

export function setIntOption(fd: number, level: number, name: number, value: number, sys: Syscalls = libc): number {
  intCell[0] = value;
  return sys.setsockopt(fd, level, name, intCell, 4);
}

export function getIntOption(fd: number, level: number, name: number, sys: Syscalls = libc): number {
  lenCell[0] = 4;
  check("getsockopt", sys.getsockopt(fd, level, name, intCell, lenCell));
  return intCell[0]!;
}

/** Opens, configures and binds a non-blocking UDP socket. Throws SyscallError; never leaks the fd. */
export function openUdpSocket(options: UdpSocketOptions, sys: Syscalls = libc): number {
  const v6 = options.family === 6;
  const fd = check("socket", sys.socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  try {
    if (v6) check("setsockopt(IPV6_V6ONLY)", setIntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1, sys));
    if (options.reusePort) {
      check("setsockopt(SO_REUSEADDR)", setIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, sys));
      check("setsockopt(SO_REUSEPORT)", setIntOption(fd, SOL_SOCKET, SO_REUSEPORT, 1, sys));
    }
    if (options.bufferSize) {
      setBufferSize(fd, SO_RCVBUF, options.bufferSize, sys);
      setBufferSize(fd, SO_SNDBUF, options.bufferSize, sys);
    }
    if (options.receiveTtlTos) {
      if (v6) {
        check("setsockopt(IPV6_RECVHOPLIMIT)", setIntOption(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1, sys));
        check("setsockopt(IPV6_RECVTCLASS)", setIntOption(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, 1, sys));
      } else {
        check("setsockopt(IP_RECVTTL)", setIntOption(fd, IPPROTO_IP, IP_RECVTTL, 1, sys));
        check("setsockopt(IP_RECVTOS)", setIntOption(fd, IPPROTO_IP, IP_RECVTOS, 1, sys));
      }
    }
    if (options.receiveErrors) {
      check("setsockopt(IP_RECVERR)", setIntOption(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_RECVERR : IP_RECVERR, 1, sys));
    }
    const len = writeSockaddr(nameScratch, 0, options.address, options.port);
    check("bind", sys.bind(fd, nameScratch, len));
    return fd;
  } catch (error) {
    sys.close(fd);
    throw error;
  }
}

function setBufferSize(fd: number, option: number, wanted: number, sys: Syscalls): number {
  for (let size = wanted; size >= 65536; size = Math.floor(size / 2)) {
    if (setIntOption(fd, SOL_SOCKET, option, size, sys) === 0) return size;
  }
  return 0;
}

/** Whether a UDP socket could bind address:port right now (the probe is closed at once). */
export function canBindUdp(address: Uint8Array, port: number, sys: Syscalls = libc): boolean {
  try {
    closeSocket(openUdpSocket({ family: address.length === 4 ? 4 : 6, address, port }, sys), sys);
    return true;
  } catch (error) {
    if (error instanceof SyscallError) return false;
    throw error;
  }
}

/** The port a socket is bound to (after binding to port 0). */
export function boundPort(fd: number, sys: Syscalls = libc): number {
  lenCell[0] = SOCKADDR_SLOT;
  check("getsockname", sys.getsockname(fd, nameScratch, lenCell));
  return sockaddrPort(nameScratch, 0);
}

/** DONT-FRAGMENT (RFC 8656 §14.8): DF on for the socket, or back to the kernel's default of off. */
export function setDontFragment(fd: number, family: 4 | 6, on: boolean, sys: Syscalls = libc): number {
  return family === 6
    ? setIntOption(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, on ? IPV6_PMTUDISC_DO : IPV6_PMTUDISC_DONT, sys)
    : setIntOption(fd, IPPROTO_IP, IP_MTU_DISCOVER, on ? IP_PMTUDISC_DO : IP_PMTUDISC_DONT, sys);
}

export function closeSocket(fd: number, sys: Syscalls = libc): void {
  sys.close(fd);
}

export { SyscallError };
