/**
 * UDP GSO (UDP_SEGMENT) on send: a run of queued datagrams for one socket and one destination, all of one
 * size but the last (which may be shorter), leaves as ONE msghdr. The kernel cuts the concatenated iovecs
 * every `gso_size` bytes, so the message's iovecs are simply the entries' own (each pointing into the
 * receive slots, or a header slot then a payload): nothing is copied. Limits are the kernel's: at most
 * UDP_MAX_SEGMENTS segments and one IP datagram's worth of bytes (a burst of 64 x 1200 is refused).
 * The model is quinn-udp's (src/unix.rs): a UDP_SEGMENT cmsg with the segment size beside the others.
 */
import { writeSegmentSize } from "./cmsg.ts";
import { UDP_MAX_SEGMENTS } from "./constants.ts";
import { GSO_CONTROL_SPACE, IOVEC, MMSGHDR, MSGHDR, SEND_CONTROL_SPACE, SOCKADDR_SLOT, writePointer } from "./layout.ts";
import { addressOf } from "./recv-batch.ts";
import { IOVECS_PER_ENTRY, type SendBatch } from "./send-batch.ts";

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
    const size = batch.lengths[i]!;
    if (size === 0) return i + 1; // a gso_size of 0 means "no segmentation"
    const limit = Math.min(end, i + maxSegments);
    let total = size;
    let j = i + 1;
    while (j < limit) {
      const len = batch.lengths[j]!;
      if (len > size || len === 0 || total + len > GSO_MAX_BYTES) break;
      if (batch.change[j] !== 0 || batch.ttls[j] !== batch.ttls[i] || batch.toss[j] !== batch.toss[i]) break;
      if (batch.hasControl(j) !== batch.hasControl(i) || !sameDestination(batch, i, j)) break;
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
    let controlLen = writeSegmentSize(this.bytes, this.controlOffset, batch.lengths[i]!);
    const ttlTosLen = src[(hdr + MSGHDR.controllen) >>> 2]!;
    if (ttlTosLen > 0) {
      // The run's TTL/TOS control message, as entry i carries it (every entry of the run has the same).
      const at = batch.controlOffset + i * SEND_CONTROL_SPACE;
      this.bytes.set(batch.bytes.subarray(at, at + ttlTosLen), this.controlOffset + controlLen);
      controlLen += ttlTosLen;
    }
    writePointer(u32, MSGHDR.control, this.address + this.controlOffset);
    writePointer(u32, MSGHDR.controllen, controlLen);
    u32[MSGHDR.flags >>> 2] = 0;
    return this.address;
  }
}

function sameDestination(batch: SendBatch, i: number, j: number): boolean {
  const u32 = batch.u32;
  const nameLen = u32[(i * MMSGHDR.size + MSGHDR.namelen) >>> 2]!;
  if (u32[(j * MMSGHDR.size + MSGHDR.namelen) >>> 2] !== nameLen) return false;
  const a = (batch.namesOffset + i * SOCKADDR_SLOT) >>> 2;
  const b = (batch.namesOffset + j * SOCKADDR_SLOT) >>> 2;
  // Only the bytes the sockaddr has (16 or 28): the rest of a slot may hold an older, longer one.
  for (let w = 0; w < nameLen >>> 2; w++) if (u32[a + w] !== u32[b + w]) return false;
  return true;
}
