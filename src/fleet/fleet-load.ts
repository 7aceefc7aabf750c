/**
 * Load-aware ALTERNATE-SERVER across a fleet (docs/fleet.md): each relay's heartbeat carries its load
 * (allocations, bytes relayed per second, --fleet-capacity, draining) and where clients reach it; from
 * the other live relays' heartbeats the main thread picks, per address family, the one to send
 * Allocates to when this relay is full or draining (src/engine/fleet-redirect.ts): not draining, with
 * room, fewest allocations, then fewest bytes per second.
 */
import { parseIp, type Family } from "../net/endpoint.ts";
import type { FleetTarget } from "../engine/fleet-redirect.ts";

export interface RelayLoad {
  allocations: number;
  /** Bytes relayed per second (both ways), over the last heartbeat. */
  bps: number;
  /** --fleet-capacity; 0 = no limit. */
  capacity: number;
  draining: boolean;
  /** Where clients reach it: one address per family, the listening port, the TLS port. */
  addresses: string[];
  port: number;
  tlsPort?: number;
}

function hasRoom(load: RelayLoad): boolean {
  return !load.draining && (load.capacity === 0 || load.allocations < load.capacity);
}

/** The least-loaded relay with room, per family, among the others' loads. */
export function pickTargets(loads: RelayLoad[]): Partial<Record<Family, FleetTarget>> {
  const ranked = loads.filter(hasRoom).sort((a, b) => a.allocations - b.allocations || a.bps - b.bps);
  const targets: Partial<Record<Family, FleetTarget>> = {};
  for (const load of ranked) {
    for (const ip of load.addresses ?? []) {
      const address = parseIp(ip);
      if (!address) continue;
      const family: Family = address.length === 4 ? 4 : 6;
      if (targets[family]) continue;
      targets[family] = { address, port: load.port, ...(load.tlsPort ? { tlsPort: load.tlsPort } : {}) };
    }
  }
  return targets;
}
