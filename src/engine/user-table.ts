/**
 * The per-user allocation counts behind --user-quota (./quota.ts), in shared memory: a fixed-size
 * open-addressing table keyed by a 64-bit hash of the username. Usernames are unbounded (TURN REST mints
 * one per expiry), so an entry leaves the table when its last allocation ends. A spin lock in the quota's
 * counts guards it: Allocate is the control path, and the lock is held for a few probes.
 */

/** Slots in the table (3 Int32 each: 1.5 MiB). */
const USER_SLOTS = 1 << 17;
const USER_MASK = USER_SLOTS - 1;
/** Users with live allocations beyond this (3/4 of the slots) get 486: probing stays short. */
const USER_LIMIT = (USER_SLOTS * 3) / 4;
/** Cells of the quota's counts array this table uses. */
const LOCK_CELL = 1;
const USERS_CELL = 2;

export interface UserHash {
  readonly high: number;
  readonly low: number;
}

/** Per slot: hash high, hash low, allocations (0 = empty slot). */
export function createUserTable(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(USER_SLOTS * 3 * 4));
}

/** FNV-1a over the UTF-16 code units; two seeds make the 64-bit key. */
function fnv1a(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export function userHash(user: string): UserHash {
  return { high: fnv1a(user, 0) | 0, low: fnv1a(user, 0x9e3779b9) | 0 };
}

export function lockTable(counts: Int32Array): void {
  // Engines hold it for a few probes; a preempted holder costs the others a short spin.
  while (Atomics.compareExchange(counts, LOCK_CELL, 0, 1) !== 0) { /* spin */ }
}

export function unlockTable(counts: Int32Array): void {
  Atomics.store(counts, LOCK_CELL, 0);
}

/** Users in the table now. */
export function usersInTable(counts: Int32Array): number {
  return Atomics.load(counts, USERS_CELL);
}

/**
 * Adds `delta` (+1 or -1) to the user's allocations; the caller holds the lock. +1 fails when the user
 * already holds `quota`, or when the table is full of other users.
 */
export function changeUser(t: Int32Array, counts: Int32Array, key: UserHash, delta: 1 | -1, quota: number): boolean {
  const { high, low } = key;
  let i = low & USER_MASK;
  while (t[i * 3 + 2] !== 0 && (t[i * 3] !== high || t[i * 3 + 1] !== low)) i = (i + 1) & USER_MASK;
  const count = t[i * 3 + 2]!;
  if (delta === 1) {
    if (count >= quota) return false;
    if (count === 0) {
      if (Atomics.load(counts, USERS_CELL) >= USER_LIMIT) return false;
      t[i * 3] = high;
      t[i * 3 + 1] = low;
      Atomics.add(counts, USERS_CELL, 1);
    }
    t[i * 3 + 2] = count + 1;
    return true;
  }
  if (count === 0) return true; // not found: nothing to give back
  if (count > 1) {
    t[i * 3 + 2] = count - 1;
    return true;
  }
  removeSlot(t, i);
  Atomics.sub(counts, USERS_CELL, 1);
  return true;
}

/** Linear probing's backward-shift deletion: later entries of the same probe run move up, no tombstones. */
function removeSlot(t: Int32Array, hole: number): void {
  let j = hole;
  for (;;) {
    j = (j + 1) & USER_MASK;
    if (t[j * 3 + 2] === 0) break;
    const home = t[j * 3 + 1]! & USER_MASK;
    // The entry at j may fill the hole only if its home slot is not cyclically within (hole, j].
    const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
    if (stays) continue;
    t[hole * 3] = t[j * 3]!;
    t[hole * 3 + 1] = t[j * 3 + 1]!;
    t[hole * 3 + 2] = t[j * 3 + 2]!;
    hole = j;
  }
  t[hole * 3 + 2] = 0;
}

/** Every user's count, for the fleet heartbeat (src/fleet/fleet-quota.ts); the caller holds the lock. */
export function userCounts(t: Int32Array): Array<[UserHash, number]> {
  const out: Array<[UserHash, number]> = [];
  for (let i = 0; i < USER_SLOTS; i++) {
    const count = t[i * 3 + 2]!;
    if (count > 0) out.push([{ high: t[i * 3]!, low: t[i * 3 + 1]! }, count]);
  }
  return out;
}
