/** SOFTWARE (RFC 8489 §14.14): a UTF-8 description of the agent, fewer than 128 characters. */
import { Attr } from "../constants.ts";
import type { StunWriter } from "../writer.ts";
import { encodeText } from "./text.ts";

/** Pre-encodes a SOFTWARE value once, truncated to the RFC's 763-byte bound. */
export function encodeSoftware(name: string): Uint8Array {
  const bytes = encodeText(name);
  return bytes.length > 763 ? bytes.subarray(0, 763) : bytes;
}

export function writeSoftware(w: StunWriter, encoded: Uint8Array): void {
  w.addBytes(Attr.Software, encoded);
}
