/**
 * UDP generic segmentation offload for the bench's own sockets (load generator and echo peer), through
 * ffi's setsockopt: with `UDP_SEGMENT` set to a segment size on a socket, one message of k x size bytes
 * (the last segment may be shorter) leaves as one trip through the sender's stack and is cut into k
 * datagrams by the kernel. On loopback the cut happens at the receiving socket, or not at all when that
 * socket set `UDP_GRO`: that is how these benches model a NIC whose GRO hands a server a train of
 * equal datagrams from one 5-tuple (a video frame cut into RTP packets). A message no longer than the
 * segment size leaves as a plain datagram, so one socket can send the frames and the audio.
 */
import {
  type CmsgInfo, type RecvBatch, SOL_UDP, UDP_GRO, UDP_MAX_SEGMENTS, UDP_SEGMENT, groSegmentCount, receivedTtlTos, setIntOption, type UdpSocketState,
} from "../../ffi/index.ts";

/** The kernel's caps on one GSO message: segments, and bytes (one UDP datagram's worth). */
export const GSO_MAX_SEGMENTS = UDP_MAX_SEGMENTS;
export const GSO_MAX_BYTES = 65507;

/**
 * Sets the socket's own segment size (0: off); false when the kernel refuses (no UDP GSO). The socket
 * option, not ffi's per-message cmsg (SendBatch with `gso`), so that the load generator's sends stay the
 * same code with GSO on and off, and bench numbers do not move with the relay's GSO path.
 */
export function setSegmentSize(socket: UdpSocketState, size: number): boolean {
  return setIntOption(socket.fd, SOL_UDP, UDP_SEGMENT, size) === 0;
}

/**
 * UDP_GRO on one of the bench's own receiving sockets (`ceiling --gro`): a GSO message sent to it arrives
 * as one buffer instead of being cut at delivery. On loopback the sender's system call delivers what it
 * sends (segmentation, the receiver's queue, its wake-up): with GRO here a GSO sender pays one delivery
 * per message, as on a network, where the cut is the NIC's and the delivery the far host's.
 */
export function setGro(socket: UdpSocketState): boolean {
  return setIntOption(socket.fd, SOL_UDP, UDP_GRO, 1) === 0;
}

/** Datagrams in received entry i (a GRO buffer holds several; see groSegmentCount). */
export function datagramsIn(batch: RecvBatch, i: number, info: CmsgInfo): number {
  return groSegmentCount(batch.length(i), receivedTtlTos(batch, i, info).groSize);
}

/** `count` copies of `datagram` back to back: one GSO message of `count` equal segments. */
export function repeat(datagram: Uint8Array, count: number): Uint8Array {
  const out = new Uint8Array(datagram.length * count);
  for (let k = 0; k < count; k++) out.set(datagram, k * datagram.length);
  return out;
}
