/**
 * MAPPED-ADDRESS (RFC 8489 §14.1) and the XOR'd address attributes: XOR-MAPPED-ADDRESS (§14.2),
 * XOR-PEER-ADDRESS and XOR-RELAYED-ADDRESS (RFC 8656 §18.3, §18.5), IPv4 and IPv6.
 *
 * Readers take the whole message: the XOR key is the magic cookie (bytes 4..7) followed, for IPv6,
 * by the transaction id (bytes 8..19), both read straight from the header.
 */
import { ipv4Endpoint, ipv6Endpoint, type Endpoint } from "../../net/endpoint.ts";
import { FAMILY_IPV4, FAMILY_IPV6 } from "../constants.ts";
import type { StunWriter } from "../writer.ts";

/** Decodes a plain MAPPED-ADDRESS value, or null when malformed. */
export function readAddress(message: Uint8Array, offset: number, length: number): Endpoint | null {
  return decode(message, offset, length, false);
}

/** Decodes an XOR-*-ADDRESS value, or null when malformed. */
export function readXorAddress(message: Uint8Array, offset: number, length: number): Endpoint | null {
  return decode(message, offset, length, true);
}

/** The family (4 or 6) an address attribute claims, or 0 when its length does not fit the family. */
export function addressFamilyOf(message: Uint8Array, offset: number, length: number): 0 | 4 | 6 {
  if (length < 4) return 0;
  const family = message[offset + 1];
  if (family === FAMILY_IPV4 && length === 8) return 4;
  if (family === FAMILY_IPV6 && length === 20) return 6;
  return 0;
}

/**
 * The IPv4 address of an XOR-*-ADDRESS value as an unsigned 32-bit number, or -1 when the value is not
 * a well-formed IPv4 address (then readXorAddress says what it is). Allocates nothing: the data path
 * looks peers up by number.
 */
export function readXorIpv4(message: Uint8Array, offset: number, length: number): number {
  if (length !== 8 || message[offset + 1] !== FAMILY_IPV4) return -1;
  const m = message;
  return (((m[offset + 4]! << 24) | (m[offset + 5]! << 16) | (m[offset + 6]! << 8) | m[offset + 7]!) ^ 0x2112a442) >>> 0;
}

/** The port of an XOR-*-ADDRESS value (either family; the value must be at least 4 bytes). */
export function readXorPort(message: Uint8Array, offset: number): number {
  return ((message[offset + 2]! << 8) | message[offset + 3]!) ^ 0x2112;
}

function decode(m: Uint8Array, offset: number, length: number, xor: boolean): Endpoint | null {
  const family = addressFamilyOf(m, offset, length);
  if (family === 0) return null;
  let port = (m[offset + 2]! << 8) | m[offset + 3]!;
  if (xor) port ^= 0x2112;
  if (family === 4) {
    let ip = ((m[offset + 4]! << 24) | (m[offset + 5]! << 16) | (m[offset + 6]! << 8) | m[offset + 7]!) >>> 0;
    if (xor) ip = (ip ^ 0x2112a442) >>> 0;
    return ipv4Endpoint(ip, port);
  }
  const address = new Uint8Array(16);
  for (let i = 0; i < 16; i++) address[i] = xor ? m[offset + 4 + i]! ^ m[4 + i]! : m[offset + 4 + i]!;
  return ipv6Endpoint(address, port);
}

export function writeAddress(w: StunWriter, type: number, endpoint: Endpoint): void {
  encode(w, type, endpoint, false);
}

export function writeXorAddress(w: StunWriter, type: number, endpoint: Endpoint): void {
  encode(w, type, endpoint, true);
}

function encode(w: StunWriter, type: number, e: Endpoint, xor: boolean): void {
  const v4 = e.family === 4;
  const at = w.reserve(type, v4 ? 8 : 20);
  const b = w.buffer;
  b[at] = 0;
  b[at + 1] = v4 ? FAMILY_IPV4 : FAMILY_IPV6;
  const port = xor ? e.port ^ 0x2112 : e.port;
  b[at + 2] = port >> 8;
  b[at + 3] = port & 0xff;
  const n = v4 ? 4 : 16;
  // Bytes 4..19 of the message are the cookie and the transaction id: the XOR key.
  for (let i = 0; i < n; i++) b[at + 4 + i] = xor ? e.address[i]! ^ b[4 + i]! : e.address[i]!;
}
