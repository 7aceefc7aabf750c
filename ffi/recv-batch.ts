/**
 * The per-engine receive buffers: mmsghdr/iovec/sockaddr/cmsg arrays and payload slots, allocated once
 * as ArrayBuffers whose addresses are written into the structs at construction. Nothing here is per
 * socket: thousands of relay sockets share one RecvBatch (and one SendBatch, send-batch.ts) per engine;
 * what is per socket (capabilities, sticky TTL/TOS) lives in each socket's UdpSocketState (udp-state.ts).
 */
import { ptr } from "bun:ffi";
import { IOVEC, MMSGHDR, MSGHDR, RECV_CONTROL_SPACE, SOCKADDR_SLOT, writePointer } from "./layout.ts";
import { sockaddrFamily, sockaddrIn6Address, sockaddrInAddress, sockaddrPort } from "./sockaddr.ts";

/** coturn's IOA_UDP_RECVMMSG_MAX_BATCH. */
export const RECV_BATCH_MAX = 16;
/** Large enough for any UDP datagram, so nothing is ever truncated. */
export const MAX_DATAGRAM = 65536;

/**
 * Datagrams in a received buffer of `length` bytes whose UDP_GRO control message gave `groSize` (0: none):
 * the kernel coalesced segments of groSize bytes, the last possibly shorter, so the cut points are every
 * groSize bytes.
 */
export function groSegmentCount(length: number, groSize: number): number {
  return groSize > 0 && length > groSize ? Math.ceil(length / groSize) : 1;
}

export function addressOf(buffer: ArrayBuffer): number {
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

