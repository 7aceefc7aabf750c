/**
 * One DTLS association as the transport (dtls-transport.ts) keeps it, what the transport is handed
 * (handlers, limits), and the source a per-source cap counts.
 */
import type { DtlsSession } from "../../ffi/dtls.ts";
import type { Endpoint, EndpointKey } from "../net/endpoint.ts";
import type { ConnectionId } from "../turn/api.ts";
import type { UdpListener } from "./outbox.ts";

export interface DtlsHandlers {
  /** A decrypted datagram: arena[offset, offset + length), from `client` over association `id`. */
  datagram(id: ConnectionId, client: Endpoint, arena: Uint8Array, offset: number, length: number, now: number): void;
  /** Association `id` ended (its allocation ends with it). */
  closed(id: ConnectionId): void;
  /** Queues a datagram from the listener's socket to `client` (bytes are copied). */
  send(listener: UdpListener, client: Endpoint, bytes: Uint8Array, offset: number, length: number): void;
  /** OpenSSL refused a proven client's handshake or record: why (for the verbose log). */
  failed?(client: Endpoint, why: string): void;
}

export interface DtlsLimits {
  /** Associations this engine holds at most; a cookie-proven ClientHello beyond it is dropped and counted. */
  maxSessions: number;
  /** Of those, from one IPv4 address or IPv6 /64 at most (one source must not take every slot). */
  maxSessionsPerSource: number;
  handshakeTimeoutMs: number;
  unallocatedMs: number;
}

export class Association {
  established = false;
  /** When OpenSSL wants its last flight sent again (ms), or Infinity. */
  retransmitAt = Infinity;
  constructor(
    readonly id: ConnectionId,
    readonly listener: UdpListener,
    readonly client: Endpoint,
    readonly session: DtlsSession,
    readonly startedAt: number,
    public lastSeen: number,
    /** ClientHello.random of the hello that created it: a late copy of that hello is no restart. */
    readonly random: string,
  ) {}
}

/** The source a per-source cap counts: an IPv4 address, or an IPv6 /64 (what one subscriber usually holds). */
export function sourceKey(client: Endpoint): EndpointKey {
  return client.family === 4 ? client.hostKey : (client.hostKey as string).slice(0, 16);
}
