/**
 * Which addresses are not ordinary internet peers, after the IANA IPv4 and IPv6 Special-Purpose Address
 * Registries (RFC 6890) and the IPv6 address space registry, and where an IPv6 address carries an IPv4
 * address that the packet really goes to (RFC 4291 §2.5.5, RFC 6052, RFC 8215, RFC 3056, RFC 4380).
 * Pure functions over network-order bytes; PeerPolicy decides what to do with the answers.
 */

/** What the built-in table says about an IPv4 address a peer may not be at by default. */
export type V4Class = "public" | "never" | "loopback" | "private" | "multicast" | "reserved";

/** `never`: no datagram to these is meaningful or safe, whatever the operator allows (see docs/peer-policy.md). */
export function classifyV4(ip: number): V4Class {
  const first = ip >>> 24;
  if (first === 0 || ip === 0xffffffff) return "never"; // 0/8 "this network" (CVE-2020-26262), limited broadcast
  if (first === 127) return "loopback";
  if (first >= 224 && first <= 239) return "multicast";
  if (first >= 240) return "reserved"; // 240/4 future use (RFC 1112 §4)
  if (first === 10 || (ip >>> 20) === 0xac1 || (ip >>> 16) === 0xc0a8 || (ip >>> 22) === 0x191) {
    return "private"; // 10/8, 172.16/12, 192.168/16 (RFC 1918), 100.64/10 shared CGN space (RFC 6598)
  }
  for (const [base, bits] of RESERVED_V4) if (ip >>> (32 - bits) === base >>> (32 - bits)) return "reserved";
  return "public";
}

const v4 = (a: number, b: number, c: number, d: number) => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;

/** Special-purpose IPv4 blocks that are not globally reachable and not covered above. */
const RESERVED_V4: ReadonlyArray<readonly [number, number]> = [
  [v4(169, 254, 0, 0), 16], // link-local (RFC 3927): cloud metadata services live here
  [v4(192, 0, 0, 0), 24], // IETF protocol assignments (RFC 6890); .9 and .10 are anycast services, never a peer
  [v4(192, 0, 2, 0), 24], // TEST-NET-1 documentation (RFC 5737)
  [v4(192, 88, 99, 0), 24], // deprecated 6to4 relay anycast (RFC 7526)
  [v4(198, 18, 0, 0), 15], // benchmarking (RFC 2544)
  [v4(198, 51, 100, 0), 24], // TEST-NET-2 documentation (RFC 5737)
  [v4(203, 0, 113, 0), 24], // TEST-NET-3 documentation (RFC 5737)
];

/** What the built-in table says about an IPv6 address that embeds no IPv4 address. */
export type V6Class = "public" | "never" | "loopback" | "multicast" | "reserved";

export function classifyV6(a: Uint8Array): V6Class {
  if (isZeroUpTo(a, 15)) return a[15] === 0 ? "never" : a[15] === 1 ? "loopback" : "reserved";
  if (a[0] === 0xff) return "multicast"; // ff00::/8
  // Only global unicast 2000::/3 is a peer by default: this refuses fe80::/10 link-local, fec0::/10
  // site-local, fc00::/7 unique-local, 100::/64 discard, 5f00::/16 SRv6 and every unassigned block.
  if ((a[0]! & 0xe0) !== 0x20) return "reserved";
  const w0 = (a[0]! << 8) | a[1]!;
  const w1 = (a[2]! << 8) | a[3]!;
  if (w0 === 0x2001 && w1 === 0x0db8) return "reserved"; // documentation (RFC 3849)
  if (w0 === 0x3fff && (w1 & 0xf000) === 0) return "reserved"; // documentation 3fff::/20 (RFC 9637)
  if (w0 === 0x2001 && w1 < 0x0200) return ietfProtocolAssignment(a, w1); // 2001::/23
  return "public";
}

/**
 * 2001::/23 (RFC 2928) is not globally reachable except the blocks IANA marks so; anything else in it
 * (benchmarking 2001:2::/48, ORCHID 2001:10::/28, unassigned space) is refused. 2001::/32 (Teredo) is
 * handled as an embedding before this is reached.
 */
function ietfProtocolAssignment(a: Uint8Array, w1: number): V6Class {
  const w2 = (a[4]! << 8) | a[5]!;
  if (w1 === 0x0001 && isZeroRange(a, 4, 15) && a[15]! >= 1 && a[15]! <= 3) return "public"; // 2001:1::1-3 anycast
  if (w1 === 0x0003) return "public"; // AMT (RFC 7450)
  if (w1 === 0x0004 && w2 === 0x0112) return "public"; // AS112-v6 (RFC 7535)
  if ((w1 & 0xfff0) === 0x0020 || (w1 & 0xfff0) === 0x0030) return "public"; // ORCHIDv2 (RFC 7343), drone DETs (RFC 9374)
  return "reserved";
}

/**
 * The IPv4 addresses an IPv6 address hands its packets to, or null when it embeds none. Every one listed
 * must pass the IPv4 rules: a Teredo address names both the client (its last 32 bits inverted) and the
 * server (bits 32-63), and either could be the host we must not reach.
 */
export function embeddedIpv4(a: Uint8Array): number[] | null {
  if (isZeroUpTo(a, 10)) {
    const w5 = (a[10]! << 8) | a[11]!;
    if (w5 === 0xffff) return [u32(a, 12)]; // ::ffff:0:0/96 IPv4-mapped (RFC 4291 §2.5.5.2)
    if (w5 === 0 && !(isZeroUpTo(a, 15) && a[15]! <= 1)) return [u32(a, 12)]; // ::/96 IPv4-compatible (deprecated, RFC 4291 §2.5.5.1)
    return null; // :: and ::1 themselves, and the rest of ::/80 (reserved)
  }
  if (isZeroUpTo(a, 8) && a[8] === 0xff && a[9] === 0xff && a[10] === 0 && a[11] === 0) return [u32(a, 12)]; // ::ffff:0:0:0/96 SIIT
  if (a[0] === 0x00 && a[1] === 0x64 && a[2] === 0xff && a[3] === 0x9b) {
    if (isZeroRange(a, 4, 12)) return [u32(a, 12)]; // 64:ff9b::/96 well-known NAT64 prefix (RFC 6052 §2.1)
    if (a[4] === 0 && a[5] === 1) return [((u32(a, 6) & 0xffff0000) | (a[9]! << 8) | a[10]!) >>> 0]; // 64:ff9b:1::/48 (RFC 8215), RFC 6052 §2.2 /48 layout: bits 48-63, then 72-87
    return null;
  }
  if (a[0] === 0x20 && a[1] === 0x02) return [u32(a, 2)]; // 2002::/16 6to4 (RFC 3056 §2): bits 16-47
  if (a[0] === 0x20 && a[1] === 0x01 && a[2] === 0 && a[3] === 0) return [u32(a, 4), ~u32(a, 12) >>> 0]; // Teredo 2001::/32 (RFC 4380 §4)
  return null;
}

/** The IPv4 address in `a` from byte `at`, as an unsigned number. */
export function u32(a: Uint8Array, at: number): number {
  return ((a[at]! << 24) | (a[at + 1]! << 16) | (a[at + 2]! << 8) | a[at + 3]!) >>> 0;
}

function isZeroUpTo(a: Uint8Array, end: number): boolean {
  return isZeroRange(a, 0, end);
}

function isZeroRange(a: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (a[i] !== 0) return false;
  return true;
}
