/**
 * The other relays' allocations, in shared memory (docs/fleet.md): the main thread sums what the rest
 * of the fleet published in Redis (src/fleet/fleet-quota.ts) every heartbeat and writes it here; the
 * engines add it to their own counts when they check --user-quota and --total-quota (./quota.ts), so
 * the check stays synchronous and never waits on the network.
 *
 * Two tables and a cell saying which one is live: the main thread fills the idle one and flips the
 * cell, so an engine always reads a whole snapshot (the next rewrite of the same table is a heartbeat
 * away). Each table: the other relays' total, then per slot a user's hash (high, low) and count.
 */
import type { UserHash } from "./user-table.ts";

/** Users of the other relays counted per heartbeat; beyond 3/4 of this the rest count only locally. */
const FLEET_SLOTS = 1 << 14;
const FLEET_MASK = FLEET_SLOTS - 1;
export const FLEET_USER_LIMIT = (FLEET_SLOTS * 3) / 4;
const HEADER = 2; // [0] others' total, [1] users in the table
const TABLE_CELLS = HEADER + FLEET_SLOTS * 3;

export interface FleetCounts {
  /** [0] which table is live (0 or 1). */
  live: Int32Array;
  tables: [Int32Array, Int32Array];
}

export function createFleetCounts(): FleetCounts {
  const table = () => new Int32Array(new SharedArrayBuffer(TABLE_CELLS * 4));
  return { live: new Int32Array(new SharedArrayBuffer(4)), tables: [table(), table()] };
}

function liveTable(fleet: FleetCounts): Int32Array {
  return fleet.tables[Atomics.load(fleet.live, 0) & 1]!;
}

/** Allocations on the other relays (0 while alone or Redis is unreachable). */
export function othersTotal(fleet: FleetCounts): number {
  return liveTable(fleet)[0]!;
}

/** `key`'s allocations on the other relays. */
export function othersOfUser(fleet: FleetCounts, key: UserHash): number {
  const t = liveTable(fleet);
  let i = key.low & FLEET_MASK;
  for (;;) {
    const at = HEADER + i * 3;
    if (t[at + 2] === 0) return 0;
    if (t[at] === key.high && t[at + 1] === key.low) return t[at + 2]!;
    i = (i + 1) & FLEET_MASK;
  }
}

/**
 * The main thread's write: the others' total and per-user counts become the live snapshot. Returns how
 * many users did not fit (counted only on their own relay until the table has room).
 */
export function publishOthers(fleet: FleetCounts, total: number, users: Iterable<[UserHash, number]>): number {
  const idle = (Atomics.load(fleet.live, 0) & 1) ^ 1;
  const t = fleet.tables[idle]!;
  t.fill(0);
  let stored = 0;
  let dropped = 0;
  for (const [key, count] of users) {
    if (count <= 0) continue;
    let i = key.low & FLEET_MASK;
    while (t[HEADER + i * 3 + 2] !== 0 && (t[HEADER + i * 3] !== key.high || t[HEADER + i * 3 + 1] !== key.low)) i = (i + 1) & FLEET_MASK;
    const at = HEADER + i * 3;
    if (t[at + 2] === 0) {
      if (stored >= FLEET_USER_LIMIT) {
        dropped++;
        continue;
      }
      t[at] = key.high;
      t[at + 1] = key.low;
      stored++;
    }
    t[at + 2] = t[at + 2]! + count;
  }
  t[0] = total;
  t[1] = stored;
  Atomics.store(fleet.live, 0, idle);
  return dropped;
}
