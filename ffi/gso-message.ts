/**
 * UDP GSO (UDP_SEGMENT) on send: a run of queued datagrams for one socket and one destination, all of one
 * size but the last (which may be shorter), leaves as ONE msghdr. The kernel cuts the concatenated iovecs
 * every `gso_size` bytes, so the message's iovecs are simply the entries' own (each pointing into the
 * receive slots, or a header slot then a payload): nothing is copied. Limits are the kernel's: at most
 * UDP_MAX_SEGMENTS segments and one IP datagram's worth of bytes (a burst of 64 x 1200 is refused).
 * The model is quinn-udp's (src/unix.rs): a UDP_SEGMENT cmsg with the segment size beside the others.
 */
import { SOL_UDP, UDP_MAX_SEGMENTS, UDP_SEGMENT } from "./constants.ts";
import { GSO_CONTROL_SPACE, IOVEC, MMSGHDR, MSGHDR, SEND_CONTROL_SPACE, SOCKADDR_SLOT, cmsgLen, cmsgSpace, writePointer } from "./layout.ts";
import { addressOf } from "./recv-batch.ts";
import { IOVECS_PER_ENTRY, type SendBatch } from "./send-batch.ts";

const SEGMENT_CMSG_LEN = cmsgLen(2);
const SEGMENT_CMSG_SPACE = cmsgSpace(2);

/** Bytes one GSO send may carry: the payload of one IPv4 datagram (65535 - 20 - 8). */
export const GSO_MAX_BYTES = 65507;

export class GsoMessage {
  private readonly structBuffer = new ArrayBuffer(MMSGHDR.size + UDP_MAX_SEGMENTS * IOVECS_PER_ENTRY * IOVEC.size + GSO_CONTROL_SPACE);
  private readonly u32 = new Uint32Array(this.structBuffer);
  private readonly bytes = new Uint8Array(this.structBuffer);
  /** Address of the msghdr for sendmsg. */
  readonly address = addressOf(this.structBuffer);
  private readonly iovOffset = MMSGHDR.size;
  private readonly controlOffset = MMSGHDR.size + UDP_MAX_SEGMENTS * IOVECS_PER_ENTRY * IOVEC.size;

  /**
   * Where the GSO run starting at entry i ends (exclusive), within [i, end) and `maxSegments`: entries for
   * the same socket (the caller's run), the same destination, the same TTL/TOS and control message, each
   * the size of the first but the last, which may be shorter (a shorter one ends the run). Returns i + 1
   * when no run of two or more starts there.
   */
  static runEnd(batch: SendBatch, i: number, end: number, maxSegments: number): number {
    const lengths = batch.lengths;
    const size = lengths[i]!;
    if (size === 0) return i + 1; // a gso_size of 0 means "no segmentation"
    const limit = Math.min(end, i + maxSegments);
    const u32 = batch.u32;
    const change = batch.change;
    const ttls = batch.ttls;
    const toss = batch.toss;
    const ttl = ttls[i]!;
    const tos = toss[i]!;
    const controlLen = u32[(i * MMSGHDR.size + MSGHDR.controllen) >>> 2]!;
    const nameLen = u32[(i * MMSGHDR.size + MSGHDR.namelen) >>> 2]!;
    const name = (batch.namesOffset + i * SOCKADDR_SLOT) >>> 2;
    const nameWords = nameLen >>> 2;
    let total = size;
    let j = i + 1;
    while (j < limit) {
      const len = lengths[j]!;
      if (len > size || len === 0 || total + len > GSO_MAX_BYTES) break;
      if (change[j] !== 0 || ttls[j] !== ttl || toss[j] !== tos) break;
      const hdr = (j * MMSGHDR.size) >>> 2;
      if (u32[hdr + (MSGHDR.controllen >>> 2)] !== controlLen || u32[hdr + (MSGHDR.namelen >>> 2)] !== nameLen) break;
      // Only the bytes the sockaddr has (16 or 28): the rest of a slot may hold an older, longer one.
      const other = (batch.namesOffset + j * SOCKADDR_SLOT) >>> 2;
      let w = 0;
      while (w < nameWords && u32[name + w] === u32[other + w]) w++;
      if (w < nameWords) break;
      total += len;
      j++;
      if (len < size) break; // the shorter last segment
    }
    return j;
  }

  /** Lays out entries [i, k) as one message (the segment size is entry i's). Returns the msghdr's address. */
  build(batch: SendBatch, i: number, k: number): number {
    const u32 = this.u32;
    const src = batch.u32;
    let iovs = 0;
    for (let e = i; e < k; e++) {
      const from = (batch.iovOffset + e * IOVECS_PER_ENTRY * IOVEC.size) >>> 2;
      const words = (batch.iovCounts[e]! * IOVEC.size) >>> 2;
      const to = (this.iovOffset + iovs * IOVEC.size) >>> 2;
      for (let w = 0; w < words; w++) u32[to + w] = src[from + w]!;
      iovs += batch.iovCounts[e]!;
    }
    const hdr = i * MMSGHDR.size;
    writePointer(u32, MSGHDR.name, batch.vecAddress + batch.namesOffset + i * SOCKADDR_SLOT);
    u32[MSGHDR.namelen >>> 2] = src[(hdr + MSGHDR.namelen) >>> 2]!;
    writePointer(u32, MSGHDR.iov, this.address + this.iovOffset);
    writePointer(u32, MSGHDR.iovlen, iovs);
    // UDP_SEGMENT's cmsg, word by word: cmsg_len (a size_t), level, type, the u16 size and padding.
    const c = this.controlOffset >>> 2;
    u32[c] = SEGMENT_CMSG_LEN;
    u32[c + 1] = 0;
    u32[c + 2] = SOL_UDP;
    u32[c + 3] = UDP_SEGMENT;
    u32[c + 4] = batch.lengths[i]! & 0xffff;
    u32[c + 5] = 0;
    let controlLen = SEGMENT_CMSG_SPACE;
    const ttlTosLen = src[(hdr + MSGHDR.controllen) >>> 2]!;
    if (ttlTosLen > 0) {
      // The run's TTL/TOS control message, as entry i carries it (every entry of the run has the same).
      const from = (batch.controlOffset + i * SEND_CONTROL_SPACE) >>> 2;
      const to = c + (SEGMENT_CMSG_SPACE >>> 2);
      for (let w = 0; w < ttlTosLen >>> 2; w++) u32[to + w] = src[from + w]!;
      controlLen += ttlTosLen;
    }
    writePointer(u32, MSGHDR.control, this.address + this.controlOffset);
    writePointer(u32, MSGHDR.controllen, controlLen);
    u32[MSGHDR.flags >>> 2] = 0;
    return this.address;
  }
}
