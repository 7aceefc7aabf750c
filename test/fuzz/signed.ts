/**
 * Validly signed hostile requests for the long-term credential mechanism (RFC 8489 §9.2): a request is
 * kept as a list of attributes, mutated at that level (values, lengths, types, duplicates, drops,
 * inserts, order, method), then serialized and signed with a nonce the server really issued to that
 * source, so MESSAGE-INTEGRITY (or -SHA256, RFC 8489 §14.5/§14.6) is correct over the mutated bytes and
 * the request reaches the handlers behind authentication. "after-signing" flips bytes once the message
 * is signed (FINGERPRINT recomputed so it is not simply discarded): those must all get 401.
 * Shared by the end-to-end fuzzer (test/fuzz/run.ts) and the in-process one (test/turn/signed-fuzz.test.ts).
 */
import type { Endpoint } from "../../src/net/endpoint.ts";
import {
  Attr, PasswordAlgorithm, StunClass, crc32, StunMethod, StunWriter, writeFingerprint, writeMessageIntegrity,
  writeMessageIntegritySha256, writeXorAddress,
} from "../../src/stun/index.ts";
import type { Rng } from "./mutate.ts";
import { md5Key, sha256Key } from "../../src/turn/credentials.ts";

export interface SignedCredentials {
  username: string;
  password: string;
  realm: string;
}

/** What one source learned from its 401 (RFC 8489 §9.2.3). */
export interface SourceNonce {
  nonce: string;
  /** PASSWORD-ALGORITHMS as the server sent it (value bytes), or null when it sent none. */
  algorithms: Uint8Array | null;
}

export const SIGNED_MUTATIONS = [
  "none", "value-bytes", "value-length", "attribute-type", "duplicate", "drop", "insert", "reorder",
  "method-class", "raw-body", "auth-attributes", "trailing-after-integrity", "after-signing",
] as const;
export type SignedMutation = (typeof SIGNED_MUTATIONS)[number];

type Attribute = [type: number, value: Uint8Array];
interface Template {
  method: number;
  cls: StunClass;
  attrs: Attribute[];
}

const TYPES = [
  ...Object.values(Attr),
  0x0000, 0x0003, 0x0005, 0x0010, 0x7fff, 0x8000, 0xffff, 0x002f, 0x4000, 0xc001,
];

function u32(v: number): Uint8Array {
  return new Uint8Array([v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]);
}

function xorAddress(peer: Endpoint, tid: Uint8Array): Uint8Array {
  const w = new StunWriter(StunMethod.Binding, StunClass.Request, tid);
  writeXorAddress(w, Attr.XorPeerAddress, peer);
  return w.finish().slice(24);
}

function randomBytes(rng: Rng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = rng.below(256);
  return b;
}

export class SignedMutator {
  readonly md5Key: Uint8Array;
  readonly sha256Key: Uint8Array;
  readonly counts: Record<SignedMutation, number> = Object.fromEntries(SIGNED_MUTATIONS.map((k) => [k, 0])) as never;
  /** Requests produced by "after-signing", which must each get 401. */
  afterSigning = 0;

  constructor(private readonly rng: Rng, readonly credentials: SignedCredentials, private readonly peers: readonly Endpoint[]) {
    this.md5Key = md5Key(credentials.username, credentials.realm, credentials.password);
    this.sha256Key = sha256Key(credentials.username, credentials.realm, credentials.password);
  }

  private template(tid: Uint8Array): Template {
    const rng = this.rng;
    const peer = () => xorAddress(rng.pick(this.peers), tid);
    switch (rng.below(8)) {
      case 0: return { method: StunMethod.Allocate, cls: StunClass.Request, attrs: [[Attr.RequestedTransport, u32(17 << 24)]] };
      case 1: {
        const attrs: Attribute[] = [[Attr.RequestedTransport, u32(17 << 24)], [Attr.Lifetime, u32(rng.below(4000))]];
        if (rng.chance(0.3)) attrs.push([Attr.DontFragment, new Uint8Array(0)]);
        if (rng.chance(0.3)) attrs.push([Attr.EvenPort, new Uint8Array([rng.chance(0.5) ? 0x80 : 0])]);
        if (rng.chance(0.3)) attrs.push([Attr.RequestedAddressFamily, u32((rng.chance(0.5) ? 1 : 2) << 24)]);
        if (rng.chance(0.2)) attrs.push([Attr.AdditionalAddressFamily, u32(2 << 24)]);
        if (rng.chance(0.1)) attrs.push([Attr.ReservationToken, randomBytes(rng, 8)]);
        return { method: StunMethod.Allocate, cls: StunClass.Request, attrs };
      }
      case 2: return { method: StunMethod.Refresh, cls: StunClass.Request, attrs: [[Attr.Lifetime, u32(rng.chance(0.3) ? 0 : rng.below(4000))]] };
      case 3: {
        const attrs: Attribute[] = [];
        for (let n = 1 + rng.below(3); n > 0; n--) attrs.push([Attr.XorPeerAddress, peer()]);
        return { method: StunMethod.CreatePermission, cls: StunClass.Request, attrs };
      }
      case 4:
      case 5: return {
        method: StunMethod.ChannelBind, cls: StunClass.Request,
        attrs: [[Attr.ChannelNumber, u32((0x4000 + rng.below(4)) << 16)], [Attr.XorPeerAddress, peer()]],
      };
      case 6: return {
        method: StunMethod.Send, cls: StunClass.Indication,
        attrs: [[Attr.XorPeerAddress, peer()], [Attr.Data, new Uint8Array(rng.below(64)).fill(0x5a)]],
      };
      default: return { method: StunMethod.Refresh, cls: StunClass.Request, attrs: [[Attr.Lifetime, u32(600)]] };
    }
  }

  /** A valid signed Refresh with LIFETIME 0 (RFC 8656 §7.3): what the fuzzer sends at the end to release. */
  refreshZero(source: SourceNonce): Uint8Array {
    const tid = randomBytes(this.rng, 12);
    return this.sign({ method: StunMethod.Refresh, cls: StunClass.Request, attrs: [[Attr.Lifetime, u32(0)]] }, tid, source, 0, false);
  }

  /** An unsigned Allocate: its 401 carries the nonce for the sending 5-tuple. */
  static challenge(rng: Rng): Uint8Array {
    const w = new StunWriter(StunMethod.Allocate, StunClass.Request, randomBytes(rng, 12));
    w.addUint32(Attr.RequestedTransport, 17 << 24);
    return w.finish();
  }

  /** One signed (and usually mutated) request for the source holding `source`. */
  next(source: SourceNonce): { bytes: Uint8Array; kind: SignedMutation } {
    const rng = this.rng;
    const kind = rng.chance(0.15) ? "none" : SIGNED_MUTATIONS[1 + rng.below(SIGNED_MUTATIONS.length - 1)]!;
    this.counts[kind]++;
    const tid = randomBytes(rng, 12);
    const t = this.template(tid);
    const a = t.attrs;
    const sha = source.algorithms !== null && rng.below(3) === 0 ? 1 : rng.below(4) === 0 ? 2 : 0;
    const fingerprint = rng.chance(0.3);
    switch (kind) {
      case "value-bytes": {
        const v = rng.pick(a)[1];
        for (let n = 1 + rng.below(4); n > 0 && v.length; n--) v[rng.below(v.length)] = rng.chance(0.5) ? rng.below(256) : v[rng.below(v.length)]! ^ (1 << rng.below(8));
        break;
      }
      case "value-length": {
        const e = rng.pick(a);
        const len = rng.chance(0.5) ? rng.below(e[1].length + 1) : e[1].length + 1 + rng.below(40);
        const v = new Uint8Array(len);
        v.set(e[1].subarray(0, Math.min(len, e[1].length)));
        for (let i = e[1].length; i < len; i++) v[i] = rng.below(256);
        e[1] = v;
        break;
      }
      case "attribute-type":
        rng.pick(a)[0] = rng.chance(0.7) ? rng.pick(TYPES) : rng.below(0x10000);
        break;
      case "duplicate": {
        const e = rng.pick(a);
        a.splice(rng.below(a.length + 1), 0, [e[0], e[1].slice()]);
        break;
      }
      case "drop":
        a.splice(rng.below(a.length), 1);
        break;
      case "insert":
        a.splice(rng.below(a.length + 1), 0, [rng.pick(TYPES), randomBytes(rng, rng.pick([0, 1, 2, 4, 8, 20, 32, rng.below(100)]))]);
        break;
      case "reorder":
        if (a.length > 1) {
          const i = rng.below(a.length);
          const j = rng.below(a.length);
          [a[i], a[j]] = [a[j]!, a[i]!];
        }
        break;
      case "method-class":
        if (rng.chance(0.5)) t.method = rng.pick([StunMethod.Allocate, StunMethod.Refresh, StunMethod.CreatePermission, StunMethod.ChannelBind, StunMethod.Send, StunMethod.Binding, 0x00a, 0x0fff & rng.next()]);
        else t.cls = rng.pick([StunClass.Request, StunClass.Indication, StunClass.SuccessResponse, StunClass.ErrorResponse]);
        break;
    }
    if (kind === "after-signing") {
      if (t.cls !== StunClass.Request) {
        t.method = StunMethod.Refresh;
        t.cls = StunClass.Request;
        t.attrs = [[Attr.Lifetime, u32(600)]];
      }
      this.afterSigning++;
      return { bytes: this.corruptAfterSigning(this.sign(t, tid, source, sha, fingerprint), t, fingerprint), kind };
    }
    return { bytes: this.sign(t, tid, source, sha, fingerprint, kind), kind };
  }

  /**
   * Serializes and signs. sha: 0 = MESSAGE-INTEGRITY with the MD5 key; 1 = PASSWORD-ALGORITHM SHA-256
   * (with the server's list) and MESSAGE-INTEGRITY-SHA256 with the SHA-256 key; 2 = both integrity
   * attributes with the MD5 key (RFC 8489 §14.6: MESSAGE-INTEGRITY first).
   */
  private sign(t: Template, tid: Uint8Array, source: SourceNonce, sha: number, fingerprint: boolean, kind: SignedMutation = "none"): Uint8Array {
    const rng = this.rng;
    const w = new StunWriter(t.method, t.cls, tid, 512);
    const auth: Attribute[] = [
      [Attr.Username, new TextEncoder().encode(this.credentials.username)],
      [Attr.Realm, new TextEncoder().encode(this.credentials.realm)],
      [Attr.Nonce, new TextEncoder().encode(source.nonce)],
    ];
    if (sha === 1) {
      auth.push([Attr.PasswordAlgorithm, u32(PasswordAlgorithm.SHA256 << 16)]);
      auth.push([Attr.PasswordAlgorithms, source.algorithms!]);
    }
    if (kind === "auth-attributes") {
      const e = rng.pick(auth);
      const choice = rng.below(5);
      if (choice === 0) e[1] = e[1].slice(0, rng.below(e[1].length + 1));
      else if (choice === 1) { const v = e[1].slice(); if (v.length) v[rng.below(v.length)] ^= 1 << rng.below(8); e[1] = v; }
      else if (choice === 2) auth.splice(rng.below(auth.length), 1);
      else if (choice === 3) auth.push([e[0], e[1].slice()]);
      else e[1] = randomBytes(rng, rng.below(800));
    }
    const all = kind === "auth-attributes" && rng.chance(0.3) ? [...auth, ...t.attrs] : [...t.attrs, ...auth];
    for (const [type, value] of all) w.addBytes(type, value);
    if (kind === "raw-body" && w.length > 20) {
      // Any byte after the header, the header length kept: structure may break, integrity still holds.
      const b = w.buffer;
      for (let n = 1 + rng.below(3); n > 0; n--) b[20 + rng.below(w.length - 20)] ^= 1 << rng.below(8);
    }
    const key = sha === 1 ? this.sha256Key : this.md5Key;
    if (sha !== 1) writeMessageIntegrity(w, key);
    if (sha !== 0) writeMessageIntegritySha256(w, key);
    if (kind === "trailing-after-integrity") {
      // RFC 8489 §14.5: attributes after MESSAGE-INTEGRITY(-SHA256), except FINGERPRINT, are ignored.
      w.addBytes(rng.pick(TYPES), randomBytes(rng, rng.below(40)));
    }
    if (fingerprint) writeFingerprint(w);
    return w.finish();
  }

  /** Flips bits in the transaction id or a method attribute's value; re-seals FINGERPRINT. Structure intact. */
  private corruptAfterSigning(m: Uint8Array, t: Template, fingerprint: boolean): Uint8Array {
    const rng = this.rng;
    const ranges: [number, number][] = [[8, 20]];
    let at = 20;
    for (const [, value] of t.attrs) {
      if (value.length) ranges.push([at + 4, at + 4 + value.length]);
      at += 4 + ((value.length + 3) & ~3);
    }
    const original = m.slice();
    for (let n = 1 + rng.below(3); n > 0 || Buffer.compare(m, original) === 0; n--) {
      // (A bit flipped twice would leave a valid request: flip until the bytes differ.)
      const [s, e] = rng.pick(ranges);
      m[s + rng.below(e - s)] ^= 1 << rng.below(8);
    }
    if (fingerprint) {
      // Recompute the CRC so the message is not merely discarded (RFC 8489 §14.7) but reaches §9.2.4.
      const crc = (crc32(m, 0, m.length - 8) ^ 0x5354554e) >>> 0;
      m.set([crc >>> 24, (crc >>> 16) & 0xff, (crc >>> 8) & 0xff, crc & 0xff], m.length - 4);
    }
    return m;
  }
}

/** The nonce and PASSWORD-ALGORITHMS of a 401/438 answer, or undefined if it is not one. */
export function nonceFrom(answer: Uint8Array): SourceNonce | undefined {
  if (answer.length < 20 || (answer[0]! & 0xc0) !== 0) return undefined;
  let nonce: string | undefined;
  let algorithms: Uint8Array | null = null;
  let at = 20;
  const end = Math.min(answer.length, 20 + ((answer[2]! << 8) | answer[3]!));
  while (at + 4 <= end) {
    const type = (answer[at]! << 8) | answer[at + 1]!;
    const len = (answer[at + 2]! << 8) | answer[at + 3]!;
    const value = answer.subarray(at + 4, at + 4 + len);
    if (type === Attr.Nonce) nonce = new TextDecoder().decode(value);
    if (type === Attr.PasswordAlgorithms) {
      // Offer SHA-256 only when the server lists it (RFC 8489 §9.2.4 third check).
      algorithms = value.slice();
      let offered = false;
      for (let i = 0; i + 4 <= value.length; i += 4) if (((value[i]! << 8) | value[i + 1]!) === PasswordAlgorithm.SHA256) offered = true;
      if (!offered) algorithms = null;
    }
    at += 4 + ((len + 3) & ~3);
  }
  return nonce === undefined ? undefined : { nonce, algorithms };
}
