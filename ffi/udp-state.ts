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
 * - GSO/GRO (segments per call), which are per socket because they depend on the route/device: UDP_GRO
 *   is asked for at open and kept only if the kernel takes it; UDP_SEGMENT is probed at open (setting
 *   the socket-wide segment size to 0, "none", succeeds only where the kernel knows the option) and
 *   switched off for this socket alone when the kernel keeps refusing GSO sends (quinn-udp does the same
 *   on EIO: a device without checksum offload).
 */
import {
  IPPROTO_IP, IPPROTO_IPV6, IP_TOS, IP_TTL, IPV6_TCLASS, IPV6_UNICAST_HOPS, SOL_UDP, UDP_GRO,
  UDP_MAX_SEGMENTS, UDP_SEGMENT,
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
  /** Send runs of equal-sized datagrams as one UDP_SEGMENT message (if the kernel knows the option). */
  gso?: boolean;
  /** Receive coalesced UDP_GRO buffers (if the kernel takes the option). */
  gro?: boolean;
}

/** GSO sends in a row the kernel refused (EIO/EINVAL) before GSO goes off for that socket. */
export const GSO_REFUSALS_BEFORE_OFF = 3;

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
  /** GSO: datagrams per send call the kernel takes on this socket (1: no UDP_SEGMENT). */
  maxGsoSegments = 1;
  /** GRO: datagrams the kernel may coalesce into one receive (1: no UDP_GRO). */
  groSegments = 1;
  /** GSO sends refused in a row (reset by one that leaves). */
  private gsoRefusals = 0;

  constructor(fd: number, family: 4 | 6, caps: UdpCapabilities, options: UdpSocketStateOptions = {}) {
    this.fd = fd;
    this.family = family;
    this.caps = caps;
    this.sticky = options.stickyTtlTos === true;
  }

  /** openUdpSocket, wrapped. Throws SyscallError; never leaks the fd. */
  static open(options: UdpSocketOptions & UdpSocketStateOptions, caps: UdpCapabilities, sys: Syscalls = libc): UdpSocketState {
    const state = new UdpSocketState(openUdpSocket(options, sys), options.family, caps, options);
    if (options.gro) state.enableGro(sys);
    if (options.gso) state.enableGso(sys);
    return state;
  }

  /** Asks for UDP_GRO. Returns whether the kernel took it (if not, receives stay one datagram each). */
  enableGro(sys: Syscalls = libc): boolean {
    this.groSegments = setIntOption(this.fd, SOL_UDP, UDP_GRO, 1, sys) === 0 ? UDP_MAX_SEGMENTS : 1;
    return this.groSegments > 1;
  }

  /** Probes UDP_SEGMENT (socket-wide size 0: none, so sends without the cmsg are unchanged). */
  enableGso(sys: Syscalls = libc): boolean {
    this.maxGsoSegments = setIntOption(this.fd, SOL_UDP, UDP_SEGMENT, 0, sys) === 0 ? UDP_MAX_SEGMENTS : 1;
    this.gsoRefusals = 0;
    return this.maxGsoSegments > 1;
  }

  /**
   * The kernel refused a GSO send (EIO, EINVAL): that run goes one by one. After GSO_REFUSALS_BEFORE_OFF
   * in a row, GSO is off for this socket (only). Returns whether it is off now.
   */
  gsoRefused(): boolean {
    if (++this.gsoRefusals < GSO_REFUSALS_BEFORE_OFF) return false;
    this.maxGsoSegments = 1;
    return true;
  }

  /** A GSO send left: earlier refusals were the datagrams', not the socket's. */
  gsoAccepted(): void {
    this.gsoRefusals = 0;
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
