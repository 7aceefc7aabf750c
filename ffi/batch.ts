/**
 * The per-engine batch buffers: mmsghdr/iovec/sockaddr/cmsg arrays and payload slots, allocated once
 * as ArrayBuffers whose addresses are written into the structs at construction. Nothing here is per
 * socket: thousands of relay sockets share one RecvBatch and one SendBatch per engine.
 */
import { ptr } from "bun:ffi";
import {
  IOVEC, MMSGHDR, MSGHDR, RECV_CONTROL_SPACE, SEND_CONTROL_SPACE, SOCKADDR_SLOT,
  writePointer,
} from "./layout.ts";
import { sockaddrFamily, sockaddrIn6Address, sockaddrInAddress, sockaddrPort, writeSockaddr } from "./sockaddr.ts";
import { AF_INET6 } from "./constants.ts";
import { writeTtlTos } from "./cmsg.ts";

/** Datagrams in a row asking one socket for the same TTL/TOS before the socket is switched to them. */
export const STICKY_TTL_TOS_AFTER = 8;

/** coturn's IOA_UDP_RECVMMSG_MAX_BATCH. */
export const RECV_BATCH_MAX = 16;
/** Large enough for any UDP datagram, so nothing is ever truncated. */
export const MAX_DATAGRAM = 65536;

function addressOf(buffer: ArrayBuffer): number {
  return ptr(buffer) as unknown as number;
}

export class RecvBatch {
  readonly capacity: number;
  /** Bytes the kernel may write per datagram. */
  readonly slotSize: number;
  /**
   * Bytes kept free before each datagram, so that a header can be put in front of it in place (a relay
   * turning peer data into ChannelData sends it from the slot without a copy).
   */
  readonly headroom: number;
  /** Distance between two slots: headroom + slotSize. */
  readonly stride: number;
  /** Payload slots; kept referenced so their addresses in the iovecs stay valid. */
  readonly payloadBuffer: ArrayBuffer;
  readonly payload: Uint8Array;
  readonly payloadAddress: number;
  /** The mmsghdr/iovec/sockaddr/cmsg structs, and a word view of them (a fake kernel in a bench writes here). */
  readonly structBuffer: ArrayBuffer;
  readonly u32: Uint32Array;
  /** Source sockaddrs, SOCKADDR_SLOT bytes each. */
  readonly names: Uint8Array;
  /** Control buffers, RECV_CONTROL_SPACE bytes each. */
  readonly control: Uint8Array;
  readonly vecAddress: number;
  private readonly namesOffset: number;
  private readonly controlOffset: number;

  constructor(capacity = RECV_BATCH_MAX, slotSize = MAX_DATAGRAM, headroom = 0) {
    this.capacity = capacity;
    this.slotSize = slotSize;
    this.headroom = headroom;
    this.stride = headroom + slotSize;
    const iovOffset = capacity * MMSGHDR.size;
    this.namesOffset = iovOffset + capacity * IOVEC.size;
    this.controlOffset = this.namesOffset + capacity * SOCKADDR_SLOT;
    this.structBuffer = new ArrayBuffer(this.controlOffset + capacity * RECV_CONTROL_SPACE);
    this.payloadBuffer = new ArrayBuffer(capacity * this.stride);
    this.payload = new Uint8Array(this.payloadBuffer);
    this.u32 = new Uint32Array(this.structBuffer);
    const bytes = new Uint8Array(this.structBuffer);
    this.names = bytes.subarray(this.namesOffset, this.controlOffset);
    this.control = bytes.subarray(this.controlOffset);
    this.vecAddress = addressOf(this.structBuffer);
    this.payloadAddress = addressOf(this.payloadBuffer);
    for (let i = 0; i < capacity; i++) {
      const hdr = i * MMSGHDR.size;
      const iov = iovOffset + i * IOVEC.size;
      writePointer(this.u32, iov + IOVEC.base, this.payloadAddress + i * this.stride + headroom);
      writePointer(this.u32, iov + IOVEC.len, slotSize);
      writePointer(this.u32, hdr + MSGHDR.name, this.vecAddress + this.namesOffset + i * SOCKADDR_SLOT);
      writePointer(this.u32, hdr + MSGHDR.iov, this.vecAddress + iov);
      writePointer(this.u32, hdr + MSGHDR.iovlen, 1);
      writePointer(this.u32, hdr + MSGHDR.control, this.vecAddress + this.controlOffset + i * RECV_CONTROL_SPACE);
    }
    this.dirty = capacity;
    this.prepare(capacity);
  }

  /** Records that a system call may have written entries [0, n). */
  used(n: number): void {
    if (n > this.dirty) this.dirty = Math.min(n, this.capacity);
  }

  /** Entries the kernel may have written since the last prepare (it only touches those it filled). */
  private dirty: number;

  /**
   * The kernel overwrites namelen/controllen/flags of the entries it fills; put them back before the next
   * call over the first n entries. Only entries used since the last call need it.
   */
  prepare(n: number): void {
    const u32 = this.u32;
    const end = Math.min(n, this.dirty);
    this.dirty = 0;
    for (let i = 0; i < end; i++) {
      const h = (i * MMSGHDR.size) >>> 2;
      u32[h + (MSGHDR.namelen >>> 2)] = SOCKADDR_SLOT;
      u32[h + (MSGHDR.controllen >>> 2)] = RECV_CONTROL_SPACE;
      u32[h + (MSGHDR.controllen >>> 2) + 1] = 0;
      u32[h + (MSGHDR.flags >>> 2)] = 0;
    }
  }

  /** Address of entry i's msghdr (the first member of its mmsghdr), for the one-datagram recvmsg path. */
  msghdrAddress(i: number): number {
    return this.vecAddress + i * MMSGHDR.size;
  }

  length(i: number): number {
    return this.u32[(i * MMSGHDR.size + MMSGHDR.len) >>> 2]!;
  }
  setLength(i: number, n: number): void {
    this.u32[(i * MMSGHDR.size + MMSGHDR.len) >>> 2] = n;
  }
  flags(i: number): number {
    return this.u32[(i * MMSGHDR.size + MSGHDR.flags) >>> 2]!;
  }
  controlLength(i: number): number {
    return this.u32[(i * MMSGHDR.size + MSGHDR.controllen) >>> 2]!;
  }
  controlOffsetOf(i: number): number {
    return i * RECV_CONTROL_SPACE;
  }
  /** Where datagram i starts in `payload` (the hot path passes payload, offset and length: no view to allocate). */
  datagramOffset(i: number): number {
    return i * this.stride + this.headroom;
  }
  /** A view of datagram i's bytes (valid until the next receive into this batch). */
  datagram(i: number): Uint8Array {
    const start = i * this.stride + this.headroom;
    return this.payload.subarray(start, start + this.length(i));
  }
  sourceFamily(i: number): number {
    return sockaddrFamily(this.names, i * SOCKADDR_SLOT);
  }
  sourcePort(i: number): number {
    return sockaddrPort(this.names, i * SOCKADDR_SLOT);
  }
  /** IPv4 source as a host-order u32. */
  sourceIpv4(i: number): number {
    return sockaddrInAddress(this.names, i * SOCKADDR_SLOT);
  }
  /** IPv6 source as a view (copy to keep). */
  sourceIpv6(i: number): Uint8Array {
    return sockaddrIn6Address(this.names, i * SOCKADDR_SLOT);
  }
}

/**
 * Outgoing datagrams collected during one drain and sent with sendmmsg, grouped by socket. A payload
 * that is a view into a registered receive arena is sent from there without a copy (the engine flushes
 * before it receives into that arena again); anything else is copied into a slot.
 */
export class SendBatch {
  readonly capacity: number;
  readonly slotSize: number;
  private readonly structBuffer: ArrayBuffer;
  private readonly u32: Uint32Array;
  private readonly bytes: Uint8Array;
  readonly vecAddress: number;
  private readonly iovOffset: number;
  private readonly namesOffset: number;
  private readonly controlOffset: number;
  private readonly payloadBuffer: ArrayBuffer;
  private readonly payload: Uint8Array;
  private readonly payloadAddress: number;
  /** Socket of each queued entry. */
  readonly fds: Int32Array;
  count = 0;
  private borrowBuffer: ArrayBufferLike | null = null;
  private borrowView: Uint8Array | null = null;
  private borrowAddress = 0;
  /**
   * Sticky TTL/TOS (off unless `stickyTtlTos(true)`): instead of a control message on every datagram, a
   * socket that keeps sending with the same TTL/TOS gets them as socket options (IP_TTL/IP_TOS, coturn's
   * way) and its datagrams go without cmsg. Per entry, `change` says to set the socket's options to the
   * entry's (ttl, tos) before it is sent (flushSendBatch does, in order); entries without cmsg and
   * without change go out under the options set by the socket's last change. Only for a user that calls
   * `forgetSocket` whenever an fd is closed or opened, since the state is kept by fd number.
   */
  private sticky = false;
  /** Per fd: the TTL/TOS its options will have once the queued entries are sent (-1: kernel default). */
  private sockTtl = new Int16Array(0);
  private sockTos = new Int16Array(0);
  /** Per fd: the TTL/TOS asked for by the last datagrams that did not match, and how many in a row. */
  private candTtl = new Int16Array(0);
  private candTos = new Int16Array(0);
  private candRun = new Uint8Array(0);
  /** Per entry: TTL/TOS asked for, and whether the socket's options change to them before it is sent. */
  readonly ttls: Int16Array;
  readonly toss: Int16Array;
  readonly change: Uint8Array;

  constructor(capacity = 32, slotSize = MAX_DATAGRAM) {
    this.capacity = capacity;
    this.slotSize = slotSize;
    this.iovOffset = capacity * MMSGHDR.size;
    this.namesOffset = this.iovOffset + capacity * IOVEC.size;
    this.controlOffset = this.namesOffset + capacity * SOCKADDR_SLOT;
    this.structBuffer = new ArrayBuffer(this.controlOffset + capacity * SEND_CONTROL_SPACE);
    this.u32 = new Uint32Array(this.structBuffer);
    this.bytes = new Uint8Array(this.structBuffer);
    this.vecAddress = addressOf(this.structBuffer);
    this.payloadBuffer = new ArrayBuffer(capacity * slotSize);
    this.payload = new Uint8Array(this.payloadBuffer);
    this.payloadAddress = addressOf(this.payloadBuffer);
    this.fds = new Int32Array(capacity);
    this.ttls = new Int16Array(capacity);
    this.toss = new Int16Array(capacity);
    this.change = new Uint8Array(capacity);
    for (let i = 0; i < capacity; i++) {
      const hdr = i * MMSGHDR.size;
      writePointer(this.u32, hdr + MSGHDR.name, this.vecAddress + this.namesOffset + i * SOCKADDR_SLOT);
      writePointer(this.u32, hdr + MSGHDR.iov, this.vecAddress + this.iovOffset + i * IOVEC.size);
      writePointer(this.u32, hdr + MSGHDR.iovlen, 1);
    }
  }

  /**
   * Lets payloads that live in `arena` (a view of a whole buffer, at `address`) be sent in place: ranges of
   * `arena` itself are recognised by identity, without reading the (native) `buffer` getter per datagram;
   * other views of its buffer by that getter.
   */
  borrowFrom(arena: Uint8Array, address: number): void {
    if (arena.byteOffset !== 0) throw new RangeError("borrowFrom: the arena must view its buffer from byte 0");
    this.borrowView = arena;
    this.borrowBuffer = arena.buffer;
    this.borrowAddress = address;
  }

  /** Switches sticky TTL/TOS on (see `sticky`). The caller must call forgetSocket on every open/close. */
  stickyTtlTos(on: boolean): void {
    this.sticky = on;
  }

  /** The fd was closed or newly opened: its options are the kernel's defaults. */
  forgetSocket(fd: number): void {
    if (fd < 0 || fd >= this.sockTtl.length) return;
    this.sockTtl[fd] = -1;
    this.sockTos[fd] = -1;
    this.candRun[fd] = 0;
  }

  private growFdState(fd: number): void {
    let n = Math.max(64, this.sockTtl.length);
    while (n <= fd) n *= 2;
    const grow = <T extends Int16Array | Uint8Array>(old: T, fresh: T, fill: number): T => {
      fresh.fill(fill);
      fresh.set(old);
      return fresh;
    };
    this.sockTtl = grow(this.sockTtl, new Int16Array(n), -1);
    this.sockTos = grow(this.sockTos, new Int16Array(n), -1);
    this.candTtl = grow(this.candTtl, new Int16Array(n), -1);
    this.candTos = grow(this.candTos, new Int16Array(n), -1);
    this.candRun = grow(this.candRun, new Uint8Array(n), 0);
  }

  /** Writes entry i's TTL/TOS as control messages (when its socket option change could not be made). */
  attachTtlTos(i: number): void {
    const hdr = i * MMSGHDR.size;
    const ipv6 = this.isIpv6(i);
    const controlLen = writeTtlTos(this.bytes, this.controlOffset + i * SEND_CONTROL_SPACE, ipv6, this.ttls[i]!, this.toss[i]!);
    writePointer(this.u32, hdr + MSGHDR.control, controlLen ? this.vecAddress + this.controlOffset + i * SEND_CONTROL_SPACE : 0);
    writePointer(this.u32, hdr + MSGHDR.controllen, controlLen);
  }

  /** Whether entry i must carry its own TTL/TOS cmsg; with sticky TTL/TOS, may mark a change instead. */
  private needsCmsg(i: number, fd: number, ttl: number, tos: number): boolean {
    this.change[i] = 0;
    if (!this.sticky) return ttl >= 0 || tos >= 0;
    if (fd >= this.sockTtl.length) this.growFdState(fd);
    const curTtl = this.sockTtl[fd]!;
    const curTos = this.sockTos[fd]!;
    if (ttl === curTtl && tos === curTos) return false;
    if (this.candTtl[fd] === ttl && this.candTos[fd] === tos) {
      if (this.candRun[fd]! < 255) this.candRun[fd]!++;
    } else {
      this.candTtl[fd] = ttl;
      this.candTos[fd] = tos;
      this.candRun[fd] = 1;
    }
    // A cmsg can only override what it names: it cannot bring back a default under a changed option.
    const cmsgExact = (curTtl === -1 && curTos === -1) || (ttl >= 0 && tos >= 0);
    if (cmsgExact && this.candRun[fd]! < STICKY_TTL_TOS_AFTER) return ttl >= 0 || tos >= 0;
    this.change[i] = 1;
    this.sockTtl[fd] = ttl;
    this.sockTos[fd] = tos;
    this.candRun[fd] = 0;
    return false;
  }

  get full(): boolean {
    return this.count === this.capacity;
  }

  /**
   * Queues `data` for `fd` towards address:port (4- or 16-byte address), with TTL/TOS control
   * messages when >= 0. The caller flushes when `full`. Returns the entry index.
   */
  push(fd: number, address: Uint8Array, port: number, data: Uint8Array, ttl = -1, tos = -1): number {
    return this.pushRange(fd, address, port, data, 0, data.length, ttl, tos);
  }

  /** push() of data[offset, offset + length): a hot path passes a whole arena and a range, not a view. */
  pushRange(fd: number, address: Uint8Array, port: number, data: Uint8Array, offset: number, length: number, ttl = -1, tos = -1): number {
    const i = this.count++;
    const hdr = i * MMSGHDR.size;
    const iov = this.iovOffset + i * IOVEC.size;
    this.fds[i] = fd;
    const nameLen = writeSockaddr(this.bytes, this.namesOffset + i * SOCKADDR_SLOT, address, port);
    this.u32[(hdr + MSGHDR.namelen) >>> 2] = nameLen;
    let base: number;
    if (data === this.borrowView) {
      base = this.borrowAddress + offset;
    } else if (data.buffer === this.borrowBuffer) {
      base = this.borrowAddress + data.byteOffset + offset;
    } else {
      const n = Math.min(length, this.slotSize);
      this.payload.set(offset === 0 && n === data.length ? data : data.subarray(offset, offset + n), i * this.slotSize);
      base = this.payloadAddress + i * this.slotSize;
      length = n;
    }
    writePointer(this.u32, iov + IOVEC.base, base);
    writePointer(this.u32, iov + IOVEC.len, length);
    this.ttls[i] = ttl;
    this.toss[i] = tos;
    let controlLen = 0;
    if (this.needsCmsg(i, fd, ttl, tos)) {
      controlLen = writeTtlTos(this.bytes, this.controlOffset + i * SEND_CONTROL_SPACE, address.length === 16, ttl, tos);
    }
    writePointer(this.u32, hdr + MSGHDR.control, controlLen ? this.vecAddress + this.controlOffset + i * SEND_CONTROL_SPACE : 0);
    writePointer(this.u32, hdr + MSGHDR.controllen, controlLen);
    this.u32[(hdr + MSGHDR.flags) >>> 2] = 0;
    return i;
  }

  msghdrAddress(i: number): number {
    return this.vecAddress + i * MMSGHDR.size;
  }
  entryLength(i: number): number {
    return this.u32[(this.iovOffset + i * IOVEC.size + IOVEC.len) >>> 2]!;
  }
  isIpv6(i: number): boolean {
    return sockaddrFamily(this.bytes, this.namesOffset + i * SOCKADDR_SLOT) === AF_INET6;
  }

  clear(): void {
    this.count = 0;
  }
}
