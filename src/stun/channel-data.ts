/**
 * ChannelData framing (RFC 8656 §12.4): channel number (16) + length (16) + application data.
 * Over UDP the trailing padding is optional on input (§12.5) and we send none.
 */
import { MAX_CHANNEL, MIN_CHANNEL } from "./attributes/channel-number.ts";

export const CHANNEL_DATA_HEADER = 4;

/** Cheap first-byte test (RFC 7983): ChannelData starts with 0b01. Of bytes[offset, offset + length). */
export function looksLikeChannelData(bytes: Uint8Array, offset = 0, length = bytes.length - offset): boolean {
  return length >= CHANNEL_DATA_HEADER && (bytes[offset]! & 0xc0) === 0x40;
}

/**
 * Validates a ChannelData datagram. Returns the channel number, or -1 when it is not a usable
 * ChannelData message (too short, channel outside 0x4000-0x7FFF, or length overrunning the datagram).
 * The payload is bytes[offset + 4 .. offset + 4 + channelDataLength(bytes, offset)).
 */
export function parseChannelData(bytes: Uint8Array, offset = 0, length = bytes.length - offset): number {
  if (length < CHANNEL_DATA_HEADER) return -1;
  const channel = (bytes[offset]! << 8) | bytes[offset + 1]!;
  if (channel < MIN_CHANNEL || channel > MAX_CHANNEL) return -1;
  const payload = (bytes[offset + 2]! << 8) | bytes[offset + 3]!;
  if (CHANNEL_DATA_HEADER + payload > length) return -1;
  return channel;
}

export function channelDataLength(bytes: Uint8Array, offset = 0): number {
  return (bytes[offset + 2]! << 8) | bytes[offset + 3]!;
}

/** Writes the 4-byte ChannelData header at out[at]: the payload of `length` bytes follows it. */
export function writeChannelDataHeader(out: Uint8Array, at: number, channel: number, length: number): void {
  out[at] = channel >> 8;
  out[at + 1] = channel & 0xff;
  out[at + 2] = length >> 8;
  out[at + 3] = length & 0xff;
}

/** Writes a ChannelData header + payload into `out` (which must hold 4 + payload bytes); returns the length. */
export function writeChannelData(out: Uint8Array, channel: number, payload: Uint8Array): number {
  writeChannelDataHeader(out, 0, channel, payload.length);
  out.set(payload, CHANNEL_DATA_HEADER);
  return CHANNEL_DATA_HEADER + payload.length;
}

/** A fresh ChannelData message (for tests and control code). */
export function encodeChannelData(channel: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(CHANNEL_DATA_HEADER + payload.length);
  writeChannelData(out, channel, payload);
  return out;
}
