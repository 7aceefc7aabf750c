/**
 * EVEN-PORT reservations counted against their user (./quota.ts), in shared memory: a small
 * open-addressing table keyed by the reservation token, holding the hash of the user whose quota unit the
 * token carries. Reservations live 30 s and are rare, so 4,096 slots (80 KiB) hold far more than a real
 * server has at once; past 3/4 of them a new one is refused (the Allocate gets 486) and probing stays
 * short. The caller holds the quota's lock around every call.
 */
import type { UserHash } from "./user-table.ts";

const SLOTS = 4096;
const MASK = SLOTS - 1;
const LIMIT = (SLOTS * 3) / 4;
/** Per slot: token high, token low, user hash high, user hash low, state. */
const FIELDS = 5;
const FREE = 0;
const NO_USER = 1;
const USER = 2;
/** The live count, after the slots. */
const COUNT = SLOTS * FIELDS;

export function createReservationTable(): Int32Array {
  return new Int32Array(new SharedArrayBuffer((SLOTS * FIELDS + 1) * 4));
}

function halves(token: bigint): [high: number, low: number] {
  return [Number(token >> 32n) | 0, Number(token & 0xffffffffn) | 0];
}

/** Where `token` is, or the free slot that ends its probe run. */
function find(t: Int32Array, high: number, low: number): number {
  let i = (Math.imul(low ^ high, 0x9e3779b1) >>> 20) & MASK;
  while (t[i * FIELDS + 4] !== FREE && (t[i * FIELDS] !== high || t[i * FIELDS + 1] !== low)) i = (i + 1) & MASK;
  return i;
}

/** Records that `token` carries `holder`'s unit (null: no user counted). False when the table is full. */
export function putReservation(t: Int32Array, token: bigint, holder: UserHash | null): boolean {
  const [high, low] = halves(token);
  const i = find(t, high, low);
  const at = i * FIELDS;
  if (t[at + 4] === FREE) {
    if (t[COUNT]! >= LIMIT) return false;
    t[COUNT]!++;
  }
  t[at] = high;
  t[at + 1] = low;
  t[at + 2] = holder?.high ?? 0;
  t[at + 3] = holder?.low ?? 0;
  t[at + 4] = holder === null ? NO_USER : USER;
  return true;
}

/** Removes `token`'s entry and returns its holder (null: no user), or undefined when it has none. */
export function takeReservation(t: Int32Array, token: bigint): UserHash | null | undefined {
  const [high, low] = halves(token);
  const i = find(t, high, low);
  const at = i * FIELDS;
  if (t[at + 4] === FREE) return undefined;
  const holder = t[at + 4] === USER ? { high: t[at + 2]!, low: t[at + 3]! } : null;
  removeSlot(t, i);
  t[COUNT]!--;
  return holder;
}

/** Reservations recorded now. */
export function reservationCount(t: Int32Array): number {
  return t[COUNT]!;
}

/** Linear probing's backward-shift deletion (as in ./user-table.ts): no tombstones. */
function removeSlot(t: Int32Array, hole: number): void {
  let j = hole;
  for (;;) {
    j = (j + 1) & MASK;
    if (t[j * FIELDS + 4] === FREE) break;
    const home = (Math.imul(t[j * FIELDS + 1]! ^ t[j * FIELDS]!, 0x9e3779b1) >>> 20) & MASK;
    const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
    if (stays) continue;
    t.copyWithin(hole * FIELDS, j * FIELDS, j * FIELDS + FIELDS);
    hole = j;
  }
  t[hole * FIELDS + 4] = FREE;
}
