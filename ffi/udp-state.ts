/**
 * Per-socket UDP state, after quinn-udp's `UdpSocketState`: the fd and what the kernel accepted for it,
 * owned by whoever owns the socket (the engine's listener and relay-socket objects), so nothing is kept
 * by fd number and nothing has to be forgotten when an fd is closed and its number reused.
 *
 * - `caps`: whether recvmmsg/sendmmsg may be used. These are the kernel's own (a system call exists or
 *   not), so they stay process-wide: every socket of every engine points at the same shared cells, and
 *   the first refusal spares the others a failed call each. That is only safe because the downgrade rule
 *   is narrow (ffi/batch-io.ts): a batch call is switched off only when the call itself is refused, never
 *   because one datagram was.
 * - sticky TTL/TOS: what the socket's IP_TTL/IP_TOS options are (or will be once queued datagrams leave),
 *   so a run of relayed datagrams with the same TTL/TOS goes without a control message each.
 * - DONT-FRAGMENT, and whether the kernel refused our TTL/TOS control message (then it is left out).
 * - room for GSO/GRO (segments per call), which are per socket because they depend on the route/device.
 */
import {
  IPPROTO_IP, IPPROTO_IPV6, IP_TOS, IP_TTL, IPV6_TCLASS, IPV6_UNICAST_HOPS,
} from "./constants.ts";
import { libc, type Syscalls } from "./libc.ts";
import { closeSocket, openUdpSocket, setDontFragment, setIntOption, type UdpSocketOptions } from "./socket.ts";

export type BatchFeature = "recvmmsg" | "sendmmsg";

/**
 * What the kernel lets us batch. Cells may live in a SharedArrayBuffer so that a downgrade switches the
 * feature off for the whole process, as coturn does (see the file comment for why that is right).
 */
export class UdpCapabilities {
  private readonly cells: Int32Array;
  onDowngrade: ((feature: BatchFeature, errno: number) => void) | null = null;

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
  /** The kernel refused the batch call itself (ENOSYS, EOPNOTSUPP, or EINVAL where sendmsg worked). */
  disable(feature: BatchFeature, errno: number): void {
    const cell = feature === "recvmmsg" ? 0 : 1;
    if (Atomics.compareExchange(this.cells, cell, 1, 0) === 1) this.onDowngrade?.(feature, errno);
  }
}

/** Datagrams in a row asking one socket for the same TTL/TOS before the socket is switched to them. */
export const STICKY_TTL_TOS_AFTER = 8;

/** How a queued datagram gets its TTL/TOS: none asked, a control message, or the socket's options changed first. */
export const TTL_TOS_DEFAULT = 0;
export const TTL_TOS_CMSG = 1;
export const TTL_TOS_CHANGE = 2;

export interface UdpSocketStateOptions {
  /**
   * Relayed TTL/TOS as socket options while they stay the same (coturn's way), a control message
   * otherwise. Off: every datagram that asks for a TTL/TOS carries it as a control message.
   */
  stickyTtlTos?: boolean;
}

export class UdpSocketState {
  readonly fd: number;
  readonly family: 4 | 6;
  readonly caps: UdpCapabilities;
  private readonly sticky: boolean;
  /** TTL/TOS the socket's options have once the queued datagrams are sent (-1: the kernel's default). */
  private ttl = -1;
  private tos = -1;
  /** TTL/TOS asked for by the last datagrams that did not match the options, and how many in a row. */
  private candTtl = -1;
  private candTos = -1;
  private candRun = 0;
  /** DONT-FRAGMENT (RFC 8656 §14.8) as last set on the socket. */
  dontFragment = false;
  /**
   * The kernel refused a datagram with our TTL/TOS control message and took it without (quinn-udp's
   * `sendmsg_einval`): later datagrams go without one (with sticky TTL/TOS, through the options instead).
   */
  cmsgRefused = false;
  /** GSO: datagrams per send call the kernel takes on this socket (1: no UDP_SEGMENT; room for later). */
  maxGsoSegments = 1;
  /** GRO: datagrams the kernel may coalesce into one receive (1: no UDP_GRO; room for later). */
  groSegments = 1;

  constructor(fd: number, family: 4 | 6, caps: UdpCapabilities, options: UdpSocketStateOptions = {}) {
    this.fd = fd;
    this.family = family;
    this.caps = caps;
    this.sticky = options.stickyTtlTos === true;
  }

  /** openUdpSocket, wrapped. Throws SyscallError; never leaks the fd. */
  static open(options: UdpSocketOptions & UdpSocketStateOptions, caps: UdpCapabilities, sys: Syscalls = libc): UdpSocketState {
    return new UdpSocketState(openUdpSocket(options, sys), options.family, caps, options);
  }

  close(sys: Syscalls = libc): void {
    closeSocket(this.fd, sys);
  }

  /** DONT-FRAGMENT on or off; remembered so that only a change costs a system call. */
  setDontFragment(on: boolean, sys: Syscalls = libc): number {
    this.dontFragment = on;
    return setDontFragment(this.fd, this.family, on, sys);
  }

  /**
   * How a datagram queued now with (ttl, tos) (-1: not asked) gets them. TTL_TOS_CHANGE means the
   * options must be set to them before it leaves (flushSendBatch does, in queue order); from then on
   * datagrams with the same TTL/TOS need nothing.
   */
  planTtlTos(ttl: number, tos: number): number {
    const asked = ttl >= 0 || tos >= 0;
    if (!this.sticky) return asked && !this.cmsgRefused ? TTL_TOS_CMSG : TTL_TOS_DEFAULT;
    const curTtl = this.ttl;
    const curTos = this.tos;
    if (ttl === curTtl && tos === curTos) return TTL_TOS_DEFAULT;
    if (this.candTtl === ttl && this.candTos === tos) {
      if (this.candRun < 255) this.candRun++;
    } else {
      this.candTtl = ttl;
      this.candTos = tos;
      this.candRun = 1;
    }
    // A cmsg can only override what it names: it cannot bring back a default under a changed option.
    const cmsgExact = (curTtl === -1 && curTos === -1) || (ttl >= 0 && tos >= 0);
    if (cmsgExact && !this.cmsgRefused && this.candRun < STICKY_TTL_TOS_AFTER) return asked ? TTL_TOS_CMSG : TTL_TOS_DEFAULT;
    this.ttl = ttl;
    this.tos = tos;
    this.candRun = 0;
    return TTL_TOS_CHANGE;
  }

  /**
   * Sets the socket's TTL/TOS options (a planned TTL_TOS_CHANGE). On a refusal they go back to the
   * defaults and false is returned: the caller then sends the affected datagrams with control messages.
   */
  applyTtlTos(ttl: number, tos: number, sys: Syscalls = libc): boolean {
    const v6 = this.family === 6;
    const level = v6 ? IPPROTO_IPV6 : IPPROTO_IP;
    const r1 = setIntOption(this.fd, level, v6 ? IPV6_UNICAST_HOPS : IP_TTL, ttl, sys);
    // IP_TOS has no "default" value: 0 is the default; IPV6_TCLASS takes -1.
    const r2 = setIntOption(this.fd, level, v6 ? IPV6_TCLASS : IP_TOS, v6 || tos >= 0 ? tos : 0, sys);
    if (r1 === 0 && r2 === 0) return true;
    setIntOption(this.fd, level, v6 ? IPV6_UNICAST_HOPS : IP_TTL, -1, sys);
    setIntOption(this.fd, level, v6 ? IPV6_TCLASS : IP_TOS, v6 ? -1 : 0, sys);
    return false;
  }

  /** The options are the kernel's defaults again (after a refused change with no later change queued). */
  resetTtlTos(): void {
    this.ttl = -1;
    this.tos = -1;
    this.candRun = 0;
  }
}
