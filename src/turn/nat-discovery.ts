/**
 * The table behind RFC 5780 NAT behaviour discovery (api.ts NatDiscovery): which listener is bound where,
 * and each listening IP's alternate. Pure: the engine registers its UDP listeners as it opens them.
 *
 * As coturn does it, a server with RFC 5780 listens on every listening IP at the listening port and at
 * the alternate port (--alt-listening-port); the alternate IP of a listening IP is the next listening IP
 * of the same family (cyclically), so with two IPs each is the other's. OTHER-ADDRESS (§7.4) is the
 * listener's address with both changed; a CHANGE-REQUEST (§7.2) picks the listener with one or both changed.
 */
import { endpointFromBytes, type Endpoint, type EndpointKey } from "../net/endpoint.ts";
import type { ListenerId, NatDiscovery } from "./api.ts";

/** A listening IP and the IP that stands as its alternate. */
export interface AlternateIp {
  readonly address: Uint8Array;
  readonly alternate: Uint8Array;
}

export class NatDiscoveryTable implements NatDiscovery {
  private readonly local: (Endpoint | undefined)[] = [];
  private readonly other: (Endpoint | undefined)[] = [];
  private readonly byAddress = new Map<EndpointKey, ListenerId>();
  /** Alternate IP by the listening IP's host key. */
  private readonly alternateIp = new Map<EndpointKey, Uint8Array>();

  constructor(
    alternates: readonly AlternateIp[],
    private readonly port: number,
    private readonly altPort: number,
  ) {
    for (const { address, alternate } of alternates) this.alternateIp.set(endpointFromBytes(address, 0).hostKey, alternate);
  }

  /**
   * A UDP listener the engine opened at `local`. One on an address without an alternate IP, or on a port
   * that is neither the listening port nor the alternate one, serves no RFC 5780 and is not recorded.
   */
  register(listener: ListenerId, local: Endpoint): void {
    const otherIp = this.alternateIp.get(local.hostKey);
    const otherPort = this.swapPort(local.port);
    if (otherIp === undefined || otherPort < 0) return;
    this.local[listener] = local;
    this.other[listener] = endpointFromBytes(otherIp, otherPort);
    this.byAddress.set(local.key, listener);
  }

  localAddress(listener: ListenerId): Endpoint | undefined {
    return this.local[listener];
  }

  otherAddress(listener: ListenerId): Endpoint | undefined {
    return this.other[listener];
  }

  changed(listener: ListenerId, changeIp: boolean, changePort: boolean): ListenerId | undefined {
    const local = this.local[listener];
    const other = this.other[listener];
    if (local === undefined || other === undefined) return undefined;
    if (!changeIp && !changePort) return listener;
    const target = endpointFromBytes(changeIp ? other.address : local.address, changePort ? other.port : local.port);
    return this.byAddress.get(target.key);
  }

  private swapPort(port: number): number {
    if (port === this.port) return this.altPort;
    if (port === this.altPort) return this.port;
    return -1;
  }
}
