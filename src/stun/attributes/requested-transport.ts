/** REQUESTED-TRANSPORT (RFC 8656 §18.7): IANA protocol number (17 = UDP) + 24 bits RFFU. */
import { Attr } from "../constants.ts";
import type { StunWriter } from "../writer.ts";

export function readRequestedTransport(m: Uint8Array, offset: number, length: number): number | null {
  return length === 4 ? m[offset]! : null;
}

export function writeRequestedTransport(w: StunWriter, protocol: number): void {
  const at = w.reserve(Attr.RequestedTransport, 4);
  w.buffer[at] = protocol;
}
