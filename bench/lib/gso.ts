/**
 * UDP generic segmentation offload for the bench's own sockets (load generator and echo peer), through
 * ffi's setsockopt: with `UDP_SEGMENT` set to a segment size on a socket, one message of k x size bytes
 * (the last segment may be shorter) leaves as one trip through the sender's stack and is cut into k
 * datagrams by the kernel. On loopback the cut happens at the receiving socket, or not at all when that
 * socket set `UDP_GRO`: that is how these benches model a NIC whose GRO hands a server a train of
 * equal datagrams from one 5-tuple (a video frame cut into RTP packets). A message no longer than the
 * segment size leaves as a plain datagram, so one socket can send the frames and the audio.
 */
import { SOL_UDP, UDP_MAX_SEGMENTS, UDP_SEGMENT, setIntOption, type UdpSocketState } from "../../ffi/index.ts";

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

/** `count` copies of `datagram` back to back: one GSO message of `count` equal segments. */
export function repeat(datagram: Uint8Array, count: number): Uint8Array {
  const out = new Uint8Array(datagram.length * count);
  for (let k = 0; k < count; k++) out.set(datagram, k * datagram.length);
  return out;
}

/**
 * Groups datagrams into GSO messages for one socket whose segment size is `segment`: consecutive
 * datagrams to the same destination join a message while each (but the last) is exactly `segment`
 * bytes long and the message stays within the kernel's caps; anything longer than `segment` cannot go
 * on this socket (it would be cut) and is reported by the caller's check. `flushRun` receives the
 * index range [from, to) of each message.
 */
export function runsOf(count: number, length: (i: number) => number, sameDestination: (i: number, j: number) => boolean, segment: number, flushRun: (from: number, to: number) => void): void {
  let from = 0;
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const len = length(i);
    const joins = i > from && length(i - 1) === segment && sameDestination(from, i) && i - from < GSO_MAX_SEGMENTS && bytes + len <= GSO_MAX_BYTES;
    if (i > from && !joins) {
      flushRun(from, i);
      from = i;
      bytes = 0;
    }
    bytes += len;
  }
  if (count > from) flushRun(from, count);
}
