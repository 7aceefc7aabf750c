/**
 * RESPONSE-ORIGIN (RFC 5780 §7.3: the address the response was sent from) and OTHER-ADDRESS (§7.4: the
 * server's address with the alternate IP and the alternate port). Both are encoded as MAPPED-ADDRESS is,
 * not XOR'd (§7.1).
 */
import type { Endpoint } from "../../net/endpoint.ts";
import { Attr } from "../constants.ts";
import type { StunWriter } from "../writer.ts";
import { readAddress, writeAddress } from "./address.ts";

export function writeResponseOrigin(w: StunWriter, origin: Endpoint): void {
  writeAddress(w, Attr.ResponseOrigin, origin);
}

export function writeOtherAddress(w: StunWriter, other: Endpoint): void {
  writeAddress(w, Attr.OtherAddress, other);
}

/** Decodes either attribute's value, or null when malformed (what clients and tests read). */
export function readOriginAddress(m: Uint8Array, offset: number, length: number): Endpoint | null {
  return readAddress(m, offset, length);
}
