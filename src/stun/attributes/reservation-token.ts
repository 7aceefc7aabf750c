/** RESERVATION-TOKEN (RFC 8656 §18.9): an opaque 8-byte token, handled here as an unsigned 64-bit bigint. */
import { Attr } from "../constants.ts";
import type { StunWriter } from "../writer.ts";

export function readReservationToken(m: Uint8Array, offset: number, length: number): bigint | null {
  if (length !== 8) return null;
  let v = 0n;
  for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(m[offset + i]!);
  return v;
}

export function writeReservationToken(w: StunWriter, token: bigint): void {
  const at = w.reserve(Attr.ReservationToken, 8);
  let v = BigInt.asUintN(64, token);
  for (let i = 7; i >= 0; i--) {
    w.buffer[at + i] = Number(v & 0xffn);
    v >>= 8n;
  }
}
