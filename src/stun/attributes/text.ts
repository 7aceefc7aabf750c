/**
 * The UTF-8 text attributes: USERNAME (RFC 8489 §14.3), REALM (§14.9), NONCE (§14.10), SOFTWARE (§14.14).
 * Length limits are the RFC's byte limits; longer or non-UTF-8 values read as null (the caller answers 400).
 */
import { Attr } from "../constants.ts";
import type { StunWriter } from "../writer.ts";

/** Maximum value lengths in bytes (RFC 8489: USERNAME < 513; REALM, NONCE, SOFTWARE < 763). */
export const MAX_TEXT_BYTES: Readonly<Record<number, number>> = {
  [Attr.Username]: 512,
  [Attr.Realm]: 763,
  [Attr.Nonce]: 763,
  [Attr.Software]: 763,
};

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

export function readText(message: Uint8Array, offset: number, length: number, type: number): string | null {
  const max = MAX_TEXT_BYTES[type] ?? 763;
  if (length > max) return null;
  try {
    return utf8.decode(message.subarray(offset, offset + length));
  } catch {
    return null;
  }
}

export function encodeText(text: string): Uint8Array {
  return encoder.encode(text);
}

export function writeText(w: StunWriter, type: number, text: string | Uint8Array): void {
  w.addBytes(type, typeof text === "string" ? encoder.encode(text) : text);
}
