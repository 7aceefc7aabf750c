/**
 * STUN message decoding (RFC 8489 §5, §14). The decoder never throws: a datagram either decodes, or
 * `decode` returns a non-zero MalformedCode that callers treat as "silently discard" (RFC 8489 §6.3).
 *
 * `StunDecoder` is the allocation-free form for the server: one instance is reused for every datagram,
 * attribute positions land in preallocated typed arrays, and the values are read in place. The decoded
 * view is valid only until the next `decode`. `decodeStun` is the convenient snapshot form.
 */
import { crc32 } from "./crc32.ts";
import { Attr, HEADER_LENGTH, isUnknownComprehensionRequired, type StunClass } from "./constants.ts";
import { classOf, methodOf } from "./message-type.ts";
import { FINGERPRINT_XOR } from "./attributes/fingerprint.ts";

export const Malformed = {
  Ok: 0,
  TooShort: 1,
  NotStun: 2,
  BadCookie: 3,
  BadLength: 4,
  AttributeOverrun: 5,
  BadPadding: 6,
  TooManyAttributes: 7,
  AttributeAfterFingerprint: 8,
  BadFingerprint: 9,
} as const;
export type MalformedCode = (typeof Malformed)[keyof typeof Malformed];

export const MALFORMED_REASONS = [
  "ok",
  "too-short",
  "not-stun",
  "bad-cookie",
  "bad-length",
  "attribute-overrun",
  "bad-padding",
  "too-many-attributes",
  "attribute-after-fingerprint",
  "bad-fingerprint",
] as const;
export type MalformedReason = Exclude<(typeof MALFORMED_REASONS)[number], "ok">;

const MAX_ATTRIBUTES = 128;
const MAX_UNKNOWN = 16;
const EMPTY = new Uint8Array(0);

/** Cheap first-byte test (RFC 7983 demultiplexing): STUN messages start with 0b00. */
export function looksLikeStun(bytes: Uint8Array): boolean {
  return bytes.length >= HEADER_LENGTH && (bytes[0]! & 0xc0) === 0 &&
    bytes[4] === 0x21 && bytes[5] === 0x12 && bytes[6] === 0xa4 && bytes[7] === 0x42;
}

export class StunDecoder {
  bytes: Uint8Array = EMPTY;
  messageType = 0;
  method = 0;
  cls: StunClass = 0;
  /** Number of recorded attributes. Attributes after MESSAGE-INTEGRITY are not recorded (RFC 8489 §14.5). */
  count = 0;
  readonly types = new Uint16Array(MAX_ATTRIBUTES);
  /** Offset of each attribute's value within `bytes`. */
  readonly offsets = new Int32Array(MAX_ATTRIBUTES);
  readonly lengths = new Uint16Array(MAX_ATTRIBUTES);
  /** Attribute indexes (into the arrays above) or -1. */
  integrity = -1;
  integritySha256 = -1;
  fingerprint = -1;
  /** Unknown comprehension-required attribute types (RFC 8489 §6.3.1), at most 16 kept. */
  unknownCount = 0;
  readonly unknown = new Uint16Array(MAX_UNKNOWN);

  /** Decodes one datagram. Returns Malformed.Ok (0) or the reason it is not a valid STUN message. */
  decode(bytes: Uint8Array): MalformedCode {
    this.bytes = bytes;
    this.count = 0;
    this.integrity = -1;
    this.integritySha256 = -1;
    this.fingerprint = -1;
    this.unknownCount = 0;
    const total = bytes.length;
    if (total < HEADER_LENGTH) return Malformed.TooShort;
    // RFC 8489 §5: the two most significant bits of every STUN message are zero.
    if ((bytes[0]! & 0xc0) !== 0) return Malformed.NotStun;
    if (bytes[4] !== 0x21 || bytes[5] !== 0x12 || bytes[6] !== 0xa4 || bytes[7] !== 0x42) return Malformed.BadCookie;
    const bodyLength = (bytes[2]! << 8) | bytes[3]!;
    // The length excludes the header and must match the datagram (UDP carries one message per datagram).
    if (bodyLength + HEADER_LENGTH !== total) return Malformed.BadLength;
    // Every attribute is padded to 4 bytes, so a body that is not a multiple of 4 lacks padding.
    if ((bodyLength & 3) !== 0) return Malformed.BadPadding;
    this.messageType = (bytes[0]! << 8) | bytes[1]!;
    this.method = methodOf(this.messageType);
    this.cls = classOf(this.messageType);

    let pos = HEADER_LENGTH;
    let afterIntegrity = false;
    let afterIntegritySha256 = false;
    while (pos < total) {
      if (pos + 4 > total) return Malformed.AttributeOverrun;
      const type = (bytes[pos]! << 8) | bytes[pos + 1]!;
      const length = (bytes[pos + 2]! << 8) | bytes[pos + 3]!;
      const valueOffset = pos + 4;
      if (valueOffset + length > total) return Malformed.AttributeOverrun;
      const next = valueOffset + ((length + 3) & ~3);
      if (next > total) return Malformed.BadPadding;

      if (type === Attr.Fingerprint) {
        // RFC 8489 §14.7: FINGERPRINT is the last attribute, and the CRC covers everything before it.
        if (next !== total) return Malformed.AttributeAfterFingerprint;
        if (length !== 4) return Malformed.BadFingerprint;
        const expected = (crc32(bytes, 0, pos) ^ FINGERPRINT_XOR) >>> 0;
        const actual = ((bytes[valueOffset]! << 24) | (bytes[valueOffset + 1]! << 16) |
          (bytes[valueOffset + 2]! << 8) | bytes[valueOffset + 3]!) >>> 0;
        if (expected !== actual) return Malformed.BadFingerprint;
        if (!this.record(type, valueOffset, length)) return Malformed.TooManyAttributes;
        this.fingerprint = this.count - 1;
      } else if (afterIntegritySha256) {
        // RFC 8489 §14.6: only FINGERPRINT may follow MESSAGE-INTEGRITY-SHA256; the rest is ignored.
      } else if (type === Attr.MessageIntegritySha256) {
        if (!this.record(type, valueOffset, length)) return Malformed.TooManyAttributes;
        this.integritySha256 = this.count - 1;
        afterIntegritySha256 = true;
      } else if (afterIntegrity) {
        // RFC 8489 §14.5: attributes after MESSAGE-INTEGRITY (other than the two above) are ignored.
      } else {
        if (!this.record(type, valueOffset, length)) return Malformed.TooManyAttributes;
        if (type === Attr.MessageIntegrity) {
          this.integrity = this.count - 1;
          afterIntegrity = true;
        } else if (isUnknownComprehensionRequired(type) && this.unknownCount < MAX_UNKNOWN) {
          this.unknown[this.unknownCount++] = type;
        }
      }
      pos = next;
    }
    return Malformed.Ok;
  }

  private record(type: number, offset: number, length: number): boolean {
    const i = this.count;
    if (i >= MAX_ATTRIBUTES) return false;
    this.types[i] = type;
    this.offsets[i] = offset;
    this.lengths[i] = length;
    this.count = i + 1;
    return true;
  }

  /** Index of the first attribute of `type`, or -1. Later duplicates are ignored (RFC 8489 §14). */
  indexOf(type: number): number {
    const types = this.types;
    for (let i = 0, n = this.count; i < n; i++) if (types[i] === type) return i;
    return -1;
  }

  has(type: number): boolean {
    return this.indexOf(type) >= 0;
  }

  /** A view of attribute `i`'s value (allocates a view: control path only). */
  value(i: number): Uint8Array {
    const o = this.offsets[i]!;
    return this.bytes.subarray(o, o + this.lengths[i]!);
  }

  transactionId(): Uint8Array {
    return this.bytes.slice(8, 20);
  }
}

export interface StunAttribute {
  readonly type: number;
  readonly value: Uint8Array;
}

export interface StunMessage {
  readonly messageType: number;
  readonly method: number;
  readonly cls: StunClass;
  readonly transactionId: Uint8Array;
  /** Attributes in wire order, duplicates included; values are copies. */
  readonly attributes: readonly StunAttribute[];
  readonly unknownComprehensionRequired: readonly number[];
  /** The datagram itself (a copy), for integrity checks. */
  readonly raw: Uint8Array;
  /** Wire offset of the MESSAGE-INTEGRITY / -SHA256 attribute header, or -1. */
  readonly integrityOffset: number;
  readonly integritySha256Offset: number;
}

export type DecodeResult = { ok: true; message: StunMessage } | { ok: false; reason: MalformedReason };

/** Decodes a datagram into an immutable snapshot. Never throws. */
export function decodeStun(bytes: Uint8Array): DecodeResult {
  const d = new StunDecoder();
  const code = d.decode(bytes);
  if (code !== Malformed.Ok) return { ok: false, reason: MALFORMED_REASONS[code] as MalformedReason };
  const raw = bytes.slice();
  const attributes: StunAttribute[] = [];
  for (let i = 0; i < d.count; i++) attributes.push({ type: d.types[i]!, value: d.value(i).slice() });
  return {
    ok: true,
    message: {
      messageType: d.messageType,
      method: d.method,
      cls: d.cls,
      transactionId: d.transactionId(),
      attributes,
      unknownComprehensionRequired: Array.from(d.unknown.subarray(0, d.unknownCount)),
      raw,
      integrityOffset: d.integrity >= 0 ? d.offsets[d.integrity]! - 4 : -1,
      integritySha256Offset: d.integritySha256 >= 0 ? d.offsets[d.integritySha256]! - 4 : -1,
    },
  };
}

/** First attribute of `type` in a snapshot, or undefined. */
export function getAttribute(message: StunMessage, type: number): Uint8Array | undefined {
  for (const a of message.attributes) if (a.type === type) return a.value;
  return undefined;
}
