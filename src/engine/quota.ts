/**
 * coturn's allocation quotas and bandwidth capacity, shared by every engine through SharedArrayBuffers
 * (the kernel spreads one user's clients over several engines, so per-engine counts would be wrong):
 *
 * - `--total-quota`: allocations on the whole server, one Int32 cell.
 * - `--user-quota`: allocations per username, in a fixed-size open-addressing table keyed by a 64-bit hash
 *   of the username (usernames are unbounded: TURN REST mints one per expiry, so an entry leaves the table
 *   when its last allocation ends). A spin lock guards the table: Allocate is the control path, and the
 *   lock is held for a few probes.
 * - `--bps-capacity`: bytes per second reserved by sessions (each reserves its --max-bps), as coturn's
 *   allocate_bps does: a session gets what is left when less than --max-bps remains, 486 when nothing is.
 *
 * The total is an atomic add followed by a check and an undo when over the limit, so two engines racing
 * for the last slot can both be refused, never both admitted.
 */
import type { Endpoint } from "../net/endpoint.ts";
import type { AllocationQuota } from "../turn/api.ts";
import { restUserOf } from "../turn/credentials.ts";

/** Slots in the per-user table (3 Int32 each: 1.5 MiB). */
const USER_SLOTS = 1 << 17;
const USER_MASK = USER_SLOTS - 1;
/** Users with live allocations beyond this (3/4 of the slots) get 486: probing stays short. */
const USER_LIMIT = (USER_SLOTS * 3) / 4;
const TOTAL_CELL = 0;
const LOCK_CELL = 1;
const USERS_CELL = 2;

export interface QuotaShared {
  /** [0] allocations on the server, [1] the user table's lock, [2] users in the table. */
  counts: Int32Array;
  /** Per slot: hash high, hash low, allocations (0 = empty slot). */
  users: Int32Array;
  /** [0] bytes per second reserved by live sessions (BigInt for headroom past 2 GB/s). */
  bandwidth: BigInt64Array;
}

export interface QuotaLimits {
  /** coturn --user-quota; 0 = unlimited. */
  userQuota: number;
  /** coturn --total-quota; 0 = unlimited. */
  totalQuota: number;
  /** coturn --bps-capacity in bytes per second; 0 = unlimited. */
  bpsCapacity: number;
  /**
   * TURN REST usernames are `expiry:user` or `user:expiry`; the quota counts the user, not the credential
   * (coturn's get_real_username), in both orders.
   */
  restUsernames: boolean;
}

export function createQuotaShared(): QuotaShared {
  return {
    counts: new Int32Array(new SharedArrayBuffer(3 * 4)),
    users: new Int32Array(new SharedArrayBuffer(USER_SLOTS * 3 * 4)),
    bandwidth: new BigInt64Array(new SharedArrayBuffer(8)),
  };
}

/** FNV-1a over the UTF-16 code units; two seeds make the 64-bit key. */
function hash(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export class SharedQuota implements AllocationQuota {
  private readonly counts: Int32Array;
  private readonly users: Int32Array;
  private readonly bandwidth: BigInt64Array;

  constructor(shared: QuotaShared, private readonly limits: QuotaLimits) {
    this.counts = shared.counts;
    this.users = shared.users;
    this.bandwidth = shared.bandwidth;
  }

  /** Allocations counted on the whole server (all engines). */
  get total(): number {
    return Atomics.load(this.counts, TOTAL_CELL);
  }

  /** Usernames holding allocations now (counted only with --user-quota). */
  get userCount(): number {
    return Atomics.load(this.counts, USERS_CELL);
  }

  acquire(username: string | undefined, _client: Endpoint): boolean {
    const { totalQuota, userQuota } = this.limits;
    const total = Atomics.add(this.counts, TOTAL_CELL, 1) + 1;
    if (totalQuota > 0 && total > totalQuota) {
      Atomics.sub(this.counts, TOTAL_CELL, 1);
      return false;
    }
    if (username === undefined || userQuota === 0) return true;
    if (!this.changeUser(username, 1, userQuota)) {
      Atomics.sub(this.counts, TOTAL_CELL, 1);
      return false;
    }
    return true;
  }

  release(username: string | undefined, _client: Endpoint): void {
    Atomics.sub(this.counts, TOTAL_CELL, 1);
    if (username !== undefined && this.limits.userQuota !== 0) this.changeUser(username, -1, 0);
  }

  reserveBandwidth(bytesPerSecond: number): number {
    const capacity = BigInt(this.limits.bpsCapacity);
    const wanted = BigInt(bytesPerSecond);
    if (capacity === 0n) {
      Atomics.add(this.bandwidth, 0, wanted);
      return bytesPerSecond;
    }
    for (;;) {
      const reserved = Atomics.load(this.bandwidth, 0);
      if (reserved >= capacity) return 0;
      const granted = capacity - reserved < wanted ? capacity - reserved : wanted;
      if (Atomics.compareExchange(this.bandwidth, 0, reserved, reserved + granted) === reserved) return Number(granted);
    }
  }

  releaseBandwidth(bytesPerSecond: number): void {
    Atomics.sub(this.bandwidth, 0, BigInt(bytesPerSecond));
  }

  /**
   * Adds `delta` (+1 or -1) to the user's allocations under the table lock. +1 fails when the user already
   * holds `quota`, or when the table is full of other users.
   */
  private changeUser(username: string, delta: 1 | -1, quota: number): boolean {
    const user = this.limits.restUsernames ? restUserOf(username) : username;
    const high = hash(user, 0) | 0;
    const low = hash(user, 0x9e3779b9) | 0;
    const t = this.users;
    this.lock();
    try {
      let i = low & USER_MASK;
      while (t[i * 3 + 2] !== 0 && (t[i * 3] !== high || t[i * 3 + 1] !== low)) i = (i + 1) & USER_MASK;
      const count = t[i * 3 + 2]!;
      if (delta === 1) {
        if (count >= quota) return false;
        if (count === 0) {
          if (Atomics.load(this.counts, USERS_CELL) >= USER_LIMIT) return false;
          t[i * 3] = high;
          t[i * 3 + 1] = low;
          Atomics.add(this.counts, USERS_CELL, 1);
        }
        t[i * 3 + 2] = count + 1;
        return true;
      }
      if (count === 0) return true; // not found: nothing to give back
      if (count > 1) {
        t[i * 3 + 2] = count - 1;
        return true;
      }
      this.removeSlot(i);
      Atomics.sub(this.counts, USERS_CELL, 1);
      return true;
    } finally {
      Atomics.store(this.counts, LOCK_CELL, 0);
    }
  }

  /** Linear probing's backward-shift deletion: later entries of the same probe run move up, no tombstones. */
  private removeSlot(hole: number): void {
    const t = this.users;
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

  private lock(): void {
    // Engines hold it for a few probes; a preempted holder costs the others a short spin.
    while (Atomics.compareExchange(this.counts, LOCK_CELL, 0, 1) !== 0) { /* spin */ }
  }
}

