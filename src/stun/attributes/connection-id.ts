/** CONNECTION-ID (RFC 6062 §6.2): 32 bits naming one peer data connection of a TCP allocation. */
import { Attr } from "../constants.ts";
import { readU32, type StunWriter } from "../writer.ts";

export function readConnectionId(m: Uint8Array, offset: number, length: number): number | null {
  return length === 4 ? readU32(m, offset) : null;
}

export function writeConnectionId(w: StunWriter, id: number): void {
  w.addUint32(Attr.ConnectionId, id);
}
