/**
 * STUN and ChannelData on a byte stream (TURN over TCP/TLS). RFC 8489 §6.2.2: STUN messages carry
 * their own length. RFC 8656 §12.5: over TCP a ChannelData message MUST be padded to a multiple of 4.
 *
 * Clients in the field do not all pad (turnutils_uclient pads only with -D, "like pjnath"), and coturn
 * copes; so on input padding is taken when it is there, zero, and followed by something that starts a
 * frame, and not required otherwise. On output we pad, as the RFC says.
 */
import { MAGIC_COOKIE } from "./constants.ts";

const STUN_HEADER = 20;
const CHANNEL_HEADER = 4;

/**
 * ChannelData starts 0b01: channels 0x4000-0x7FFF. RFC 8656 §12 narrowed them to 0x4000-0x4FFF, but the
 * core binds RFC 5766's whole range by default (coturn and turnutils_uclient use it), so framing must
 * carry all of it. (A PROXY v1 line, "PR...", on the normal port is refused by TcpTransport instead: a
 * connection's first message must be STUN.)
 */
function isChannelNumberByte(b0: number): boolean {
  return (b0 & 0xc0) === 0x40;
}

/** Whether bytes[at..end) could start a frame; true when too few bytes have arrived to tell. */
function couldStartFrame(bytes: Uint8Array, at: number, end: number): boolean {
  if (at >= end) return true;
  const b0 = bytes[at]!;
  if (isChannelNumberByte(b0)) return true;
  if ((b0 & 0xc0) !== 0) return false;
  if (end - at < 8) return true;
  const cookie = ((bytes[at + 4]! << 24) | (bytes[at + 5]! << 16) | (bytes[at + 6]! << 8) | bytes[at + 7]!) >>> 0;
  return cookie === MAGIC_COOKIE;
}

/**
 * The length of the complete frame at bytes[start..end): its bytes to hand to the protocol core are
 * bytes[start .. start + frame) (ChannelData padding included, which the core ignores). 0 when more
 * bytes are needed; -1 when these bytes cannot be a STUN or ChannelData frame (close the connection).
 */
export function nextStreamFrame(bytes: Uint8Array, start: number, end: number): number {
  const available = end - start;
  if (available < CHANNEL_HEADER) return 0;
  const b0 = bytes[start]!;
  const length = (bytes[start + 2]! << 8) | bytes[start + 3]!;
  if ((b0 & 0xc0) === 0) {
    if (length % 4 !== 0) return -1;
    if (available >= 8 && !couldStartFrame(bytes, start, end)) return -1;
    const total = STUN_HEADER + length;
    return available >= total ? total : 0;
  }
  if (!isChannelNumberByte(b0)) return -1;
  const unpadded = CHANNEL_HEADER + length;
  if (available < unpadded) return 0;
  const padded = (unpadded + 3) & ~3;
  if (padded === unpadded) return unpadded;
  if (available < padded) return available === unpadded ? unpadded : 0;
  for (let i = start + unpadded; i < start + padded; i++) if (bytes[i] !== 0) return unpadded;
  if (couldStartFrame(bytes, start + padded, end)) return padded;
  return unpadded;
}

/** Bytes of zero padding a frame of `length` bytes needs on a stream (ChannelData; STUN needs none). */
export function streamPadding(length: number): number {
  return (4 - (length & 3)) & 3;
}
