/**
 * Where this relay sends an Allocate it does not take in a fleet (docs/fleet.md): the least-loaded live
 * peer with room, per address family, as the main thread picks it every heartbeat
 * (src/fleet/fleet-load.ts), in shared memory the engines' admission reads (./admission.ts). A sequence
 * lock: the writer makes the count odd, writes, makes it even; a reader retries across a write.
 *
 * Cells: [0] sequence, then per family (IPv4, IPv6) 7 cells: present, address (4 cells of 32 bits),
 * port, TLS port (0 = none).
 */
import { endpointFromBytes, type Endpoint, type Family } from "../net/endpoint.ts";

const FAMILY_CELLS = 7;
const BASE: Record<Family, number> = { 4: 1, 6: 1 + FAMILY_CELLS };

export interface FleetTarget {
  /** 4 or 16 bytes. */
  address: Uint8Array;
  port: number;
  tlsPort?: number;
}

export function createFleetRedirect(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4 * (1 + 2 * FAMILY_CELLS)));
}

/** The main thread's write: the peer to send each family's clients to (absent = none). */
export function setFleetTargets(cells: Int32Array, targets: Partial<Record<Family, FleetTarget>>): void {
  Atomics.add(cells, 0, 1);
  for (const family of [4, 6] as const) {
    const base = BASE[family];
    const target = targets[family];
    cells.fill(0, base, base + FAMILY_CELLS);
    if (!target) continue;
    const view = new DataView(target.address.buffer, target.address.byteOffset, target.address.byteLength);
    for (let i = 0; i < target.address.length / 4; i++) cells[base + 1 + i] = view.getInt32(i * 4);
    cells[base + 5] = target.port;
    cells[base + 6] = target.tlsPort ?? 0;
    cells[base] = 1;
  }
  Atomics.add(cells, 0, 1);
}

/** The engine's read: the peer for a client of `family` on TLS or not; undefined when there is none. */
export function fleetTarget(cells: Int32Array, family: Family, tls: boolean): Endpoint | undefined {
  const base = BASE[family];
  for (;;) {
    const before = Atomics.load(cells, 0);
    if ((before & 1) === 0) {
      const present = cells[base] === 1;
      const port = cells[base + (tls ? 6 : 5)]!;
      const bytes = new Uint8Array(family === 4 ? 4 : 16);
      const view = new DataView(bytes.buffer);
      for (let i = 0; i < bytes.length / 4; i++) view.setInt32(i * 4, cells[base + 1 + i]!);
      if (Atomics.load(cells, 0) === before) return present && port !== 0 ? endpointFromBytes(bytes, port) : undefined;
    }
  }
}
