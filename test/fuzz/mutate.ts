/**
 * Hostile datagrams for the end-to-end fuzzer: a corpus of valid STUN/TURN messages and ChannelData
 * (every method the server answers, with and without integrity and fingerprint), and mutations that aim
 * at the parser's edges: header and attribute lengths, attribute types (known, unknown
 * comprehension-required, duplicated), padding, integrity and fingerprint bytes, truncation, trailing
 * garbage, bit flips, channel numbers and ChannelData lengths. Seeded, so a failing run can be replayed.
 */
import { parseEndpoint, type Endpoint } from "../../src/net/endpoint.ts";
import {
  Attr, StunClass, StunMethod, StunWriter, encodeChannelData, writeChannelNumber, writeDontFragment,
  writeEvenPort, writeFingerprint, writeLifetime, writeMessageIntegrity, writeMessageIntegritySha256,
  writeRequestedTransport, writeText, writeXorAddress,
} from "../../src/stun/index.ts";
import { md5Key, sha256Key } from "../../src/turn/credentials.ts";

/** xorshift32: fast, seedable, good enough to pick mutations. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  /** 0 <= n < bound */
  below(bound: number): number {
    return this.next() % bound;
  }
  chance(p: number): boolean {
    return this.next() / 0x100000000 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }
}

export interface CorpusOptions {
  /** The only peers the corpus names: they must be loopback sockets the test owns. */
  peers: Endpoint[];
  username?: string;
  password?: string;
  realm?: string;
}

const ATTRIBUTE_TYPES = [
  ...Object.values(Attr),
  0x0000, 0x0003, 0x0005, 0x0010, 0x0019, 0x7fff, 0x8000, 0xffff, 0x0026, 0x002f, 0x0030, 0x4000, 0xc001,
];

function tid(rng: Rng): Uint8Array {
  const t = new Uint8Array(12);
  for (let i = 0; i < 12; i++) t[i] = rng.below(256);
  return t;
}

/** Valid messages: the seeds every mutation starts from. */
export function buildCorpus(rng: Rng, o: CorpusOptions): Uint8Array[] {
  const realm = o.realm ?? "bunturn.test";
  const key = md5Key(o.username ?? "alice", realm, o.password ?? "x");
  const sha = sha256Key(o.username ?? "alice", realm, o.password ?? "x");
  const corpus: Uint8Array[] = [];
  const message = (method: number, cls: StunClass, body: (w: StunWriter) => void, sign: 0 | 1 | 2, fingerprint: boolean) => {
    const w = new StunWriter(method, cls, tid(rng));
    body(w);
    if (sign) {
      writeText(w, Attr.Username, o.username ?? "alice");
      writeText(w, Attr.Realm, realm);
      writeText(w, Attr.Nonce, "obsolete-nonce-0123456789abcdef");
      if (sign === 1) writeMessageIntegrity(w, key);
      else writeMessageIntegritySha256(w, sha);
    }
    if (fingerprint) writeFingerprint(w);
    corpus.push(w.finish());
  };
  for (const sign of [0, 1, 2] as const) {
    for (const fp of [false, true]) {
      message(StunMethod.Binding, StunClass.Request, () => {}, 0, fp);
      message(StunMethod.Allocate, StunClass.Request, (w) => writeRequestedTransport(w, 17), sign, fp);
      message(StunMethod.Allocate, StunClass.Request, (w) => {
        writeRequestedTransport(w, 17);
        writeLifetime(w, 1 + rng.below(3600));
        writeDontFragment(w);
        writeEvenPort(w, rng.chance(0.5));
      }, sign, fp);
      message(StunMethod.Refresh, StunClass.Request, (w) => writeLifetime(w, rng.below(700)), sign, fp);
      message(StunMethod.Refresh, StunClass.Request, (w) => writeLifetime(w, 0), sign, fp);
      for (const peer of o.peers) {
        message(StunMethod.CreatePermission, StunClass.Request, (w) => writeXorAddress(w, Attr.XorPeerAddress, peer), sign, fp);
        message(StunMethod.ChannelBind, StunClass.Request, (w) => {
          // A few channel numbers only, so that mutated ChannelData often hits a bound channel.
          writeChannelNumber(w, 0x4000 + rng.below(4));
          writeXorAddress(w, Attr.XorPeerAddress, peer);
        }, sign, fp);
        message(StunMethod.Send, StunClass.Indication, (w) => {
          writeXorAddress(w, Attr.XorPeerAddress, peer);
          w.addBytes(Attr.Data, new Uint8Array(rng.below(64)).fill(0x5a));
        }, 0, fp);
      }
      message(StunMethod.Allocate, StunClass.SuccessResponse, (w) => writeXorAddress(w, Attr.XorMappedAddress, parseEndpoint("127.0.0.1", 1)), 0, fp);
      message(0x0fff & rng.next(), StunClass.Request, () => {}, sign, fp);
    }
  }
  for (const channel of [0x4000, 0x4001, 0x4002, 0x4003, 0x4000, 0x4001, 0x4fff, 0x5000, 0x7fff, 0x3fff, 0x8000]) {
    corpus.push(encodeChannelData(channel, new Uint8Array(rng.below(200)).fill(0xa5)));
  }
  return corpus;
}

/** Attribute offsets of a STUN message (walking the TLVs as far as they go). */
function attributeOffsets(m: Uint8Array): number[] {
  const out: number[] = [];
  let at = 20;
  while (at + 4 <= m.length && out.length < 64) {
    out.push(at);
    at += 4 + ((((m[at + 2]! << 8) | m[at + 3]!) + 3) & ~3);
  }
  return out;
}

function put16(m: Uint8Array, at: number, v: number): void {
  if (at + 1 >= m.length) return;
  m[at] = (v >>> 8) & 0xff;
  m[at + 1] = v & 0xff;
}

export const MUTATIONS = [
  "random-bytes", "bit-flips", "header-length", "attribute-type", "attribute-length", "padding",
  "integrity", "truncate", "extend", "duplicate-attribute", "channel-number", "channel-length", "cookie", "method-class",
] as const;
export type Mutation = (typeof MUTATIONS)[number];

/** One hostile datagram: a random or mutated copy of a corpus entry. Never longer than 1500 bytes. */
export function mutate(rng: Rng, corpus: readonly Uint8Array[], counts?: Record<Mutation, number>): Uint8Array {
  const kind = MUTATIONS[rng.below(MUTATIONS.length)]!;
  if (counts) counts[kind]++;
  if (kind === "random-bytes") {
    const b = new Uint8Array(rng.below(600));
    for (let i = 0; i < b.length; i++) b[i] = rng.below(256);
    // Half of them pass the first demultiplexing test, so they reach the decoder or the channel lookup.
    if (b.length >= 8 && rng.chance(0.5)) {
      b[0]! &= 0x3f;
      b.set([0x21, 0x12, 0xa4, 0x42], 4);
    }
    return b;
  }
  const base = rng.pick(corpus);
  let m = base.slice();
  const stun = (m[0]! & 0xc0) === 0;
  const attrs = stun ? attributeOffsets(m) : [];
  switch (kind) {
    case "bit-flips":
      for (let n = 1 + rng.below(6); n > 0; n--) m[rng.below(m.length)]! ^= 1 << rng.below(8);
      break;
    case "header-length":
      put16(m, 2, rng.chance(0.5) ? rng.below(0x10000) : Math.max(0, ((m[2]! << 8) | m[3]!) + rng.pick([-8, -4, -1, 1, 3, 4, 8])));
      break;
    case "attribute-type":
      if (attrs.length) put16(m, rng.pick(attrs), rng.chance(0.5) ? rng.pick(ATTRIBUTE_TYPES) : rng.below(0x10000));
      break;
    case "attribute-length":
      if (attrs.length) {
        const at = rng.pick(attrs);
        put16(m, at + 2, rng.chance(0.5) ? rng.below(0x10000) : Math.max(0, ((m[at + 2]! << 8) | m[at + 3]!) + rng.pick([-4, -2, -1, 1, 2, 4, 16])));
      }
      break;
    case "padding": {
      // Non-zero padding bytes, or an attribute length that makes padding required but absent.
      const at = attrs.length ? rng.pick(attrs) : 20;
      const len = at + 3 < m.length ? (m[at + 2]! << 8) | m[at + 3]! : 0;
      if (len & 3 && at + 4 + len < m.length) m[at + 4 + len] = 0xff;
      else if (at + 3 < m.length) put16(m, at + 2, len + 1 + rng.below(3));
      break;
    }
    case "integrity": {
      const at = attrs.find((a) => [Attr.MessageIntegrity, Attr.MessageIntegritySha256, Attr.Fingerprint].includes(((m[a]! << 8) | m[a + 1]!) as never));
      if (at !== undefined && at + 5 < m.length) m[at + 4 + rng.below(Math.max(1, m.length - at - 4))]! ^= 1 + rng.below(255);
      else m[m.length - 1]! ^= 0x01;
      break;
    }
    case "truncate":
      m = m.subarray(0, rng.below(m.length + 1));
      break;
    case "extend": {
      const longer = new Uint8Array(Math.min(1500, m.length + 1 + rng.below(64)));
      longer.set(m);
      for (let i = m.length; i < longer.length; i++) longer[i] = rng.below(256);
      if (stun && rng.chance(0.5)) put16(longer, 2, longer.length - 20);
      m = longer;
      break;
    }
    case "duplicate-attribute": {
      if (!attrs.length) break;
      const at = rng.pick(attrs);
      const end = Math.min(m.length, at + 4 + ((((m[at + 2]! << 8) | m[at + 3]!) + 3) & ~3));
      const copy = m.subarray(at, end);
      const out = new Uint8Array(Math.min(1500, m.length + copy.length));
      out.set(m.subarray(0, 20));
      out.set(copy, 20);
      out.set(m.subarray(20, out.length - copy.length), 20 + copy.length);
      put16(out, 2, out.length - 20);
      m = out;
      break;
    }
    case "channel-number":
      put16(m, 0, rng.chance(0.5) ? 0x4000 + rng.below(4) : rng.chance(0.5) ? 0x4000 + rng.below(0x4000) : rng.below(0x10000));
      break;
    case "channel-length":
      put16(m, 2, rng.chance(0.5) ? rng.below(0x10000) : Math.max(0, m.length - 4 + rng.pick([-3, -1, 1, 2, 4])));
      break;
    case "cookie":
      if (m.length > 7) m[4 + rng.below(4)]! ^= 1 << rng.below(8);
      break;
    case "method-class":
      put16(m, 0, rng.below(0x4000));
      break;
  }
  return m;
}

export function emptyCounts(): Record<Mutation, number> {
  return Object.fromEntries(MUTATIONS.map((k) => [k, 0])) as Record<Mutation, number>;
}
