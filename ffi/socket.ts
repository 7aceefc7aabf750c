/**
 * UDP sockets over raw libc: open/bind with the options a relay needs, batched receive and send with
 * capabilities that downgrade when the kernel says no (quinn-udp's model), and the error queue.
 */
import {
  AF_INET, AF_INET6, IPPROTO_IP, IPPROTO_IPV6, IP_MTU_DISCOVER, IP_PMTUDISC_DO, IP_PMTUDISC_DONT,
  IP_RECVERR, IP_RECVTOS, IP_RECVTTL, IP_TOS, IP_TTL, IPV6_TCLASS, IPV6_UNICAST_HOPS, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO, IPV6_PMTUDISC_DONT,
  IPV6_RECVERR, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS, IPV6_V6ONLY, MSG_DONTWAIT, MSG_ERRQUEUE,
  SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOL_SOCKET, SO_RCVBUF, SO_REUSEADDR, SO_REUSEPORT, SO_SNDBUF,
} from "./constants.ts";
import { EAGAIN, EINTR, ENOBUFS, ENOMEM, SyscallError, check, isBatchUnsupported } from "./errno.ts";
import { libc, type Syscalls } from "./libc.ts";
import { SOCKADDR_SLOT } from "./layout.ts";
import { sockaddrPort, writeSockaddr } from "./sockaddr.ts";
import { CmsgInfo, parseCmsgs } from "./cmsg.ts";
import { RecvBatch, SendBatch } from "./batch.ts";
import { STAT, recordBatch } from "./stats.ts";

/**
 * What the kernel lets us use. Cells may live in a SharedArrayBuffer so that one engine's downgrade
 * switches the feature off for the whole process, as coturn does.
 */
export class UdpCapabilities {
  private readonly cells: Int32Array;
  onDowngrade: ((feature: "recvmmsg" | "sendmmsg", errno: number) => void) | null = null;

  constructor(options: { recvmmsg: boolean; sendmmsg: boolean }, shared?: Int32Array) {
    this.cells = shared ?? new Int32Array(2);
    if (!shared) {
      this.cells[0] = options.recvmmsg ? 1 : 0;
      this.cells[1] = options.sendmmsg ? 1 : 0;
    }
  }
  static sharedCells(options: { recvmmsg: boolean; sendmmsg: boolean }): Int32Array {
    const cells = new Int32Array(new SharedArrayBuffer(8));
    cells[0] = options.recvmmsg ? 1 : 0;
    cells[1] = options.sendmmsg ? 1 : 0;
    return cells;
  }
  get recvmmsg(): boolean {
    return this.cells[0] === 1;
  }
  get sendmmsg(): boolean {
    return this.cells[1] === 1;
  }
  disable(feature: "recvmmsg" | "sendmmsg", errno: number): void {
    const cell = feature === "recvmmsg" ? 0 : 1;
    if (Atomics.compareExchange(this.cells, cell, 1, 0) === 1) this.onDowngrade?.(feature, errno);
  }
}

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

/**
 * Receives up to `max` datagrams into `batch`. With recvmmsg: one call. Without (flag off, or the kernel
 * refused it): one recvmsg per datagram until EAGAIN or `max`. Returns the count (0 = would block) or
 * -errno for a socket error (e.g. a pending ICMP error), which the caller handles.
 */
export function receiveBatch(
  fd: number,
  batch: RecvBatch,
  caps: UdpCapabilities,
  stats: Float64Array,
  sys: Syscalls = libc,
  max = batch.capacity,
): number {
  batch.prepare(max);
  if (caps.recvmmsg) {
    let n: number;
    do n = sys.recvmmsg(fd, batch.vecAddress, max, MSG_DONTWAIT);
    while (n === -EINTR);
    batch.used(n > 0 ? n : 1);
    if (n >= 0) {
      recordBatch(stats, n);
      return n;
    }
    if (n === -EAGAIN) {
      recordBatch(stats, 0);
      return 0;
    }
    if (!isBatchUnsupported(-n)) {
      if (n === -ENOBUFS || n === -ENOMEM) stats[STAT.noBuffer]!++;
      return n;
    }
    stats[STAT.unavailable]!++;
    caps.disable("recvmmsg", -n);
    batch.prepare(max);
  }
  let count = 0;
  while (count < max) {
    const r = sys.recvmsg(fd, batch.msghdrAddress(count), MSG_DONTWAIT);
    batch.used(count + 1);
    if (r === -EINTR) continue;
    if (r < 0) {
      if (r === -EAGAIN || count > 0) break; // an error after some datagrams resurfaces on the next call
      return r;
    }
    batch.setLength(count, r);
    count++;
  }
  return count;
}

/**
 * Sends everything queued in `batch`, one sendmmsg per run of entries for the same socket (sendmsg for a
 * run of one, or when sendmmsg is off). A datagram the kernel refuses (buffer full, ICMP error pending)
 * is counted and dropped: UDP promises no more. Clears the batch.
 */
export function flushSendBatch(batch: SendBatch, caps: UdpCapabilities, stats: Float64Array, sys: Syscalls = libc): void {
  const total = batch.count;
  let i = 0;
  while (i < total) {
    const fd = batch.fds[i]!;
    if (batch.change[i] === 1) applyTtlTos(batch, i, stats, sys);
    let end = i + 1;
    while (end < total && batch.fds[end] === fd && batch.change[end] === 0) end++;
    while (i < end) {
      if (end - i > 1 && caps.sendmmsg) {
        const n = sys.sendmmsg(fd, batch.msghdrAddress(i), end - i, 0);
        if (n > 0) {
          stats[STAT.sendCalls]!++;
          stats[STAT.sendPackets]! += n;
          i += n;
          continue;
        }
        if (n === -EINTR) continue;
        if (n < 0 && isBatchUnsupported(-n)) {
          stats[STAT.sendUnavailable]!++;
          caps.disable("sendmmsg", -n);
          continue;
        }
        // The first entry failed: count it, skip it, and carry on with the rest.
        stats[STAT.sendErrors]!++;
        i++;
        continue;
      }
      const r = sys.sendmsg(fd, batch.msghdrAddress(i), 0);
      if (r === -EINTR) continue;
      if (r < 0) stats[STAT.sendErrors]!++;
      else {
        stats[STAT.sendCalls]!++;
        stats[STAT.sendPackets]!++;
      }
      i++;
    }
  }
  batch.clear();
}

/**
 * Sticky TTL/TOS (SendBatch.stickyTtlTos): sets the socket options that entry i and the entries after it
 * for the same socket rely on. If the kernel refuses, those entries carry their TTL/TOS as cmsg instead.
 */
function applyTtlTos(batch: SendBatch, i: number, stats: Float64Array, sys: Syscalls): void {
  const fd = batch.fds[i]!;
  const ttl = batch.ttls[i]!;
  const tos = batch.toss[i]!;
  const v6 = batch.isIpv6(i);
  const r1 = setIntOption(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_UNICAST_HOPS : IP_TTL, ttl, sys);
  // IP_TOS has no "default" value: 0 is the default; IPV6_TCLASS takes -1.
  const r2 = setIntOption(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_TCLASS : IP_TOS, v6 || tos >= 0 ? tos : 0, sys);
  if (r1 === 0 && r2 === 0) return;
  stats[STAT.sendErrors]!++;
  // Back to the defaults the batch will assume from now on.
  setIntOption(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_UNICAST_HOPS : IP_TTL, -1, sys);
  setIntOption(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_TCLASS : IP_TOS, v6 ? -1 : 0, sys);
  let later = false;
  for (let j = i; j < batch.count; j++) {
    if (batch.fds[j] !== fd) continue;
    if (j > i && batch.change[j] === 1) {
      later = true; // a later change sets the options the batch assumes after it
      break;
    }
    batch.attachTtlTos(j);
  }
  if (!later) batch.forgetSocket(fd);
}

/**
 * Reads one message from the socket's error queue (IP_RECVERR) into batch entry 0 and parses its
 * sock_extended_err. Returns false when the queue is empty. The offending destination is batch's
 * source address of entry 0.
 */
export function readErrorQueue(fd: number, batch: RecvBatch, info: CmsgInfo, sys: Syscalls = libc): boolean {
  batch.prepare(1);
  const r = sys.recvmsg(fd, batch.msghdrAddress(0), MSG_ERRQUEUE | MSG_DONTWAIT);
  batch.used(1);
  if (r < 0) return false;
  batch.setLength(0, r);
  parseCmsgs(batch.control, batch.controlOffsetOf(0), batch.controlLength(0), info);
  return true;
}

/** TTL/TOS of received entry i. */
export function receivedTtlTos(batch: RecvBatch, i: number, info: CmsgInfo): CmsgInfo {
  return parseCmsgs(batch.control, batch.controlOffsetOf(i), batch.controlLength(i), info);
}

export { SyscallError };
