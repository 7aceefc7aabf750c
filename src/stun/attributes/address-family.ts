/**
 * REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.8), ADDITIONAL-ADDRESS-FAMILY (§18.11): family(8) + 24 bits RFFU.
 * ADDRESS-ERROR-CODE (§18.12): family(8), reserved, class(3), number(8), reason phrase, reporting the
 * failure of one family in a dual allocation.
 */
import type { Family } from "../../net/endpoint.ts";
import { Attr, FAMILY_IPV4, FAMILY_IPV6, REASON_PHRASES } from "../constants.ts";
import type { StunWriter } from "../writer.ts";
import { encodeText } from "./text.ts";

/** Reads a family attribute: 4, 6, 0 for an unknown family value, or null when the length is wrong. */
export function readAddressFamily(m: Uint8Array, offset: number, length: number): Family | 0 | null {
  if (length !== 4) return null;
  const f = m[offset];
  return f === FAMILY_IPV4 ? 4 : f === FAMILY_IPV6 ? 6 : 0;
}

export function writeAddressFamily(w: StunWriter, type: number, family: Family): void {
  const at = w.reserve(type, 4);
  w.buffer[at] = family === 4 ? FAMILY_IPV4 : FAMILY_IPV6;
}

export function writeAddressErrorCode(w: StunWriter, family: Family, code: number, reason = REASON_PHRASES[code] ?? ""): void {
  const text = encodeText(reason);
  const at = w.reserve(Attr.AddressErrorCode, 4 + text.length);
  const b = w.buffer;
  b[at] = family === 4 ? FAMILY_IPV4 : FAMILY_IPV6;
  b[at + 2] = Math.floor(code / 100) & 0x7;
  b[at + 3] = code % 100;
  b.set(text, at + 4);
}

export function readAddressErrorCode(m: Uint8Array, offset: number, length: number): { family: Family | 0; code: number } | null {
  if (length < 4) return null;
  const f = m[offset];
  return {
    family: f === FAMILY_IPV4 ? 4 : f === FAMILY_IPV6 ? 6 : 0,
    code: (m[offset + 2]! & 0x7) * 100 + m[offset + 3]!,
  };
}
