/**
 * The key of the stateless nonces (src/turn/nonce.ts), one for the whole fleet, so a nonce one relay
 * issued is good at every other behind the same name (a client that moves after a 300 redirect or a DNS
 * change keeps its nonce instead of a 438 round):
 *
 * - `--nonce-secret-file`: SHA-256 of the file's contents, the same file on every relay.
 * - else `--fleet-redis`: a random key created once for the realm (SET NX, so the first relay's wins)
 *   and read by the others. While Redis is unreachable a relay keys with its own random secret and asks
 *   again every heartbeat; the engines read the key from shared memory, so it changes without a restart
 *   (nonces issued in between get one 438 and the client retries with a fresh one, RFC 8489 §9.2.4).
 * - else a random key per process.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { RedisLink } from "./redis-link.ts";

export const NONCE_SECRET_BYTES = 32;
/** Shorter files are refused: a guessable key lets anyone mint nonces for every relay. */
const MIN_FILE_BYTES = 16;

export function nonceSecretKey(realm: string): string {
  return `bunturn/fleet/realm/${realm}/nonce-secret`;
}

/** A random key in shared memory the engines read on every nonce (see the header). */
export function createNonceSecret(): Uint8Array {
  const cells = new Uint8Array(new SharedArrayBuffer(NONCE_SECRET_BYTES));
  cells.set(randomBytes(NONCE_SECRET_BYTES));
  return cells;
}

/** The key from --nonce-secret-file; throws with the operator's reason when the file will not do. */
export function nonceSecretFromFile(file: string): Uint8Array {
  const contents = readFileSync(file);
  if (contents.length < MIN_FILE_BYTES) throw new Error(`--nonce-secret-file ${file}: holds ${contents.length} bytes, at least ${MIN_FILE_BYTES} bytes are needed`);
  return new Uint8Array(createHash("sha256").update(contents).digest());
}

/**
 * Reads the realm's key from Redis, creating it first if no relay has (SET NX, then GET: whoever set it,
 * every relay reads the same value). Resolves false when Redis could not be asked.
 */
export async function loadFleetNonceSecret(redis: RedisLink, realm: string, into: Uint8Array): Promise<boolean> {
  const key = nonceSecretKey(realm);
  try {
    await redis.send("SET", [key, randomBytes(NONCE_SECRET_BYTES).toString("hex"), "NX"]);
    const stored = await redis.send("GET", [key]);
    if (typeof stored !== "string" || !/^[0-9a-f]{64}$/.test(stored)) return false;
    into.set(Buffer.from(stored, "hex"));
    return true;
  } catch {
    return false;
  }
}
