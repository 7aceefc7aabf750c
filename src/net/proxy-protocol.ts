/**
 * The PROXY protocol v2 header (HAProxy's spec, section 2.2), which the TLS front end writes at the start
 * of each decrypted stream it hands to an engine, so that the engine sees the client's real address as
 * the 5-tuple (XOR-MAPPED-ADDRESS, nonces, quotas). Only TCP over IPv4/IPv6 with the PROXY command.
 */
import { endpointFromBytes, type Endpoint } from "./endpoint.ts";

const SIGNATURE = new Uint8Array([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const VERSION_PROXY = 0x21;
const TCP4 = 0x11;
const TCP6 = 0x21;
const HEADER = 16;

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
