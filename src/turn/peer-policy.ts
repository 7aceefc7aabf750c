/**
 * Which peers a client may reach through a relay. RFC 8656 leaves it to the server: CreatePermission may
 * refuse an IP address with 403 (§10.2; the port there "is ignored and may be any arbitrary value"),
 * ChannelBind may refuse an IP address and port with 403 (§12.2), and a Send indication to a refused one is
 * silently discarded (§11.2); §21.2.3 asks servers to keep relays off internal hosts. Safe by default and
 * fail closed; the full table, with the reason for each row, is docs/peer-policy.md. In order:
 *
 *  1. port 0, 0.0.0.0/8, ::, 255.255.255.255 and multicast: refused, whatever is allowed (multicast only
 *     with allowMulticast);
 *  2. an IPv6 address that hands its packets to IPv4 (mapped, compatible, NAT64, 6to4, Teredo): refused if a
 *     denied IPv6 range holds it, otherwise judged by the IPv4 rules alone (an IPv6 allow never admits it);
 *  3. operator ranges: allowed, then denied (coturn's order); a range applies to its own family only;
 *  4. loopback with allowLoopback (coturn --allow-loopback-peers);
 *  5. this server's relay addresses, written plainly, with a port in the relay range: allowed (two clients
 *     of this server reach each other there); any other port of them, and every other address of this
 *     host: refused;
 *  6. the built-in classes (address-classes.ts): only public addresses pass.
 */
import { parseIp, type Endpoint } from "../net/endpoint.ts";
import { classifyV4, classifyV6, embeddedIpv4, u32 } from "./address-classes.ts";

export interface PeerPolicyOptions {
  /** Permit loopback peers (127/8, ::1); coturn --allow-loopback-peers. */
  allowLoopback?: boolean;
  /** Permit private peers (10/8, 172.16/12, 192.168/16, 100.64/10). Default false. */
  allowPrivate?: boolean;
  /** Permit multicast peers (224/4, ff00::/8). Default false (coturn --no-multicast-peers). */
  allowMulticast?: boolean;
  /** coturn --allowed-peer-ip: `ip`, `ip1-ip2` or `ip/len`. */
  allowed?: string[];
  /** coturn --denied-peer-ip: same syntax. */
  denied?: string[];
  /** Every address of this host (interfaces, listening, relay, advertised): refused unless allowed. */
  hostAddresses?: string[];
  /** This server's relay addresses (relay IPs and the external IPs advertised for them). */
  relayAddresses?: string[];
  /** The relay port range: a relay address is a peer only at these ports. */
  relayPorts?: { min: number; max: number };
}

export interface PeerRange { family: 4 | 6; lo: Uint8Array; hi: Uint8Array }

/** What the core asks (PeerPolicy, or a wrapper that rebuilds one when the database's ranges change). */
export interface PeerJudge {
  isAllowed(peer: Endpoint): boolean;
  allowsHost(address: Uint8Array): boolean;
}

interface V4Range { lo: number; hi: number }
interface V6Range { lo: Uint8Array; hi: Uint8Array }

/** `port` for a verdict on the address alone (CreatePermission): a relay address passes at some port. */
const ANY_PORT = -1;

export class PeerPolicy implements PeerJudge {
  private readonly allowLoopback: boolean;
  private readonly allowPrivate: boolean;
  private readonly allowMulticast: boolean;
  private readonly allowed4: V4Range[] = [];
  private readonly allowed6: V6Range[] = [];
  private readonly denied4: V4Range[] = [];
  private readonly denied6: V6Range[] = [];
  private readonly host = new Set<string>();
  private readonly relay = new Set<string>();
  private readonly minRelayPort: number;
  private readonly maxRelayPort: number;

  /** Throws RangeError on a range or address that does not parse (the config checks them first). */
  constructor(opts: PeerPolicyOptions = {}) {
    this.allowLoopback = opts.allowLoopback ?? false;
    this.allowPrivate = opts.allowPrivate ?? false;
    this.allowMulticast = opts.allowMulticast ?? false;
    for (const spec of opts.allowed ?? []) addRange(parsePeerRange(spec), this.allowed4, this.allowed6);
    for (const spec of opts.denied ?? []) addRange(parsePeerRange(spec, true), this.denied4, this.denied6);
    for (const ip of opts.relayAddresses ?? []) this.relay.add(hostKey(parseOrThrow(ip)));
    for (const ip of [...(opts.hostAddresses ?? []), ...(opts.relayAddresses ?? [])]) this.host.add(hostKey(parseOrThrow(ip)));
    this.minRelayPort = opts.relayPorts?.min ?? 1;
    this.maxRelayPort = opts.relayPorts?.max ?? 0; // no range: a relay address is only an address of this host
  }

  /** ChannelBind (RFC 8656 §12.2) and Send indications (§11.2): the address and the port. */
  isAllowed(peer: Endpoint): boolean {
    if (peer.port === 0) return false; // no datagram can go to port 0 (Linux: EINVAL)
    return this.judge(peer.address, peer.port);
  }

  /** CreatePermission (RFC 8656 §10.2): the address only, the port being "ignored". */
  allowsHost(address: Uint8Array): boolean {
    return this.judge(address, ANY_PORT);
  }

  private judge(a: Uint8Array, port: number): boolean {
    if (a.length === 4) return this.judgeV4(u32(a, 0), a, port);
    const embedded = embeddedIpv4(a);
    if (embedded !== null) {
      if (inV6(this.denied6, a) && !inV6(this.allowed6, a)) return false;
      for (const ip of embedded) if (!this.judgeV4(ip, null, port)) return false; // (never as a relay address)
      return true;
    }
    const cls = classifyV6(a);
    if (cls === "never") return false;
    if (cls === "multicast") return this.allowMulticast;
    if (inV6(this.allowed6, a)) return true;
    if (inV6(this.denied6, a)) return false;
    if (cls === "loopback" && this.allowLoopback) return true;
    const own = this.ownHostVerdict(a, port);
    if (own !== undefined) return own;
    return cls === "public";
  }

  /**
   * `bytes` is the address as given when it is IPv4, null when it came out of an IPv6 address: a relayed
   * address is always handed to clients in its plain form, so a disguised own address is never a relay.
   */
  private judgeV4(ip: number, bytes: Uint8Array | null, port: number): boolean {
    const cls = classifyV4(ip);
    if (cls === "never") return false;
    if (cls === "multicast") return this.allowMulticast;
    if (inV4(this.allowed4, ip)) return true;
    if (inV4(this.denied4, ip)) return false;
    if (cls === "loopback" && this.allowLoopback) return true;
    const own = bytes === null ? (this.host.has(hostKey(v4Bytes(ip))) ? false : undefined) : this.ownHostVerdict(bytes, port);
    if (own !== undefined) return own;
    return cls === "public" || (cls === "private" && this.allowPrivate);
  }

  /** Undefined when `a` is not this host's; a relay address is allowed inside the relay port range only. */
  private ownHostVerdict(a: Uint8Array, port: number): boolean | undefined {
    if (this.host.size === 0) return undefined;
    const key = hostKey(a);
    if (!this.host.has(key)) return undefined;
    if (!this.relay.has(key)) return false;
    return port === ANY_PORT ? this.minRelayPort <= this.maxRelayPort : port >= this.minRelayPort && port <= this.maxRelayPort;
  }
}

/**
 * Parses `ip`, `ip1-ip2` or `ip/len` (coturn's forms). Throws RangeError, one line naming the entry, on bad
 * syntax, mixed families, a reversed range, and an allowed range written as IPv4-mapped IPv6: that would
 * match only IPv6 peers spelled ::ffff:a.b.c.d, which is never what was meant, so the IPv4 form is asked
 * for. A denied one is taken (`denied-peer-ip=::ffff:0:0-::ffff:ffff:ffff` in published coturn files):
 * it refuses IPv6 peers that hand their packets to IPv4, which is what it says (rule 2 above).
 */
export function parsePeerRange(spec: string, mappedAllowed = false): PeerRange {
  const text = spec.trim();
  let lo: Uint8Array;
  let hi: Uint8Array;
  const slash = text.indexOf("/");
  const dash = text.indexOf("-");
  if (slash >= 0) {
    const base = parseOrThrow(text.slice(0, slash), spec);
    const bitsText = text.slice(slash + 1);
    const bits = Number(bitsText);
    if (!/^\d{1,3}$/.test(bitsText) || bits > base.length * 8) throw new RangeError(`'${spec}': bad prefix length`);
    lo = base.slice();
    hi = base.slice();
    for (let bit = bits; bit < base.length * 8; bit++) {
      const mask = 0x80 >> (bit & 7);
      lo[bit >> 3]! &= ~mask;
      hi[bit >> 3]! |= mask;
    }
  } else if (dash >= 0) {
    lo = parseOrThrow(text.slice(0, dash), spec);
    hi = parseOrThrow(text.slice(dash + 1), spec);
    if (lo.length !== hi.length) throw new RangeError(`'${spec}': the two ends are of different families`);
    if (compare(lo, hi) > 0) throw new RangeError(`'${spec}': the range is reversed (its start is above its end)`);
  } else {
    lo = parseOrThrow(text, spec);
    hi = lo;
  }
  if (!mappedAllowed && lo.length === 16 && isMapped(lo) && isMapped(hi)) {
    throw new RangeError(`'${spec}': an IPv4-mapped IPv6 range; write it as IPv4 (IPv4 peers are judged by IPv4 ranges)`);
  }
  return { family: lo.length === 4 ? 4 : 6, lo, hi };
}

function addRange(r: PeerRange, v4: V4Range[], v6: V6Range[]): void {
  if (r.family === 4) v4.push({ lo: u32(r.lo, 0), hi: u32(r.hi, 0) });
  else v6.push({ lo: r.lo, hi: r.hi });
}

function isMapped(a: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return false;
  return a[10] === 0xff && a[11] === 0xff;
}

function parseOrThrow(text: string, spec = text): Uint8Array {
  const ip = parseIp(text.trim());
  if (!ip) throw new RangeError(`'${spec}': not an IP address`);
  return ip;
}

function hostKey(a: Uint8Array): string {
  return a.join(".");
}

function v4Bytes(ip: number): Uint8Array {
  return new Uint8Array([ip >>> 24, (ip >>> 16) & 0xff, (ip >>> 8) & 0xff, ip & 0xff]);
}

function inV4(ranges: V4Range[], ip: number): boolean {
  for (const r of ranges) if (ip >= r.lo && ip <= r.hi) return true;
  return false;
}

function compare(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

function inV6(ranges: V6Range[], a: Uint8Array): boolean {
  for (const r of ranges) if (compare(a, r.lo) >= 0 && compare(a, r.hi) <= 0) return true;
  return false;
}
