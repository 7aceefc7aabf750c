/**
 * Caps on TCP and TLS client connections, shared by every engine through SharedArrayBuffers: the
 * kernel spreads one source's connections over all engines, so only shared counts can be exact.
 *
 * - A total: connections on the whole server (one Int32 cell, atomic add, undone when over).
 * - Per source: an IPv4 address, or an IPv6 /64 (what one subscriber usually holds), in an open-addressing
 *   table with linear probing and backward-shift deletion, under a spin lock (accept is not the hot path,
 *   and the lock is held for a few probes). An entry leaves when its last connection closes.
 */

/** Slots in the per-source table (4 Int32 each: 2 MiB). */
const SLOTS = 1 << 17;
const MASK = SLOTS - 1;
/** Sources beyond this (3/4 of the slots) are refused: probing stays short. */
const SOURCE_LIMIT = (SLOTS * 3) / 4;
const TOTAL_CELL = 0;
const LOCK_CELL = 1;
const SOURCES_CELL = 2;

export interface ConnectionTableShared {
  /** [0] connections on the server, [1] the table's lock, [2] sources in the table. */
  cells: Int32Array;
  /** Per slot: family (0 = empty), key high, key low, connections. */
  slots: Int32Array;
}

export interface ConnectionCaps {
  /** Connections on the whole server; 0 = unlimited. */
  total: number;
  /** Connections from one IPv4 address or IPv6 /64; 0 = unlimited. */
  perSource: number;
}

export function createConnectionTable(): ConnectionTableShared {
  return {
    cells: new Int32Array(new SharedArrayBuffer(3 * 4)),
    slots: new Int32Array(new SharedArrayBuffer(SLOTS * 4 * 4)),
  };
}

function word(a: Uint8Array, at: number): number {
  return ((a[at]! << 24) | (a[at + 1]! << 16) | (a[at + 2]! << 8) | a[at + 3]!) | 0;
}

function home(family: number, high: number, low: number): number {
  let h = Math.imul(high ^ Math.imul(family, 0x9e3779b9), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ low, 0xc2b2ae35);
  return (h ^ (h >>> 16)) & MASK;
}

export class ConnectionLimits {
  private readonly cells: Int32Array;
  private readonly slots: Int32Array;

  constructor(shared: ConnectionTableShared, readonly caps: ConnectionCaps) {
    this.cells = shared.cells;
    this.slots = shared.slots;
  }

  /** Client connections counted on the whole server now. */
  get total(): number {
    return Atomics.load(this.cells, TOTAL_CELL);
  }

  /** Connections counted now from `address`'s source (its IPv4 address or IPv6 /64). */
  countFrom(address: Uint8Array): number {
    this.lock();
    try {
      return this.slots[this.find(address) * 4 + 3]!;
    } finally {
      this.unlock();
    }
  }

  /** Counts a new connection from `address` (4 or 16 bytes); false, with nothing counted, when a cap is reached. */
  admit(address: Uint8Array): boolean {
    const total = Atomics.add(this.cells, TOTAL_CELL, 1) + 1;
    if (this.caps.total > 0 && total > this.caps.total) {
      Atomics.sub(this.cells, TOTAL_CELL, 1);
      return false;
    }
    if (this.caps.perSource === 0) return true;
    this.lock();
    try {
      const i = this.find(address);
      const t = this.slots;
      const count = t[i * 4 + 3]!;
      if (count >= this.caps.perSource || (count === 0 && Atomics.load(this.cells, SOURCES_CELL) >= SOURCE_LIMIT)) {
        Atomics.sub(this.cells, TOTAL_CELL, 1);
        return false;
      }
      if (count === 0) {
        const [family, high, low] = key(address);
        t[i * 4] = family;
        t[i * 4 + 1] = high;
        t[i * 4 + 2] = low;
        Atomics.add(this.cells, SOURCES_CELL, 1);
      }
      t[i * 4 + 3] = count + 1;
      return true;
    } finally {
      this.unlock();
    }
  }

  /** Gives back what admit(address) counted. */
  release(address: Uint8Array): void {
    Atomics.sub(this.cells, TOTAL_CELL, 1);
    if (this.caps.perSource === 0) return;
    this.lock();
    try {
      const i = this.find(address);
      const count = this.slots[i * 4 + 3]!;
      if (count > 1) this.slots[i * 4 + 3] = count - 1;
      else if (count === 1) {
        this.removeSlot(i);
        Atomics.sub(this.cells, SOURCES_CELL, 1);
      }
    } finally {
      this.unlock();
    }
  }

  /** The slot holding `address`'s source, or the empty slot where it would go. Call under the lock. */
  private find(address: Uint8Array): number {
    const [family, high, low] = key(address);
    const t = this.slots;
    let i = home(family, high, low);
    while (t[i * 4] !== 0 && (t[i * 4] !== family || t[i * 4 + 1] !== high || t[i * 4 + 2] !== low)) i = (i + 1) & MASK;
    return i;
  }

  /** Linear probing's backward-shift deletion: later entries of the same run move up, no tombstones. */
  private removeSlot(hole: number): void {
    const t = this.slots;
    let j = hole;
    for (;;) {
      j = (j + 1) & MASK;
      if (t[j * 4] === 0) break;
      const h = home(t[j * 4]!, t[j * 4 + 1]!, t[j * 4 + 2]!);
      const stays = hole <= j ? hole < h && h <= j : hole < h || h <= j;
      if (stays) continue;
      for (let k = 0; k < 4; k++) t[hole * 4 + k] = t[j * 4 + k]!;
      hole = j;
    }
    t.fill(0, hole * 4, hole * 4 + 4);
  }

  private lock(): void {
    while (Atomics.compareExchange(this.cells, LOCK_CELL, 0, 1) !== 0) { /* spin: held for a few probes */ }
  }

  private unlock(): void {
    Atomics.store(this.cells, LOCK_CELL, 0);
  }
}

/** IPv4: the address; IPv6: its /64 (an IPv4-mapped address counts as the IPv4 address). */
function key(address: Uint8Array): [number, number, number] {
  if (address.length === 4) return [4, word(address, 0), 0];
  if (isV4Mapped(address)) return [4, word(address, 12), 0];
  return [6, word(address, 0), word(address, 4)];
}

function isV4Mapped(a: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return false;
  return a[10] === 0xff && a[11] === 0xff;
}
