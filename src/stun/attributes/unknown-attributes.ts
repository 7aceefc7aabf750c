/** UNKNOWN-ATTRIBUTES (RFC 8489 §14.13): a list of 16-bit attribute types, for 420 responses. */
import { Attr } from "../constants.ts";
import type { StunWriter } from "../writer.ts";

export function writeUnknownAttributes(w: StunWriter, types: ArrayLike<number>): void {
  const at = w.reserve(Attr.UnknownAttributes, types.length * 2);
  const b = w.buffer;
  for (let i = 0; i < types.length; i++) {
    b[at + i * 2] = types[i]! >> 8;
    b[at + i * 2 + 1] = types[i]! & 0xff;
  }
}

export function readUnknownAttributes(m: Uint8Array, offset: number, length: number): number[] | null {
  if ((length & 1) !== 0) return null;
  const out: number[] = [];
  for (let i = 0; i < length; i += 2) out.push((m[offset + i]! << 8) | m[offset + i + 1]!);
  return out;
}
