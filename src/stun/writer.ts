/**
 * Builds STUN messages (RFC 8489 §5, §14): responses, errors, test requests, and on the data path Data
 * indications, where one writer with a buffer sized for the largest message is restarted for each
 * (src/turn/relay-path.ts), so nothing is allocated per message.
 */
import { HEADER_LENGTH, MAGIC_COOKIE, type StunClass } from "./constants.ts";
import { encodeMessageType } from "./message-type.ts";

export class StunWriter {
  private buf: Uint8Array;
  private len = HEADER_LENGTH;

  constructor(method: number, cls: StunClass, transactionId: Uint8Array, capacity = 256) {
    this.buf = new Uint8Array(Math.max(capacity, 64));
    this.restart(method, cls, transactionId);
  }

  /** Starts a new message in the same buffer: header written, no attributes. */
  restart(method: number, cls: StunClass, transactionId: Uint8Array): void {
    const type = encodeMessageType(method, cls);
    this.buf[0] = type >> 8;
    this.buf[1] = type & 0xff;
    writeU32(this.buf, 4, MAGIC_COOKIE);
    for (let i = 0; i < 12; i++) this.buf[8 + i] = transactionId[i]!;
    this.len = HEADER_LENGTH;
  }

  get length(): number {
    return this.len;
  }

  /** The bytes written so far (a view; header length field kept current). */
  get bytes(): Uint8Array {
    this.syncLength(this.len);
    return this.buf.subarray(0, this.len);
  }

  /** Appends an attribute header and zeroed padded value space; returns the value offset for the caller to fill. */
  reserve(type: number, valueLength: number): number {
    const at = this.appendAttributeHeader(type, valueLength);
    this.buf.fill(0, at, this.len);
    return at;
  }

  /** The underlying buffer, for filling space returned by `reserve`. Valid until the next add. */
  get buffer(): Uint8Array {
    return this.buf;
  }

  addBytes(type: number, value: Uint8Array): this {
    const at = this.reserve(type, value.length);
    this.buf.set(value, at);
    return this;
  }

  /** Appends an attribute whose value is bytes[offset, offset + length): only the padding is zeroed. */
  addRange(type: number, bytes: Uint8Array, offset: number, length: number): this {
    const at = this.appendAttributeHeader(type, length);
    const b = this.buf;
    b.set(bytes.subarray(offset, offset + length), at);
    for (let i = at + length; i < this.len; i++) b[i] = 0;
    return this;
  }

  /**
   * Appends an attribute header (RFC 8489 §14: type, length) and the room for its value padded to 4
   * bytes, left as it was; returns the value's offset. The buffer may have been replaced to make room.
   */
  private appendAttributeHeader(type: number, valueLength: number): number {
    const padded = (valueLength + 3) & ~3;
    this.ensure(4 + padded);
    const at = this.len;
    const b = this.buf;
    b[at] = type >> 8;
    b[at + 1] = type & 0xff;
    b[at + 2] = valueLength >> 8;
    b[at + 3] = valueLength & 0xff;
    this.len = at + 4 + padded;
    return at + 4;
  }

  addUint32(type: number, value: number): this {
    const at = this.reserve(type, 4);
    writeU32(this.buf, at, value >>> 0);
    return this;
  }

  addEmpty(type: number): this {
    this.reserve(type, 0);
    return this;
  }

  /** Sets the header length as if the message ended at `end` (RFC 8489 §14.5-14.7 integrity/fingerprint rule). */
  syncLength(end: number): void {
    const bodyLength = end - HEADER_LENGTH;
    this.buf[2] = bodyLength >> 8;
    this.buf[3] = bodyLength & 0xff;
  }

  /** Finishes the message where it is: header length set; the message is `buffer[0, returned length)`. */
  finishInPlace(): number {
    this.syncLength(this.len);
    return this.len;
  }

  /** The finished message, a fresh copy sized exactly. */
  finish(): Uint8Array {
    this.syncLength(this.len);
    return this.buf.slice(0, this.len);
  }

  private ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
}

export function writeU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

export function readU32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

export function readU16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}
