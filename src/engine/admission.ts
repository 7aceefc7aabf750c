/**
 * The engine's answer to "may this Allocate be served here?" (AllocateAdmission, RFC 8656 §7.2): the
 * client's transport picks the alternate-server list (src/config/alternates.ts), servers of the client's
 * family are taken round robin (coturn's set_alternate_server), and the drain flag, set by the main thread
 * in shared memory on SIGUSR1, turns "serve here" into "refuse" and lets a list that names this server
 * redirect to the others. In a fleet (--fleet-redis) an Allocate the static lists do not redirect goes to
 * the least-loaded live peer (./fleet-redirect.ts) while this relay drains or holds --fleet-capacity.
 */
import type { Alternates, ClientTransport } from "../config/alternates.ts";
import { parseEndpoint, type Endpoint } from "../net/endpoint.ts";
import { isConnection, type AllocateAdmission, type ClientPath, type ConnectionId } from "../turn/api.ts";
import { fleetTarget } from "./fleet-redirect.ts";

/** A fleet's redirect: where to (shared cells), and when this relay counts as full. */
export interface FleetAdmission {
  cells: Int32Array;
  /** --fleet-capacity; 0 = never full. */
  capacity: number;
  /** This relay's allocations now (all engines). */
  allocations(): number;
}

/** Cells of the main thread's control array (src/engine/relay-server.ts). */
export const CONTROL_STOP = 0;
export const CONTROL_DRAIN = 1;
export const CONTROL_CELLS = 2;

interface ResolvedList {
  servers: Endpoint[];
  namesSelf: boolean;
  next: number;
}

export class EngineAdmission implements AllocateAdmission {
  private readonly lists: Record<ClientTransport, ResolvedList>;

  constructor(
    alternates: Alternates,
    private readonly control: Int32Array,
    /** Whether a TCP connection is TLS. */
    private readonly isTls: (connection: ConnectionId) => boolean,
    private readonly fleet?: FleetAdmission,
  ) {
    const resolve = (t: ClientTransport): ResolvedList => ({
      servers: alternates[t].servers.map((s) => parseEndpoint(s.ip, s.port)),
      namesSelf: alternates[t].namesSelf,
      next: 0,
    });
    this.lists = { udp: resolve("udp"), tcp: resolve("tcp"), tls: resolve("tls") };
  }

  admit(path: ClientPath, client: Endpoint): Endpoint | "refuse" | undefined {
    const transport: ClientTransport = !isConnection(path) ? "udp" : this.isTls(path) ? "tls" : "tcp";
    const draining = Atomics.load(this.control, CONTROL_DRAIN) !== 0;
    const list = this.lists[transport];
    if (list.servers.length > 0 && (draining || !list.namesSelf)) {
      // RFC 8489 §10: the alternate must be of the request's address family.
      for (let tries = 0; tries < list.servers.length; tries++) {
        const candidate = list.servers[list.next]!;
        list.next = (list.next + 1) % list.servers.length;
        if (candidate.family === client.family) return candidate;
      }
    }
    const fleet = this.fleet;
    if (fleet && (draining || (fleet.capacity > 0 && fleet.allocations() >= fleet.capacity))) {
      const target = fleetTarget(fleet.cells, client.family, transport === "tls");
      if (target) return target;
    }
    // Full with no peer to take it: served here all the same (quotas still apply).
    return draining ? "refuse" : undefined;
  }
}
