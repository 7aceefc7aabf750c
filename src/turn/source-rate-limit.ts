/**
 * A per-source rate limit on error responses to unauthenticated requests (coturn's
 * --unauthorized-ratelimit): a 20-byte Allocate with a spoofed source draws a 401 several times its size,
 * so without a limit the relay reflects and amplifies traffic at whoever the source names. Past the limit
 * the server stays silent, as coturn does.
 *
 * The source is the IP address without the port (so rotating ports buys nothing), and each has a token
 * bucket of `perSecond` tokens (at least 1) refilled at `perSecond` a second. Buckets live in a fixed
 * table, so spoofed sources cost no memory: 2,048 sets of 4 slots (192 KiB), the set chosen by a keyed
 * hash (keyed with the engines' secret, so an attacker cannot aim at a set). A source takes a free slot
 * of its set, or one whose bucket has refilled to full: forgetting a full bucket grants nothing, because a
 * returning source would start full anyway. When all four hold live buckets of other sources, it shares
 * one of them, always the same one (chosen by its hash), so a flood cannot give anyone a budget beyond
 * one bucket.
 */
import type { Endpoint } from "../net/endpoint.ts";
import type { Millis } from "./api.ts";

const WAYS = 4;
const SETS = 2048;
const SLOTS = SETS * WAYS;
/** IPv6 tags live above every IPv4 tag (IPv4 tags are the address + 1; 0 is an empty slot). */
const IPV6_TAG_BASE = 2 ** 32 + 1;

export class SourceRateLimit {
  /** What the table holds, whatever the traffic: three Float64 per slot. */
  static readonly byteLength = SLOTS * 3 * 8;
  private readonly tags = new Float64Array(SLOTS);
  private readonly tokens = new Float64Array(SLOTS);
  private readonly stamps = new Float64Array(SLOTS);
  private readonly seed: number;
  /** A bucket's size: what a source may get at once after a quiet second. */
  private readonly burst: number;

  /** `perSecond`: responses one source may get per second. */
  constructor(readonly perSecond: number, secret: Uint8Array) {
    if (!(perSecond > 0)) throw new RangeError(`perSecond must be above 0, got ${perSecond}`);
    this.burst = Math.max(1, perSecond);
    let seed = 0x9e3779b9;
    for (let i = 0; i < secret.length; i++) seed = Math.imul(seed ^ secret[i]!, 0x01000193);
    this.seed = seed >>> 0;
  }

  /** Takes one response from `source`'s budget: false = over the limit, send nothing. O(1). */
  allow(source: Endpoint, now: Millis): boolean {
    let tag: number;
    let hash: number;
    if (source.family === 4) {
      const ip = source.hostKey as number;
      tag = ip + 1;
      hash = mix(ip ^ this.seed);
    } else {
      const a = source.address;
      let h1 = this.seed;
      let h2 = ~this.seed;
      for (let i = 0; i < 16; i++) {
        h1 = Math.imul(h1 ^ a[i]!, 0x01000193);
        h2 = Math.imul(h2 ^ a[i]!, 0x5bd1e995);
      }
      hash = mix(h1);
      tag = IPV6_TAG_BASE + (hash >>> 0) * 0x100000 + ((h2 >>> 0) & 0xfffff);
    }
    const base = (hash & (SETS - 1)) * WAYS;
    let reusable = -1;
    for (let i = base; i < base + WAYS; i++) {
      if (this.tags[i] === tag) return this.take(i, now);
      if (reusable < 0 && (this.tags[i] === 0 || this.level(i, now) >= this.burst)) reusable = i;
    }
    if (reusable >= 0) {
      this.tags[reusable] = tag;
      this.tokens[reusable] = this.burst;
      this.stamps[reusable] = now;
      return this.take(reusable, now);
    }
    return this.take(base + ((hash >>> 11) & (WAYS - 1)), now);
  }

  /** Slots whose source has spent part of its budget lately (coturn's occupied buckets). */
  busySlots(now: Millis): number {
    let n = 0;
    for (let i = 0; i < SLOTS; i++) if (this.tags[i] !== 0 && this.level(i, now) < this.burst) n++;
    return n;
  }

  /** The slot's tokens refilled up to `now` (Unix time may step back: that never drains a bucket). */
  private level(i: number, now: Millis): number {
    const elapsed = now - this.stamps[i]!;
    const tokens = this.tokens[i]! + (elapsed > 0 ? (elapsed * this.perSecond) / 1000 : 0);
    return tokens < this.burst ? tokens : this.burst;
  }

  private take(i: number, now: Millis): boolean {
    const tokens = this.level(i, now);
    this.stamps[i] = now;
    if (tokens < 1) {
      this.tokens[i] = tokens;
      return false;
    }
    this.tokens[i] = tokens - 1;
    return true;
  }
}

/** murmur3's 32-bit finalizer: every input bit moves every output bit. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
