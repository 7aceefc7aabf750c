/**
 * CHANNEL-NUMBER (RFC 8656 §18.1): 16-bit number + 16 bits RFFU. RFC 8656 §12 allows 0x4000-0x4FFF;
 * RFC 5766 §11 allowed 0x4000-0x7FFF, and coturn (server and turnutils_uclient) still uses that range.
 */
import { Attr } from "../constants.ts";
import type { StunWriter } from "../writer.ts";

export const MIN_CHANNEL = 0x4000;
/** Upper bound of RFC 8656 §12. */
export const MAX_CHANNEL_RFC8656 = 0x4fff;
/** Upper bound of RFC 5766 §11 (and coturn). */
export const MAX_CHANNEL_RFC5766 = 0x7fff;
/** The widest range any client may use; ChannelData framing accepts all of it. */
export const MAX_CHANNEL = MAX_CHANNEL_RFC5766;

export function isValidChannelNumber(n: number, max: number = MAX_CHANNEL_RFC8656): boolean {
  return n >= MIN_CHANNEL && n <= max;
}

export function readChannelNumber(m: Uint8Array, offset: number, length: number): number | null {
  return length === 4 ? (m[offset]! << 8) | m[offset + 1]! : null;
}

export function writeChannelNumber(w: StunWriter, channel: number): void {
  const at = w.reserve(Attr.ChannelNumber, 4);
  w.buffer[at] = channel >> 8;
  w.buffer[at + 1] = channel & 0xff;
}
