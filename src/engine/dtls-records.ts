/**
 * What the DTLS transport reads of a datagram before OpenSSL does (RFC 6347 §4.1, §4.2): the record
 * headers (how many records, whether all carry application data) and a ClientHello's random.
 */
import { DTLS_RECORD_HEADER } from "../../ffi/libssl.ts";

export const CONTENT_HANDSHAKE = 22;
const CONTENT_APPLICATION_DATA = 23;
const CLIENT_HELLO = 1;

/** Where ClientHello.random starts: record header, handshake header (12), client_version (2). */
const RANDOM_AT = DTLS_RECORD_HEADER + 12 + 2;
const RANDOM_BYTES = 32;

/** A ClientHello in epoch 0 whose random is not `random` (the one an association began with): its client started over. */
export function isNewClientHello(random: string, arena: Uint8Array, offset: number, length: number): boolean {
  return length >= RANDOM_AT + RANDOM_BYTES && arena[offset] === CONTENT_HANDSHAKE && arena[offset + 3] === 0 && arena[offset + 4] === 0 &&
    arena[offset + DTLS_RECORD_HEADER] === CLIENT_HELLO && helloRandom(arena, offset, length) !== random;
}

/** ClientHello.random as a string to compare, or "" when the datagram is too short for one. */
export function helloRandom(arena: Uint8Array, offset: number, length: number): string {
  if (length < RANDOM_AT + RANDOM_BYTES) return "";
  let text = "";
  for (let k = offset + RANDOM_AT; k < offset + RANDOM_AT + RANDOM_BYTES; k++) text += String.fromCharCode(arena[k]!);
  return text;
}

/** One result object, reused: the data path allocates nothing per datagram. */
const recordCount = { count: 0, allApplicationData: true };
/** How many records the datagram holds (RFC 6347 §4.1: several may share one), and whether all are application data. */
export function countRecords(arena: Uint8Array, offset: number, length: number): typeof recordCount {
  let count = 0;
  let all = true;
  const end = offset + length;
  for (let at = offset; at + DTLS_RECORD_HEADER <= end; at += DTLS_RECORD_HEADER + ((arena[at + 11]! << 8) | arena[at + 12]!)) {
    count++;
    if (arena[at] !== CONTENT_APPLICATION_DATA) all = false;
  }
  recordCount.count = Math.max(count, 1);
  recordCount.allApplicationData = all;
  return recordCount;
}
