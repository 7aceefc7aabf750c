/**
 * The byte buffers of TCP/TLS connections and what one engine lets them hold. A connection's input buffer
 * starts at 4 KiB, doubles only as far as the message being read needs (at most one largest message) and
 * shrinks back once it is handled; unread replies go to a backlog of at most --max-tcp-buffer, freed when
 * the client catches up. Everything above each connection's first 4 KiB counts against
 * --max-tcp-buffer-total: a connection that needs more while that is reached is refused the room (its
 * owner closes it), so a flood of connections that each claim 65,535 bytes cannot take the host's memory.
 */
import { ptr } from "bun:ffi";

/** Largest frame: a STUN message of 65535 + 20 bytes, or ChannelData 65535 + 4 + padding. */
export const MAX_FRAME = 65536 + 20;
export const INITIAL_BUFFER = 4096;

/** A connection's buffers: input bytes[start, end), and the backlog of unread replies. */
export interface Buffered {
  buffer: ArrayBuffer;
  bytes: Uint8Array;
  /** bytes' address, for read(2). */
  address: number;
  start: number;
  end: number;
  backlog: Uint8Array | null;
  backlogLength: number;
}

export interface BufferLimits {
  /** Bytes of unread replies one connection may hold. */
  maxBufferPerConnection: number;
  /** Bytes all connections may hold together beyond their first 4 KiB. */
  maxBufferPerEngine: number;
}

export class StreamBuffers {
  /** Bytes held beyond each connection's first buffer: grown input buffers and reply backlogs. */
  held = 0;
  /** Bytes of closed connections' buffers since the last collection: they return only once collected. */
  private released = 0;

  constructor(private readonly limits: BufferLimits) {}

  /** The buffers of a new connection. */
  fresh(): Buffered {
    const buffer = new ArrayBuffer(INITIAL_BUFFER);
    return { buffer, bytes: new Uint8Array(buffer), address: ptr(buffer) as unknown as number, start: 0, end: 0, backlog: null, backlogLength: 0 };
  }

  /** Makes room at the end of a full input buffer; false when a frame claims more than one largest message, or the engine's budget is spent. */
  grow(c: Buffered): boolean {
    if (c.start > 0) {
      c.bytes.copyWithin(0, c.start, c.end);
      c.end -= c.start;
      c.start = 0;
      return true;
    }
    if (c.bytes.length >= MAX_FRAME) return false;
    const size = Math.min(MAX_FRAME, c.bytes.length * 2);
    if (this.held + size - c.bytes.length > this.limits.maxBufferPerEngine) return false;
    this.resize(c, size);
    return true;
  }

  /** Called when every input byte has been handled: a big frame's room goes back. */
  emptied(c: Buffered): void {
    c.start = c.end = 0;
    if (c.bytes.length > INITIAL_BUFFER) this.resize(c, INITIAL_BUFFER);
  }

  private resize(c: Buffered, size: number): void {
    const buffer = new ArrayBuffer(size);
    const bytes = new Uint8Array(buffer);
    bytes.set(c.bytes.subarray(0, c.end));
    this.held += size - c.bytes.length;
    c.buffer = buffer;
    c.bytes = bytes;
    c.address = ptr(buffer) as unknown as number;
  }

  /** Appends `rest` to the backlog; false (nothing appended) when over the connection's or the engine's limit. */
  appendBacklog(c: Buffered, rest: Uint8Array): boolean {
    const needed = c.backlogLength + rest.length;
    const limit = this.limits.maxBufferPerConnection;
    const current = c.backlog?.length ?? 0;
    const size = current >= needed ? current : Math.min(limit, Math.max(needed, current * 2, 4096));
    if (needed > limit || this.held + size - current > this.limits.maxBufferPerEngine) return false;
    if (size > current) {
      const bigger = new Uint8Array(new ArrayBuffer(size));
      if (c.backlog) bigger.set(c.backlog.subarray(0, c.backlogLength));
      this.held += size - current;
      c.backlog = bigger;
    }
    c.backlog!.set(rest, c.backlogLength);
    c.backlogLength = needed;
    return true;
  }

  /** The first `written` backlog bytes left; a backlog emptied gives its room back. */
  consumedBacklog(c: Buffered, written: number): void {
    if (!c.backlog) return;
    c.backlog.copyWithin(0, written, c.backlogLength);
    c.backlogLength -= written;
    if (c.backlogLength > 0) return;
    this.held -= c.backlog.length;
    c.backlog = null;
  }

  /** The connection closed: all it held goes back. */
  closed(c: Buffered): void {
    const freed = c.bytes.length - INITIAL_BUFFER + (c.backlog?.length ?? 0);
    this.held -= freed;
    this.released += freed + INITIAL_BUFFER;
  }

  /**
   * After a flood's connections went: when 4 MiB or more of closed connections' buffers wait for the
   * collector, a full collection (called once a second, from the sweep) hands them back to the system;
   * the engine's own GC pace would leave them held for a long time. Shrinking a live connection's buffer
   * does not count: a client of big messages must not cause collections.
   */
  collectClosed(): void {
    if (this.released < 4 << 20) return;
    this.released = 0;
    Bun.gc(true);
  }
}
