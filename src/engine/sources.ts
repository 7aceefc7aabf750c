/**
 * Source addresses of received datagrams as the core's Endpoints, cached so that a steady flow costs a
 * Map lookup and no allocation: IPv4 by a numeric key (no strings), IPv6 by its string key.
 */
import { AF_INET, type RecvBatch } from "../../ffi/index.ts";
import { ipv4Endpoint, ipv6Endpoint, type Endpoint } from "../net/endpoint.ts";

/** Bound on each cache: a spoofed flood must not grow memory. */
const ENDPOINT_CACHE_LIMIT = 65536;

export class SourceCache {
  private readonly v4 = new Map<number, Endpoint>();
  private readonly v6 = new Map<string, Endpoint>();

  /** The source of datagram i of `batch`. */
  of(batch: RecvBatch, i: number): Endpoint {
    const port = batch.sourcePort(i);
    if (batch.sourceFamily(i) === AF_INET) {
      const ip = batch.sourceIpv4(i);
      const key = ip * 65536 + port;
      let e = this.v4.get(key);
      if (e === undefined) {
        if (this.v4.size >= ENDPOINT_CACHE_LIMIT) this.v4.clear();
        e = ipv4Endpoint(ip, port);
        this.v4.set(key, e);
      }
      return e;
    }
    const fresh = ipv6Endpoint(batch.sourceIpv6(i), port);
    const cached = this.v6.get(fresh.key as string);
    if (cached) return cached;
    if (this.v6.size >= ENDPOINT_CACHE_LIMIT) this.v6.clear();
    this.v6.set(fresh.key as string, fresh);
    return fresh;
  }
}
