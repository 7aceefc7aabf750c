/**
 * RESPONSE-PORT (RFC 5780 §7.5, errata 2844): a 16-bit port followed by 2 bytes of padding. The Binding
 * response goes to the request's source IP address at this port.
 */
import { Attr } from "../constants.ts";
import { readU16, type StunWriter } from "../writer.ts";

/** The port, or -1 when the value is not 4 bytes. */
export function readResponsePort(m: Uint8Array, offset: number, length: number): number {
  return length === 4 ? readU16(m, offset) : -1;
}

export function writeResponsePort(w: StunWriter, port: number): void {
  const at = w.reserve(Attr.ResponsePort, 4);
  w.buffer[at] = port >> 8;
  w.buffer[at + 1] = port & 0xff;
}
