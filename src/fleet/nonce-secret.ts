/**
 * The key of the stateless nonces (src/turn/nonce.ts), one for the whole fleet, so a nonce one relay
 * issued is good at every other behind the same name (a client that moves after a 300 redirect or a DNS
 * change keeps its nonce instead of a 438 round):
 *
 * - `--nonce-secret-file`: SHA-256 of the file's contents, the same file on every relay.
 * - else `--fleet-redis`: a random key created once for the realm (SET NX, so the first relay's wins)
 *   and read by the others. Every heartbeat each relay offers the key it holds (SET NX) and takes the
 *   stored one: a Redis that restarted empty gets the fleet's key back from the first relay to beat, and
 *   a relay that started while Redis was unreachable (keying with its own random secret meanwhile) takes
 *   the fleet's. The engines read the key from shared memory, so it changes without a restart (nonces
 *   issued with the old one get one 438 and the client retries with a fresh one, RFC 8489 §9.2.4).
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
 * Offers the key held in `into` as the realm's (SET NX: only where there is none), then takes the stored
 * one into `into` (whoever set it, every relay reads the same value). False when Redis could not be asked.
 */
export async function loadFleetNonceSecret(redis: RedisLink, realm: string, into: Uint8Array): Promise<boolean> {
  const key = nonceSecretKey(realm);
  try {
    await redis.send("SET", [key, Buffer.from(into).toString("hex"), "NX"]);
    const stored = await redis.send("GET", [key]);
    if (typeof stored !== "string" || !/^[0-9a-f]{64}$/.test(stored)) return false;
    const fleetKey = Buffer.from(stored, "hex");
    if (!fleetKey.equals(Buffer.from(into))) into.set(fleetKey);
    return true;
  } catch {
    return false;
  }
}
