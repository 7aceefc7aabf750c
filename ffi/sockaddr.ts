/**
 * sockaddr_in / sockaddr_in6 encode and decode on raw bytes, without building strings: the hot path
 * reads a source address as a number (IPv4) or a 16-byte view (IPv6).
 */
import { AF_INET, AF_INET6 } from "./constants.ts";
import { SOCKADDR_IN, SOCKADDR_IN6 } from "./layout.ts";

// Every byte is written by index, sin_zero included: fill() is a native call, too dear once per datagram.
export function writeSockaddrIn(bytes: Uint8Array, offset: number, ipv4: number, port: number): number {
  bytes[offset] = AF_INET; // sa_family_t is little-endian u16
  bytes[offset + 1] = 0;
  bytes[offset + SOCKADDR_IN.port] = port >>> 8;
  bytes[offset + SOCKADDR_IN.port + 1] = port & 0xff;
  const a = offset + SOCKADDR_IN.addr;
  bytes[a] = ipv4 >>> 24;
  bytes[a + 1] = (ipv4 >>> 16) & 0xff;
  bytes[a + 2] = (ipv4 >>> 8) & 0xff;
  bytes[a + 3] = ipv4 & 0xff;
  for (let z = offset + SOCKADDR_IN.addr + 4; z < offset + SOCKADDR_IN.size; z++) bytes[z] = 0;
  return SOCKADDR_IN.size;
}

export function writeSockaddrIn6(bytes: Uint8Array, offset: number, address: Uint8Array, port: number, scopeId = 0): number {
  bytes.fill(0, offset, offset + SOCKADDR_IN6.size);
  bytes[offset] = AF_INET6;
  bytes[offset + SOCKADDR_IN6.port] = port >>> 8;
  bytes[offset + SOCKADDR_IN6.port + 1] = port & 0xff;
  bytes.set(address.subarray(0, 16), offset + SOCKADDR_IN6.addr);
  const s = offset + SOCKADDR_IN6.scopeId;
  bytes[s] = scopeId & 0xff;
  bytes[s + 1] = (scopeId >>> 8) & 0xff;
  bytes[s + 2] = (scopeId >>> 16) & 0xff;
  bytes[s + 3] = scopeId >>> 24;
  return SOCKADDR_IN6.size;
}

/** Writes a sockaddr for a 4- or 16-byte address; returns its length (the socklen_t to pass). */
export function writeSockaddr(bytes: Uint8Array, offset: number, address: Uint8Array, port: number): number {
  if (address.length === 4) {
    const ip = ((address[0]! << 24) | (address[1]! << 16) | (address[2]! << 8) | address[3]!) >>> 0;
    return writeSockaddrIn(bytes, offset, ip, port);
  }
  return writeSockaddrIn6(bytes, offset, address, port);
}

export function sockaddrFamily(bytes: Uint8Array, offset: number): number {
  return bytes[offset]! | (bytes[offset + 1]! << 8);
}

/** The port of either family: sin_port and sin6_port share offset 2. */
export function sockaddrPort(bytes: Uint8Array, offset: number): number {
  return (bytes[offset + 2]! << 8) | bytes[offset + 3]!;
}

/** sin_addr as an unsigned 32-bit number in host order. */
export function sockaddrInAddress(bytes: Uint8Array, offset: number): number {
  const a = offset + SOCKADDR_IN.addr;
  return ((bytes[a]! << 24) | (bytes[a + 1]! << 16) | (bytes[a + 2]! << 8) | bytes[a + 3]!) >>> 0;
}

/** sin6_addr as a view into `bytes` (no copy: copy it if you keep it). */
export function sockaddrIn6Address(bytes: Uint8Array, offset: number): Uint8Array {
  return bytes.subarray(offset + SOCKADDR_IN6.addr, offset + SOCKADDR_IN6.addr + 16);
}

export function ipv4ToNumber(a: number, b: number, c: number, d: number): number {
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}
