/**
 * PADDING (RFC 5780 §7.6): free-form bytes whose value does not matter, to make a message big enough to
 * be fragmented. The value is written as zeros.
 */
import { Attr } from "../constants.ts";
import type { StunWriter } from "../writer.ts";

/** The most a PADDING value can hold: the attribute length field is 16 bits (and a multiple of 4 here). */
export const MAX_PADDING = 0xfffc;

export function writePadding(w: StunWriter, length: number): void {
  w.reserve(Attr.Padding, Math.min(length, MAX_PADDING));
}
