/**
 * The PROXY protocol (HAProxy's proxy-protocol.txt): v1 (section 2.1, one text line) or v2 (section
 * 2.2, binary) from a load balancer on --tcp-proxy-port or --tls-proxy-port. The engine sees the client's real
 * address as the 5-tuple (XOR-MAPPED-ADDRESS, permissions, quotas, rate limits). Only TCP over IPv4/IPv6
 * with the PROXY command names a client; LOCAL (v2) and UNKNOWN (v1), a balancer's own health check,
 * keep the connection's own address. Strict and bounded: anything else closes the connection.
 */
import { endpointFromBytes, parseIp, type Endpoint } from "./endpoint.ts";

const SIGNATURE = new Uint8Array([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const VERSION_PROXY = 0x21;
const TCP4 = 0x11;
const TCP6 = 0x21;
const VERSION_LOCAL = 0x20;
const HEADER = 16;
/** v1's longest line, "PROXY TCP6 <39> <39> 65535 65535\r\n" (section 2.1). */
export const PROXY_V1_MAX = 107;
/** The longest v2 header accepted from a load balancer: the addresses plus room for its TLVs. */
export const PROXY_V2_MAX = 1024;

/** Encodes a header for a TCP connection from `client` to `server` (same family). */
export function encodeProxyV2(client: Endpoint, server: Endpoint): Uint8Array {
  const v6 = client.family === 6;
  const addressLength = v6 ? 36 : 12;
  const out = new Uint8Array(HEADER + addressLength);
  out.set(SIGNATURE, 0);
  out[12] = VERSION_PROXY;
  out[13] = v6 ? TCP6 : TCP4;
  out[14] = addressLength >> 8;
  out[15] = addressLength & 0xff;
  const size = v6 ? 16 : 4;
  const serverAddress = server.family === client.family ? server.address : new Uint8Array(size);
  out.set(client.address, HEADER);
  out.set(serverAddress, HEADER + size);
  out[HEADER + 2 * size] = client.port >> 8;
  out[HEADER + 2 * size + 1] = client.port & 0xff;
  out[HEADER + 2 * size + 2] = server.port >> 8;
  out[HEADER + 2 * size + 3] = server.port & 0xff;
  return out;
}

export type ProxyHeaderResult = { length: number; client: Endpoint } | 0 | -1;

/** Reads a header at bytes[start..end): its length and the client, 0 when more bytes are needed, -1 when it is not one. */
export function parseProxyV2(bytes: Uint8Array, start: number, end: number): ProxyHeaderResult {
  const available = end - start;
  for (let i = 0; i < Math.min(available, SIGNATURE.length); i++) if (bytes[start + i] !== SIGNATURE[i]) return -1;
  if (available < HEADER) return 0;
  if (bytes[start + 12] !== VERSION_PROXY) return -1;
  const family = bytes[start + 13];
  const length = (bytes[start + 14]! << 8) | bytes[start + 15]!;
  const size = family === TCP4 ? 4 : family === TCP6 ? 16 : 0;
  if (size === 0 || length < 2 * size + 4) return -1;
  if (available < HEADER + length) return 0;
  const at = start + HEADER;
  const address = bytes.slice(at, at + size);
  const port = (bytes[at + 2 * size]! << 8) | bytes[at + 2 * size + 1]!;
  return { length: HEADER + length, client: endpointFromBytes(address, port) };
}

/** A header from a load balancer: `client` null for LOCAL/UNKNOWN (the connection's own address stands). */
export type BalancerHeaderResult = { length: number; client: Endpoint | null } | 0 | -1;

/** Reads a v1 or v2 header at bytes[start..end) (HAProxy's spec §2.1, §2.2): 0 when more bytes are needed, -1 when it is not a valid one. */
export function parseProxyHeader(bytes: Uint8Array, start: number, end: number): BalancerHeaderResult {
  if (end <= start) return 0;
  if (bytes[start] === 0x50) return parseProxyV1(bytes, start, end); // "P"
  if (bytes[start] !== SIGNATURE[0]) return -1;
  const available = end - start;
  for (let i = 0; i < Math.min(available, SIGNATURE.length); i++) if (bytes[start + i] !== SIGNATURE[i]) return -1;
  if (available < HEADER) return 0;
  const length = (bytes[start + 14]! << 8) | bytes[start + 15]!;
  if (HEADER + length > PROXY_V2_MAX) return -1;
  if (bytes[start + 12] === VERSION_LOCAL) return available < HEADER + length ? 0 : { length: HEADER + length, client: null };
  return parseProxyV2(bytes, start, end);
}

const V1_PREFIX = "PROXY ";
const PORT = /^(0|[1-9][0-9]{0,4})$/;

/** v1 (§2.1): "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" with single spaces, or "PROXY UNKNOWN ...\r\n". */
export function parseProxyV1(bytes: Uint8Array, start: number, end: number): BalancerHeaderResult {
  const limit = Math.min(end, start + PROXY_V1_MAX);
  let lineEnd = -1;
  for (let i = start; i < limit; i++) {
    const byte = bytes[i]!;
    if (i - start < V1_PREFIX.length && byte !== V1_PREFIX.charCodeAt(i - start)) return -1;
    if (byte === 0x0d) {
      lineEnd = i;
      break;
    }
    if (byte < 0x20 || byte > 0x7e) return -1;
  }
  if (lineEnd < 0) return end - start >= PROXY_V1_MAX ? -1 : 0;
  if (lineEnd + 1 >= end) return 0;
  if (bytes[lineEnd + 1] !== 0x0a) return -1;
  const length = lineEnd + 2 - start;
  const fields = new TextDecoder().decode(bytes.subarray(start, lineEnd)).split(" ");
  if (fields[1] === "UNKNOWN") return { length, client: null };
  if (fields.length !== 6 || (fields[1] !== "TCP4" && fields[1] !== "TCP6")) return -1;
  const [, protocol, source, destination, sourcePort, destinationPort] = fields as [string, string, string, string, string, string];
  const size = protocol === "TCP4" ? 4 : 16;
  const address = parseIp(source);
  if (!address || address.length !== size || parseIp(destination)?.length !== size) return -1;
  if (!PORT.test(sourcePort) || !PORT.test(destinationPort) || Number(sourcePort) > 65535 || Number(destinationPort) > 65535) return -1;
  return { length, client: endpointFromBytes(address, Number(sourcePort)) };
}
