/**
 * MESSAGE-INTEGRITY (RFC 8489 §14.5, HMAC-SHA1, 20 bytes) and MESSAGE-INTEGRITY-SHA256 (§14.6,
 * HMAC-SHA256, 16..32 bytes in steps of 4). The HMAC covers the message up to the attribute, with the
 * header length field set as if the attribute were the last one.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { Attr, HEADER_LENGTH } from "../constants.ts";
import type { StunWriter } from "../writer.ts";

export const INTEGRITY_SHA1_LENGTH = 20;
export const INTEGRITY_SHA256_LENGTH = 32;

export function writeMessageIntegrity(w: StunWriter, key: Uint8Array): void {
  append(w, key, "sha1", Attr.MessageIntegrity, INTEGRITY_SHA1_LENGTH);
}

export function writeMessageIntegritySha256(w: StunWriter, key: Uint8Array): void {
  append(w, key, "sha256", Attr.MessageIntegritySha256, INTEGRITY_SHA256_LENGTH);
}

function append(w: StunWriter, key: Uint8Array, algorithm: string, type: number, length: number): void {
  const headerAt = w.length;
  w.syncLength(headerAt + 4 + length);
  const mac = createHmac(algorithm, key).update(w.buffer.subarray(0, headerAt)).digest();
  const at = w.reserve(type, length);
  w.buffer.set(mac.subarray(0, length), at);
}

/**
 * Checks the integrity attribute whose value starts at `valueOffset` in `message`. `sha256` selects
 * MESSAGE-INTEGRITY-SHA256. Returns false for a wrong length as well as a wrong MAC.
 */
export function verifyMessageIntegrity(
  message: Uint8Array,
  valueOffset: number,
  valueLength: number,
  key: Uint8Array,
  sha256: boolean,
): boolean {
  if (sha256) {
    if (valueLength < 16 || valueLength > 32 || (valueLength & 3) !== 0) return false;
  } else if (valueLength !== INTEGRITY_SHA1_LENGTH) {
    return false;
  }
  const attributeStart = valueOffset - 4;
  if (attributeStart < HEADER_LENGTH || valueOffset + valueLength > message.length) return false;
  const header = message.slice(0, HEADER_LENGTH);
  const adjusted = valueOffset + valueLength - HEADER_LENGTH;
  header[2] = adjusted >> 8;
  header[3] = adjusted & 0xff;
  const mac = createHmac(sha256 ? "sha256" : "sha1", key)
    .update(header)
    .update(message.subarray(HEADER_LENGTH, attributeStart))
    .digest();
  return timingSafeEqual(mac.subarray(0, valueLength), message.subarray(valueOffset, valueOffset + valueLength));
}
