/**
 * ERROR-CODE (RFC 8489 §14.8): 21 reserved bits, class (hundreds, 3 bits), number (0..99), UTF-8 reason.
 */
import { Attr, REASON_PHRASES } from "../constants.ts";
import type { StunWriter } from "../writer.ts";
import { encodeText } from "./text.ts";

export interface ErrorCodeValue {
  code: number;
  reason: string;
}

export function writeErrorCode(w: StunWriter, code: number, reason = REASON_PHRASES[code] ?? ""): void {
  const text = encodeText(reason);
  const at = w.reserve(Attr.ErrorCode, 4 + text.length);
  const b = w.buffer;
  b[at + 2] = Math.floor(code / 100) & 0x7;
  b[at + 3] = code % 100;
  b.set(text, at + 4);
}

export function readErrorCode(m: Uint8Array, offset: number, length: number): ErrorCodeValue | null {
  if (length < 4) return null;
  const cls = m[offset + 2]! & 0x7;
  const num = m[offset + 3]!;
  if (cls < 3 || cls > 6 || num > 99) return null;
  let reason: string;
  try {
    reason = new TextDecoder("utf-8", { fatal: true }).decode(m.subarray(offset + 4, offset + length));
  } catch {
    return null;
  }
  return { code: cls * 100 + num, reason };
}
