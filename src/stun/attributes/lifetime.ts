/** LIFETIME (RFC 8656 §18.2): seconds until the allocation expires, unsigned 32-bit. */
import { Attr } from "../constants.ts";
import { readU32, type StunWriter } from "../writer.ts";

export function readLifetime(m: Uint8Array, offset: number, length: number): number | null {
  return length === 4 ? readU32(m, offset) : null;
}

export function writeLifetime(w: StunWriter, seconds: number): void {
  w.addUint32(Attr.Lifetime, seconds);
}
