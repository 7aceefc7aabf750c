/**
 * Which peers a client may reach through a relay (RFC 8656 §9.1 / §11.2 and §21.2.3: the server decides;
 * coturn's defaults are the model). The order is coturn's: `allowed` ranges first, then `denied`, then
 * the built-in address classes. IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) peers are
 * judged by their embedded IPv4 address, so they cannot be used to sneak past the IPv4 rules.
 */
import { parseIp, type Endpoint } from "../net/endpoint.ts";

export interface PeerPolicyOptions {
  /** Permit loopback peers (127/8, ::1); coturn --allow-loopback-peers. */
  allowLoopback?: boolean;
  /** Permit private peers (10/8, 172.16/12, 192.168/16, 100.64/10). Default false. */
  allowPrivate?: boolean;
  /** Permit multicast peers (224/4, ff00::/8); coturn allows them unless --no-multicast-peers. Default false. */
  allowMulticast?: boolean;
  /** coturn --allowed-peer-ip: `ip`, `ip1-ip2` or `ip/len`; overrides every other rule. */
  allowed?: string[];
  /** coturn --denied-peer-ip: same syntax. */
  denied?: string[];
}

interface V4Range { lo: number; hi: number }
interface V6Range { lo: Uint8Array; hi: Uint8Array }

export class PeerPolicy {
  private readonly allowLoopback: boolean;
  private readonly allowPrivate: boolean;
  private readonly allowMulticast: boolean;
  private readonly allowed4: V4Range[] = [];
  private readonly allowed6: V6Range[] = [];
  private readonly denied4: V4Range[] = [];
  private readonly denied6: V6Range[] = [];

  constructor(opts: PeerPolicyOptions = {}) {
    this.allowLoopback = opts.allowLoopback ?? false;
    this.allowPrivate = opts.allowPrivate ?? false;
    this.allowMulticast = opts.allowMulticast ?? false;
    for (const r of opts.allowed ?? []) addRange(r, this.allowed4, this.allowed6);
    for (const r of opts.denied ?? []) addRange(r, this.denied4, this.denied6);
  }

  isAllowed(peer: Endpoint): boolean {
    const a = peer.address;
    if (peer.family === 4 || a.length === 4) return this.isAllowedV4(toU32(a, 0));
    const embedded = embeddedIpv4Offset(a);
    if (embedded >= 0) return this.isAllowedV4(toU32(a, embedded));
    if (inV6(this.allowed6, a)) return true;
    if (inV6(this.denied6, a)) return false;
    return this.defaultV6(a);
  }

  private isAllowedV4(ip: number): boolean {
    if (inV4(this.allowed4, ip)) return true;
    if (inV4(this.denied4, ip)) return false;
    return this.defaultV4(ip);
  }

  private defaultV4(ip: number): boolean {
    const first = ip >>> 24;
    if (first === 0) return false; // 0.0.0.0/8 "this network" (CVE-2020-26262)
    if (ip === 0xffffffff) return false; // limited broadcast
    if ((ip >>> 16) === 0xa9fe) return false; // 169.254/16 link-local
    if (first === 127) return this.allowLoopback;
    if (first >= 224 && first <= 239) return this.allowMulticast;
    if (first === 10 || (ip >>> 20) === 0xac1 || (ip >>> 16) === 0xc0a8 || (ip >>> 22) === (0x64400000 >>> 22)) {
      return this.allowPrivate; // 10/8, 172.16/12, 192.168/16, 100.64/10 (CGN)
    }
    return true;
  }

  private defaultV6(a: Uint8Array): boolean {
    let zeroPrefix = true; // within ::/96
    for (let i = 0; i < 12; i++) if (a[i] !== 0) { zeroPrefix = false; break; }
    if (zeroPrefix) {
      const isLoopback = a[12] === 0 && a[13] === 0 && a[14] === 0 && a[15] === 1;
      // ::1 is loopback; :: and the deprecated IPv4-compatible ::a.b.c.d are never valid peers.
      return isLoopback ? this.allowLoopback : false;
    }
    if (a[0] === 0xff) return this.allowMulticast; // ff00::/8
    if (a[0] === 0xfe && (a[1]! & 0xc0) === 0x80) return false; // fe80::/10 link-local
    if ((a[0]! & 0xfe) === 0xfc) return false; // fc00::/7 unique-local
    return true;
  }
}

/** Offset of an embedded IPv4 address in ::ffff:0:0/96 or 64:ff9b::/96, or -1. */
function embeddedIpv4Offset(a: Uint8Array): number {
  let mapped = a[10] === 0xff && a[11] === 0xff;
  for (let i = 0; mapped && i < 10; i++) if (a[i] !== 0) mapped = false;
  if (mapped) return 12;
  if (a[0] === 0x00 && a[1] === 0x64 && a[2] === 0xff && a[3] === 0x9b) {
    for (let i = 4; i < 12; i++) if (a[i] !== 0) return -1;
    return 12;
  }
  return -1;
}

function toU32(a: Uint8Array, at: number): number {
  return ((a[at]! << 24) | (a[at + 1]! << 16) | (a[at + 2]! << 8) | a[at + 3]!) >>> 0;
}

function inV4(ranges: V4Range[], ip: number): boolean {
  for (const r of ranges) if (ip >= r.lo && ip <= r.hi) return true;
  return false;
}

function compare(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

function inV6(ranges: V6Range[], a: Uint8Array): boolean {
  for (const r of ranges) if (compare(a, r.lo) >= 0 && compare(a, r.hi) <= 0) return true;
  return false;
}

function parseOrThrow(text: string): Uint8Array {
  const ip = parseIp(text.trim());
  if (!ip) throw new RangeError(`peer range: not an IP address: ${text}`);
  return ip;
}

/** Parses `ip`, `ip1-ip2` or `ip/len` into the IPv4 or IPv6 list. Throws RangeError on bad syntax. */
function addRange(spec: string, v4: V4Range[], v6: V6Range[]): void {
  let lo: Uint8Array;
  let hi: Uint8Array;
  const slash = spec.indexOf("/");
  const dash = spec.indexOf("-");
  if (slash >= 0) {
    const base = parseOrThrow(spec.slice(0, slash));
    const bits = Number(spec.slice(slash + 1));
    if (!Number.isInteger(bits) || bits < 0 || bits > base.length * 8) throw new RangeError(`peer range: bad prefix length: ${spec}`);
    lo = base.slice();
    hi = base.slice();
    for (let bit = bits; bit < base.length * 8; bit++) {
      const mask = 0x80 >> (bit & 7);
      lo[bit >> 3]! &= ~mask;
      hi[bit >> 3]! |= mask;
    }
  } else if (dash >= 0) {
    lo = parseOrThrow(spec.slice(0, dash));
    hi = parseOrThrow(spec.slice(dash + 1));
    if (lo.length !== hi.length) throw new RangeError(`peer range: mixed families: ${spec}`);
  } else {
    lo = parseOrThrow(spec);
    hi = lo;
  }
  if (lo.length === 16 && embeddedIpv4Offset(lo) === 12 && embeddedIpv4Offset(hi) === 12 && lo[0] === hi[0]) {
    // A range written in ::ffff:a.b.c.d (or NAT64) form applies to the IPv4 addresses it embeds.
    v4.push({ lo: toU32(lo, 12), hi: toU32(hi, 12) });
    return;
  }
  if (lo.length === 4) v4.push({ lo: toU32(lo, 0), hi: toU32(hi, 0) });
  else v6.push({ lo, hi });
}
