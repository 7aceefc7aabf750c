/**
 * coturn's allocation quotas and bandwidth capacity, shared by every engine through SharedArrayBuffers
 * (the kernel spreads one user's clients over several engines, so per-engine counts would be wrong):
 *
 * - `--total-quota`: allocations on the whole server, one Int32 cell.
 * - `--user-quota`: allocations per username (TURN REST: per user), in ./user-table.ts, under a spin lock.
 * - `--bps-capacity`: bytes per second reserved by sessions (each reserves its --max-bps), as coturn's
 *   allocate_bps does: a session gets what is left when less than --max-bps remains, 486 when nothing is.
 *
 * The total is an atomic add followed by a check and an undo when over the limit, so two engines racing
 * for the last slot can both be refused, never both admitted.
 *
 * In a fleet (--fleet-redis) the other relays' allocations are added to this server's own, from shared
 * memory the main thread refreshes every heartbeat (./fleet-counts.ts): two relays racing within one
 * heartbeat can both admit, so a fleet's quota can be exceeded by what arrives within a second.
 *
 * An EVEN-PORT reservation (RFC 8656 §7.2, R bit) holds a port for 30 s, so it counts as one of its
 * user's allocations while its token lives: the core acquires a unit for it and then records the token
 * (./reservation-holds.ts). Whichever engine redeems the token takes the unit over (acquireReserved);
 * the engine that issued it releases it when it expires unclaimed.
 */
import type { Endpoint } from "../net/endpoint.ts";
import type { AllocationQuota } from "../turn/api.ts";
import { restUserOf } from "../turn/credentials.ts";
import { createReservationTable, putReservation, reservationCount, takeReservation } from "./reservation-holds.ts";
import { changeUser, createUserTable, lockTable, unlockTable, userCounts, userHash, usersInTable, type UserHash } from "./user-table.ts";
import { createFleetCounts, othersOfUser, othersTotal, type FleetCounts } from "./fleet-counts.ts";

const TOTAL_CELL = 0;

export interface QuotaShared {
  /** [0] allocations on the server, [1] the user table's lock, [2] users in the table (./user-table.ts). */
  counts: Int32Array;
  /** Per slot: hash high, hash low, allocations (0 = empty slot). */
  users: Int32Array;
  /** [0] bytes per second reserved by live sessions (BigInt for headroom past 2 GB/s). */
  bandwidth: BigInt64Array;
  /** EVEN-PORT reservations counted against their user (./reservation-holds.ts). */
  reservations: Int32Array;
  /** The other relays' allocations (./fleet-counts.ts); all zero for a relay alone. */
  fleet: FleetCounts;
}

/** This server's own allocations (every engine's). */
export function localAllocations(shared: QuotaShared): number {
  return Atomics.load(shared.counts, TOTAL_CELL);
}

/** This server's own allocations, in total and per user hash (what a fleet heartbeat publishes). */
export function localCounts(shared: QuotaShared): { total: number; users: Array<[UserHash, number]> } {
  lockTable(shared.counts);
  const users = userCounts(shared.users);
  unlockTable(shared.counts);
  return { total: Atomics.load(shared.counts, TOTAL_CELL), users };
}

/** A username's place in the user table; null when allocations are not counted per user. */
type UserKey = UserHash | null;

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
  /** coturn --rest-api-separator between the timestamp and the user (default ':'). */
  restSeparator?: string;
}

export function createQuotaShared(): QuotaShared {
  return {
    counts: new Int32Array(new SharedArrayBuffer(3 * 4)),
    users: createUserTable(),
    bandwidth: new BigInt64Array(new SharedArrayBuffer(8)),
    reservations: createReservationTable(),
    fleet: createFleetCounts(),
  };
}

export class SharedQuota implements AllocationQuota {
  private readonly counts: Int32Array;
  private readonly users: Int32Array;
  private readonly bandwidth: BigInt64Array;
  private readonly reservations: Int32Array;
  private readonly fleet: FleetCounts;

  constructor(shared: QuotaShared, private readonly limits: QuotaLimits) {
    this.counts = shared.counts;
    this.users = shared.users;
    this.bandwidth = shared.bandwidth;
    this.reservations = shared.reservations;
    this.fleet = shared.fleet;
  }

  /** Allocations counted on the whole server (all engines). */
  get total(): number {
    return Atomics.load(this.counts, TOTAL_CELL);
  }

  /** Usernames holding allocations now (counted only with --user-quota). */
  get userCount(): number {
    return usersInTable(this.counts);
  }

  acquire(username: string | undefined, _client: Endpoint): boolean {
    return this.admit(this.userKey(username));
  }

  release(username: string | undefined, _client: Endpoint): void {
    this.leave(this.userKey(username));
  }

  /**
   * The unit the core acquired for an EVEN-PORT reservation now belongs to `token` (see the header).
   * False when no more reservations can be recorded: the core undoes the Allocate (486).
   */
  holdReservation(username: string | undefined, _client: Endpoint, token: bigint): boolean {
    const key = this.userKey(username);
    this.lock();
    const held = putReservation(this.reservations, token, key);
    this.unlock();
    return held;
  }

  /** `token` expired unredeemed: its unit goes back (nothing happens if an Allocate redeemed it). */
  releaseReservation(token: bigint): void {
    this.lock();
    const holder = takeReservation(this.reservations, token);
    this.unlock();
    if (holder !== undefined) this.leave(holder);
  }

  /**
   * In place of `acquire` for an Allocate with RESERVATION-TOKEN: the new allocation takes over the unit
   * its reservation held (the same user: no change; another user: it must have room, the holder gets one
   * back). A token recorded nowhere is an ordinary `acquire`.
   */
  acquireReserved(username: string | undefined, client: Endpoint, token: bigint): boolean {
    const key = this.userKey(username);
    this.lock();
    const holder = takeReservation(this.reservations, token);
    if (holder === undefined) {
      this.unlock();
      return this.acquire(username, client);
    }
    if (holder?.high !== key?.high || holder?.low !== key?.low) {
      if (key !== null && !this.changeUserLocked(key, 1, this.limits.userQuota)) {
        putReservation(this.reservations, token, holder); // the slot it just left is free
        this.unlock();
        return false;
      }
      if (holder !== null) this.changeUserLocked(holder, -1, 0);
    }
    this.unlock();
    return true;
  }

  /** Reservations whose unit is counted now. */
  get reservationCount(): number {
    return reservationCount(this.reservations);
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

  private userKey(username: string | undefined): UserKey {
    if (username === undefined || this.limits.userQuota === 0) return null;
    return userHash(this.limits.restUsernames ? restUserOf(username, this.limits.restSeparator) : username);
  }

  /** One more allocation, for the server and its user (if counted): false = over a quota. */
  private admit(key: UserKey): boolean {
    const total = Atomics.add(this.counts, TOTAL_CELL, 1) + 1;
    if (this.limits.totalQuota > 0 && total + othersTotal(this.fleet) > this.limits.totalQuota) {
      Atomics.sub(this.counts, TOTAL_CELL, 1);
      return false;
    }
    if (key === null) return true;
    this.lock();
    const admitted = this.changeUserLocked(key, 1, this.limits.userQuota);
    this.unlock();
    if (!admitted) Atomics.sub(this.counts, TOTAL_CELL, 1);
    return admitted;
  }

  private leave(key: UserKey): void {
    Atomics.sub(this.counts, TOTAL_CELL, 1);
    if (key === null) return;
    this.lock();
    this.changeUserLocked(key, -1, 0);
    this.unlock();
  }

  /** `quota` counts the whole fleet: what the other relays hold of it is not left for this one. */
  private changeUserLocked(key: UserHash, delta: 1 | -1, quota: number): boolean {
    if (delta === 1) quota -= othersOfUser(this.fleet, key);
    return changeUser(this.users, this.counts, key, delta, quota);
  }

  private lock(): void {
    lockTable(this.counts);
  }

  private unlock(): void {
    unlockTable(this.counts);
  }
}
