/** EVEN-PORT (RFC 8656 §18.6): one byte, the high bit R asks to reserve the next port as well. */
import { Attr } from "../constants.ts";
import type { StunWriter } from "../writer.ts";

/** Returns the R bit, or null when malformed. */
export function readEvenPort(m: Uint8Array, offset: number, length: number): { reserveNext: boolean } | null {
  return length === 1 ? { reserveNext: (m[offset]! & 0x80) !== 0 } : null;
}

export function writeEvenPort(w: StunWriter, reserveNext: boolean): void {
  const at = w.reserve(Attr.EvenPort, 1);
  w.buffer[at] = reserveNext ? 0x80 : 0;
}
