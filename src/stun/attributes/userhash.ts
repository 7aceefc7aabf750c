/** USERHASH (RFC 8489 §14.4): SHA-256(OpaqueString(username) ":" OpaqueString(realm)), 32 bytes. */
import { createHash } from "node:crypto";

export const USERHASH_LENGTH = 32;

export function computeUserhash(username: string, realm: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(`${username}:${realm}`, "utf8").digest());
}

export function isValidUserhashLength(length: number): boolean {
  return length === USERHASH_LENGTH;
}
