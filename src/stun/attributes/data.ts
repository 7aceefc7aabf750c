/** DATA (RFC 8656 §18.4): the application payload of Send and Data indications, padded to 4 bytes. */
import { Attr } from "../constants.ts";
import type { StunWriter } from "../writer.ts";

export function writeData(w: StunWriter, payload: Uint8Array): void {
  w.addBytes(Attr.Data, payload);
}
