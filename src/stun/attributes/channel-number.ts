/**
 * CHANNEL-NUMBER (RFC 8656 §18.1): 16-bit number + 16 bits RFFU.
 *
 * RFC 8656 §12 narrowed channels to 0x4000-0x4FFF, but RFC 5766 §11 allowed 0x4000-0x7FFF and clients
 * in the field still pick from that range (coturn's turnutils_uclient, pjnath). coturn accepts it; so do
 * we, or those clients fail one ChannelBind in eight. Demultiplexing is unaffected: both ranges start
 * with the bits 01 (RFC 7983).
 */
import { Attr } from "../constants.ts";
import type { StunWriter } from "../writer.ts";

export const MIN_CHANNEL = 0x4000;
export const MAX_CHANNEL = 0x7fff;

export function isValidChannelNumber(n: number): boolean {
  return n >= MIN_CHANNEL && n <= MAX_CHANNEL;
}

export function readChannelNumber(m: Uint8Array, offset: number, length: number): number | null {
  return length === 4 ? (m[offset]! << 8) | m[offset + 1]! : null;
}

export function writeChannelNumber(w: StunWriter, channel: number): void {
  const at = w.reserve(Attr.ChannelNumber, 4);
  w.buffer[at] = channel >> 8;
  w.buffer[at + 1] = channel & 0xff;
}
