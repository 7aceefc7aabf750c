/** FINGERPRINT (RFC 8489 §14.7): CRC-32 of the message up to this attribute, XOR 0x5354554e. */
import { Attr } from "../constants.ts";
import { crc32 } from "../crc32.ts";
import { writeU32, type StunWriter } from "../writer.ts";

export const FINGERPRINT_XOR = 0x5354554e;

/** Appends FINGERPRINT; it must be the last attribute. */
export function writeFingerprint(w: StunWriter): void {
  const headerAt = w.length;
  w.syncLength(headerAt + 8);
  const crc = (crc32(w.buffer, 0, headerAt) ^ FINGERPRINT_XOR) >>> 0;
  const at = w.reserve(Attr.Fingerprint, 4);
  writeU32(w.buffer, at, crc);
}
