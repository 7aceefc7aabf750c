/** DATA (RFC 8656 §18.4): the application payload of Send and Data indications, padded to 4 bytes. */
import { Attr } from "../constants.ts";
import type { StunWriter } from "../writer.ts";

export function writeData(w: StunWriter, payload: Uint8Array): void {
  w.addBytes(Attr.Data, payload);
}

/** DATA from bytes[offset, offset + length), without a view of the payload's own. */
export function writeDataRange(w: StunWriter, bytes: Uint8Array, offset: number, length: number): void {
  w.addRange(Attr.Data, bytes, offset, length);
}
