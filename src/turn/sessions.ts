/**
 * What an operator sees of one allocation (`bunturn admin sessions`) and what is billed when it ends (the
 * usage record): who, from where, which relay addresses, which peers, and the traffic each way. Built
 * from an Allocation on request or at its end, never per datagram: the data path only increments the
 * allocation's four counters (./relay-path.ts).
 */
import { formatEndpoint, formatIp, type EndpointKey } from "../net/endpoint.ts";
import type { ConnectionId, Millis } from "./api.ts";
import type { Allocation } from "./allocation.ts";

export interface SessionInfo {
  /** Unique among this core's allocations for its life (the engine prefixes its index). */
  serial: number;
  user: string | null;
  realm: string;
  client: string;
  transport: "udp" | "tcp" | "tls" | "dtls";
  relays: string[];
  /** Hosts with a live permission (RFC 8656 §9), and the peers bound to channels (§12) as "0x4000=ADDR:PORT". */
  peers: string[];
  channels: string[];
  /** Unix ms when the allocation was made. */
  startedAt: Millis;
  /** Unix ms when it expires unless refreshed (a Refresh moves it: how a statistics feed tells one). */
  expiresAt: Millis;
  /** Relayed client -> peer (application bytes: ChannelData and Send payloads). */
  bytesToPeer: number;
  packetsToPeer: number;
  /** Relayed peer -> client (application bytes). */
  bytesToClient: number;
  packetsToClient: number;
}

/** A permission's host key (./endpoint.ts: the IPv4 number, or the IPv6 address in hex) as an address. */
function formatHostKey(key: EndpointKey): string {
  if (typeof key === "number") return formatIp(new Uint8Array([key >>> 24, (key >>> 16) & 0xff, (key >>> 8) & 0xff, key & 0xff]));
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) bytes[i] = parseInt(key.slice(2 * i, 2 * i + 2), 16);
  return formatIp(bytes);
}

/** Tells a TLS connection from a plain TCP one (the engine knows which listener accepted it). */
export type StreamKind = (connection: ConnectionId) => "tcp" | "tls" | "dtls";

export function describeSession(a: Allocation, realm: string, now: Millis): SessionInfo {
  const peers: string[] = [];
  for (const [host, until] of a.permissions) if (until > now) peers.push(formatHostKey(host));
  const channels: string[] = [];
  for (const ch of a.channelsByNumber.values()) {
    if (ch.expiresAt > now) channels.push(`0x${ch.number.toString(16)}=${formatEndpoint(ch.peer)}`);
  }
  const relays: string[] = [];
  if (a.relay4) relays.push(formatEndpoint(a.relay4.address));
  if (a.relay6) relays.push(formatEndpoint(a.relay6.address));
  return {
    serial: a.serial,
    user: a.username ?? null,
    realm,
    client: formatEndpoint(a.client),
    transport: a.transport,
    relays,
    peers,
    channels,
    startedAt: a.startedAt,
    expiresAt: a.expiresAt,
    bytesToPeer: a.bytesToPeer,
    packetsToPeer: a.packetsToPeer,
    bytesToClient: a.bytesToClient,
    packetsToClient: a.packetsToClient,
  };
}
