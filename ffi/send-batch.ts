/**
 * The per-engine send buffers (see recv-batch.ts for the layout idea): datagrams queued during one drain,
 * each with the UdpSocketState of the socket it leaves from, sent by flushSendBatch (batch-io.ts).
 * An entry is one iovec, or two when a small header goes in front of a payload that has no room before
 * it (ChannelData inside a GRO buffer); a run of entries can leave as one UDP_SEGMENT message (GsoMessage,
 * gso-message.ts) whose iovecs are the entries' own, so nothing is copied for GSO either.
 */
import {
  IOVEC, MMSGHDR, MSGHDR, SEND_CONTROL_SPACE, SOCKADDR_SLOT,
  writePointer,
} from "./layout.ts";
import { sockaddrFamily, writeSockaddr } from "./sockaddr.ts";
import { AF_INET6 } from "./constants.ts";
import { writeTtlTos } from "./cmsg.ts";
import { MAX_DATAGRAM, addressOf } from "./recv-batch.ts";
import { TTL_TOS_CHANGE, TTL_TOS_CMSG, type UdpSocketState } from "./udp-state.ts";

/** iovecs per entry: a header and a payload. */
export const IOVECS_PER_ENTRY = 2;
/** Bytes of header an entry can carry in its own slot (a ChannelData header is 4). */
export const ENTRY_HEADER_MAX = 8;
/** Payloads up to this many bytes are copied by a loop, longer ones by TypedArray.set. */
const SMALL_COPY = 256;

/**
 * Outgoing datagrams collected during one drain and sent with sendmmsg, grouped by socket. A payload
 * that is a view into a registered receive arena is sent from there without a copy (the engine flushes
 * before it receives into that arena again); anything else is copied into a slot.
 */
export class SendBatch {
  readonly capacity: number;
  readonly slotSize: number;
  private readonly structBuffer: ArrayBuffer;
  /** Word and byte views of the structs (GsoMessage reads the entries' iovecs, names and cmsgs here). */
  readonly u32: Uint32Array;
  readonly bytes: Uint8Array;
  readonly vecAddress: number;
  readonly iovOffset: number;
  readonly namesOffset: number;
  readonly controlOffset: number;
  private readonly headerOffset: number;
  private readonly payloadBuffer: ArrayBuffer;
  private readonly payload: Uint8Array;
  private readonly payloadAddress: number;
  /** Socket of each queued entry. */
  readonly sockets: UdpSocketState[];
  count = 0;
  private borrowBuffer: ArrayBufferLike | null = null;
  private borrowView: Uint8Array | null = null;
  private borrowAddress = 0;
  /** Per entry: TTL/TOS asked for, and whether the socket's options change to them before it is sent. */
  readonly ttls: Int16Array;
  readonly toss: Int16Array;
  readonly change: Uint8Array;
  /** Per entry: bytes it sends (header and payload) and its iovec count (1 or 2). */
  readonly lengths: Int32Array;
  readonly iovCounts: Uint8Array;

  constructor(capacity = 32, slotSize = MAX_DATAGRAM) {
    this.capacity = capacity;
    this.slotSize = slotSize;
    this.iovOffset = capacity * MMSGHDR.size;
    this.namesOffset = this.iovOffset + capacity * IOVECS_PER_ENTRY * IOVEC.size;
    this.controlOffset = this.namesOffset + capacity * SOCKADDR_SLOT;
    this.headerOffset = this.controlOffset + capacity * SEND_CONTROL_SPACE;
    this.structBuffer = new ArrayBuffer(this.headerOffset + capacity * ENTRY_HEADER_MAX);
    this.u32 = new Uint32Array(this.structBuffer);
    this.bytes = new Uint8Array(this.structBuffer);
    this.vecAddress = addressOf(this.structBuffer);
    this.payloadBuffer = new ArrayBuffer(capacity * slotSize);
    this.payload = new Uint8Array(this.payloadBuffer);
    this.payloadAddress = addressOf(this.payloadBuffer);
    this.sockets = new Array<UdpSocketState>(capacity);
    this.ttls = new Int16Array(capacity);
    this.toss = new Int16Array(capacity);
    this.change = new Uint8Array(capacity);
    this.lengths = new Int32Array(capacity);
    this.iovCounts = new Uint8Array(capacity).fill(1);
    for (let i = 0; i < capacity; i++) {
      const hdr = i * MMSGHDR.size;
      writePointer(this.u32, hdr + MSGHDR.name, this.vecAddress + this.namesOffset + i * SOCKADDR_SLOT);
      writePointer(this.u32, hdr + MSGHDR.iov, this.vecAddress + this.iovOffset + i * IOVECS_PER_ENTRY * IOVEC.size);
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

  /** Writes entry i's TTL/TOS as control messages (when its socket option change could not be made). */
  attachTtlTos(i: number): void {
    const controlLen = writeTtlTos(this.bytes, this.controlOffset + i * SEND_CONTROL_SPACE, this.isIpv6(i), this.ttls[i]!, this.toss[i]!);
    this.setControl(i, controlLen);
  }

  /** Whether entry i carries a control message. */
  hasControl(i: number): boolean {
    return this.u32[(i * MMSGHDR.size + MSGHDR.controllen) >>> 2] !== 0;
  }

  /** Takes entry i's control message away (a kernel that refused it gets the datagram without). */
  dropControl(i: number): void {
    this.setControl(i, 0);
  }

  private setControl(i: number, controlLen: number): void {
    const hdr = i * MMSGHDR.size;
    writePointer(this.u32, hdr + MSGHDR.control, controlLen ? this.vecAddress + this.controlOffset + i * SEND_CONTROL_SPACE : 0);
    this.u32[(hdr + MSGHDR.controllen) >>> 2] = controlLen; // a size_t below 2^32: its high word stays 0
  }

  get full(): boolean {
    return this.count === this.capacity;
  }

  /**
   * Queues `data` for `socket` towards address:port (4- or 16-byte address), with TTL/TOS when >= 0
   * (a control message, or the socket's options: see UdpSocketState.planTtlTos). The caller flushes when
   * `full`. Returns the entry index.
   */
  push(socket: UdpSocketState, address: Uint8Array, port: number, data: Uint8Array, ttl = -1, tos = -1): number {
    return this.pushRange(socket, address, port, data, 0, data.length, ttl, tos);
  }

  /** push() of data[offset, offset + length): a hot path passes a whole arena and a range, not a view. */
  pushRange(socket: UdpSocketState, address: Uint8Array, port: number, data: Uint8Array, offset: number, length: number, ttl = -1, tos = -1): number {
    const i = this.begin(socket, address, port, ttl, tos);
    this.lengths[i] = this.place(i, this.iovOffset + i * IOVECS_PER_ENTRY * IOVEC.size, data, offset, length);
    if (this.iovCounts[i] !== 1) {
      this.iovCounts[i] = 1; // the msghdr already says 1 unless this entry last carried a header
      this.u32[(i * MMSGHDR.size + MSGHDR.iovlen) >>> 2] = 1;
    }
    return i;
  }

  /**
   * pushRange() with `header[headerOffset, +headerLength)` (at most ENTRY_HEADER_MAX bytes, copied into
   * the entry's own slot) sent in front of the payload as a second iovec: for a payload with no room
   * before it to write the header in place.
   */
  pushWithHeader(
    socket: UdpSocketState, address: Uint8Array, port: number, header: Uint8Array, headerOffset: number, headerLength: number,
    data: Uint8Array, offset: number, length: number, ttl = -1, tos = -1,
  ): number {
    const i = this.begin(socket, address, port, ttl, tos);
    const iov = this.iovOffset + i * IOVECS_PER_ENTRY * IOVEC.size;
    const slot = this.headerOffset + i * ENTRY_HEADER_MAX;
    const n = Math.min(headerLength, ENTRY_HEADER_MAX);
    for (let k = 0; k < n; k++) this.bytes[slot + k] = header[headerOffset + k]!;
    writePointer(this.u32, iov + IOVEC.base, this.vecAddress + slot);
    writePointer(this.u32, iov + IOVEC.len, n);
    this.lengths[i] = n + this.place(i, iov + IOVEC.size, data, offset, length);
    this.iovCounts[i] = 2;
    writePointer(this.u32, i * MMSGHDR.size + MSGHDR.iovlen, 2);
    return i;
  }

  /** Takes entry i, its socket, destination and TTL/TOS plan. */
  private begin(socket: UdpSocketState, address: Uint8Array, port: number, ttl: number, tos: number): number {
    const i = this.count++;
    const hdr = i * MMSGHDR.size;
    this.sockets[i] = socket;
    const nameLen = writeSockaddr(this.bytes, this.namesOffset + i * SOCKADDR_SLOT, address, port);
    this.u32[(hdr + MSGHDR.namelen) >>> 2] = nameLen;
    this.ttls[i] = ttl;
    this.toss[i] = tos;
    const plan = socket.planTtlTos(ttl, tos);
    this.change[i] = plan === TTL_TOS_CHANGE ? 1 : 0;
    let controlLen = 0;
    if (plan === TTL_TOS_CMSG) {
      controlLen = writeTtlTos(this.bytes, this.controlOffset + i * SEND_CONTROL_SPACE, address.length === 16, ttl, tos);
    }
    writePointer(this.u32, hdr + MSGHDR.control, controlLen ? this.vecAddress + this.controlOffset + i * SEND_CONTROL_SPACE : 0);
    this.u32[(hdr + MSGHDR.controllen) >>> 2] = controlLen; // a size_t below 2^32: its high word stays 0
    this.u32[(hdr + MSGHDR.flags) >>> 2] = 0;
    return i;
  }

  /** Points the iovec at byte offset `iov` at the payload: in place when borrowed, else copied into entry i's slot. */
  private place(i: number, iov: number, data: Uint8Array, offset: number, length: number): number {
    let base: number;
    if (data === this.borrowView) {
      base = this.borrowAddress + offset;
    } else if (data.byteOffset !== 0 && data.buffer === this.borrowBuffer) {
      // Another view of the arena (a Send indication's decoded message; datagrams never start at its byte 0,
      // and a view that did would only be copied). byteOffset first: the native `buffer` getter costs
      // ~0.5 µs in a thread just woken from sleep, and a TCP/TLS connection's buffer starts at 0.
      base = this.borrowAddress + data.byteOffset + offset;
    } else {
      length = this.copyIntoSlot(i, data, offset, length);
      base = this.payloadAddress + i * this.slotSize;
    }
    writePointer(this.u32, iov + IOVEC.base, base);
    this.u32[(iov + IOVEC.len) >>> 2] = length; // a size_t below 2^32: its high word stays 0
    return length;
  }

  /** Copies data[offset, offset + length) into entry i's slot (as much as fits); returns the bytes copied. */
  private copyIntoSlot(i: number, data: Uint8Array, offset: number, length: number): number {
    const n = Math.min(length, this.slotSize);
    const slot = i * this.slotSize;
    if (n <= SMALL_COPY) {
      // A relayed message from a TCP/TLS client: copied byte by byte in the JIT's own code; subarray +
      // set cost ~0.6 µs in a thread woken from sleep (cold native paths), this a third of that.
      const payload = this.payload;
      for (let k = 0; k < n; k++) payload[slot + k] = data[offset + k]!;
    } else {
      this.payload.set(offset === 0 && n === data.length ? data : data.subarray(offset, offset + n), slot);
    }
    return n;
  }

  msghdrAddress(i: number): number {
    return this.vecAddress + i * MMSGHDR.size;
  }
  /** Bytes entry i sends (its header, if any, and its payload). */
  entryLength(i: number): number {
    return this.lengths[i]!;
  }
  isIpv6(i: number): boolean {
    return sockaddrFamily(this.bytes, this.namesOffset + i * SOCKADDR_SLOT) === AF_INET6;
  }

  clear(): void {
    this.count = 0;
  }
}
