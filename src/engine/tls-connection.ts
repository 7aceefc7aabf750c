/**
 * TLS on the engine's TCP connections (RFC 8656 §3.1, `turns:`): the sessions' lifecycle, the handshake
 * and decryption into the connection's input buffer (where tcp-reading.ts frames it as for TCP), in the
 * engine's epoll loop, through OpenSSL (ffi/tls-session.ts). Encryption of replies is tls-writing.ts.
 *
 * In user space (the default) each session has memory BIOs: the engine reads ciphertext into one
 * scratch buffer per engine and feeds it, and what OpenSSL writes goes out through the transport's
 * own write path, so --max-tcp-buffer, --max-tcp-buffer-total and the write backlog apply to the
 * ciphertext exactly as to TCP bytes. Where the kernel offers kTLS, sessions run on the socket instead
 * (OpenSSL hands the keys to the kernel only through a socket BIO): OpenSSL reads and writes the fd, the
 * backlog holds plaintext, and once the kernel has both directions SSL_read/SSL_write are plain
 * read(2)/write(2) underneath.
 */
import { ptr } from "bun:ffi";
import { EAGAIN, EINTR, libc } from "../../ffi/index.ts";
import type { TlsContext } from "../../ffi/tls-context.ts";
import { TLS_CLOSED, TLS_FAILED, TLS_WANT_READ, TLS_WANT_WRITE, TlsSession } from "../../ffi/tls-session.ts";
import { SLOT } from "./counters.ts";
import { RecordBoundary } from "./tls-record-boundary.ts";
import type { Connection, TlsHost, TlsLink } from "./tcp-connections.ts";
import { TlsWriter } from "./tls-writing.ts";

export type { TlsHost, TlsLink };

const MAX_READS_PER_WAKE = 16;
/** A TLS record's header: type, legacy version (2), length (2) (RFC 8446 §5.1). */
const RECORD_HEADER = 5;
/** Ciphertext read per read(2): a few full records. */
const CIPHER_SCRATCH = 64 * 1024;

export interface TlsEngineOptions {
  /** Builds the server context; called at start and at each certificate reload. */
  context: () => TlsContext;
  /** Sessions on the socket, for kTLS (kernelTlsAvailable()). */
  onSocket: boolean;
  /** The engine's counter block: tlsHandshakes, tlsKernel. */
  counters: Float64Array;
}

export class TlsEngine {
  private context: TlsContext;
  private readonly cipher = new Uint8Array(new ArrayBuffer(CIPHER_SCRATCH));
  private readonly cipherAddress = ptr(this.cipher) as unknown as number;
  /** Plaintext of a piped connection (RFC 6062), on its way to the reader. */
  private readonly plain = new Uint8Array(new ArrayBuffer(CIPHER_SCRATCH));

  /** The encrypting side (tls-writing.ts); the TCP writer sends replies through it directly. */
  readonly writer: TlsWriter;

  constructor(private readonly options: TlsEngineOptions, private readonly host: TlsHost) {
    this.context = options.context();
    this.writer = new TlsWriter(host);
  }

  /** A new context for new connections; open ones keep theirs. Throws (old one kept) when it does not load. */
  reload(): void {
    const next = this.options.context();
    this.context.free();
    this.context = next;
  }

  /**
   * The TLS state of a newly accepted connection, waiting for its ClientHello. `inMemory`: bytes of it
   * were read already (after a PROXY header), which only memory BIOs can be given.
   */
  open(fd: number, inMemory = false): TlsLink {
    const onSocket = this.options.onSocket && !inMemory;
    const session = onSocket ? TlsSession.onSocket(this.context, fd) : TlsSession.inMemory(this.context);
    return { session, onSocket, ready: false, readyAt: 0, boundary: new RecordBoundary(), drained: false };
  }

  /** Bytes that arrived in clear before the TLS (after a balancer's PROXY header) are the first ciphertext. */
  feedEarly(link: TlsLink, bytes: Uint8Array, start: number, end: number): void {
    if (link.onSocket) return;
    link.drained = false;
    link.boundary.scan(bytes, start, end);
    link.session.feed(bytes, start, end - start);
  }

  /** Bytes already fed (feedEarly): handshake and plaintext as far as they go; false when `c` was closed. */
  resume(c: Connection, link: TlsLink, now: number): boolean {
    return this.advance(c, link, now);
  }

  /** The socket is readable: ciphertext in, plaintext framed (or, piped, handed to the reader). */
  read(c: Connection, link: TlsLink, now: number): void {
    if (link.onSocket) {
      this.advance(c, link, now);
      return;
    }
    for (let round = 0; round < MAX_READS_PER_WAKE && !c.paused; round++) {
      const n = libc.read(c.fd, this.cipherAddress, CIPHER_SCRATCH);
      if (n === -EINTR) continue;
      if (n === -EAGAIN) return;
      if (n <= 0) return this.host.close(c); // 0: the client closed; < 0: reset
      // At a record boundary, bytes that are exactly one record (RFC 8446 §5.1: 5-byte header, then
      // `length` bytes) are all OpenSSL will hold: advance() can stop once it has decrypted them.
      const lone = link.drained && n === RECORD_HEADER + ((this.cipher[3]! << 8) | this.cipher[4]!);
      link.drained = false;
      link.boundary.scan(this.cipher, 0, n);
      link.session.feedAt(this.cipherAddress, n);
      if (!this.advance(c, link, now, lone)) return;
      if (n < CIPHER_SCRATCH) return; // drained: save the EAGAIN read
    }
  }

  /**
   * Handshake, then every plaintext byte OpenSSL holds; false when `c` was closed. `lone`: what was fed
   * since OpenSSL last held nothing is one whole record, so a read that returns less than the room it
   * had has taken it all: no second SSL_read only to hear WANT_READ (one relayed message per wake-up
   * is one record per read at a paced load).
   */
  private advance(c: Connection, link: TlsLink, now: number, lone = false): boolean {
    if (!link.ready) {
      lone = false;
      if (!this.handshake(c, link, now)) return this.host.isOpen(c);
    }
    for (;;) {
      if (c.raw) return this.pipe(c, link);
      if (c.end === c.bytes.length && !this.grown(c)) return false;
      const room = c.bytes.length - c.end;
      const n = link.session.readAt(c.address + c.end, room);
      if (n > 0) {
        c.end += n;
        if (!this.host.consume(c, now)) return false;
        if (lone && n < room && !c.raw) return (link.drained = true);
        lone = false;
        continue;
      }
      if (n === TLS_WANT_READ || n === TLS_WANT_WRITE) {
        if (link.onSocket) return true;
        // Wanting more, OpenSSL has taken every whole record fed: what it may still hold is part of one.
        link.drained = link.boundary.atBoundary();
        // Alerts and post-handshake messages OpenSSL answered (a KeyUpdate) leave with this flush; after
        // a lone application record there is nothing to flush, and the next reply's flush carries all.
        return this.writer.flush(c, link);
      }
      return this.ended(c, link, n);
    }
  }

  /**
   * The handshake's next step (kept out of advance(), which runs per record, so that its compiled code
   * stays small): true once it has completed; false while it waits, or when `c` was closed.
   */
  private handshake(c: Connection, link: TlsLink, now: number): boolean {
    const h = link.session.handshake();
    if (!this.writer.flush(c, link)) return false;
    if (h === TLS_FAILED) {
      this.host.close(c, true);
      return false;
    }
    if (h === TLS_WANT_WRITE) this.host.armWritable(c);
    if (h !== 1) return false;
    link.ready = true;
    link.readyAt = now;
    this.options.counters[SLOT.tlsHandshakes]!++;
    if (link.onSocket && link.session.kernelSends() && link.session.kernelReceives()) this.options.counters[SLOT.tlsKernel]!++;
    return true;
  }

  /** A full input buffer: room made at its end, else `c` closed (false). */
  private grown(c: Connection): boolean {
    if (this.host.grow(c)) return true;
    this.host.close(c, true);
    return false;
  }

  /** SSL_read ended the session (close_notify, or a failure): `c` closes; always false. */
  private ended(c: Connection, link: TlsLink, n: number): false {
    this.writer.flush(c, link); // close_notify or an alert back, best effort
    if (this.host.isOpen(c)) this.host.close(c, n !== TLS_CLOSED);
    return false;
  }

  /**
   * RFC 6062 §5.4, a data connection that became a byte pipe: the plaintext goes to its reader unframed,
   * until the reader asks for a pause (its peer is slow); OpenSSL keeps the rest until readPiped.
   */
  private pipe(c: Connection, link: TlsLink): boolean {
    const reader = c.raw!;
    if (c.start < c.end) {
      const start = c.start;
      const end = c.end;
      c.start = c.end = 0;
      if (!reader.data(c.bytes, start, end - start)) return this.pause(c);
    }
    for (;;) {
      if (!this.host.isOpen(c)) return false;
      const n = link.session.read(this.plain, 0, this.plain.length);
      if (n > 0) {
        if (!reader.data(this.plain, 0, n)) return this.pause(c);
        continue;
      }
      if (n === TLS_WANT_READ || n === TLS_WANT_WRITE) return this.writer.flush(c, link);
      this.writer.flush(c, link);
      if (this.host.isOpen(c)) this.host.close(c, n !== TLS_CLOSED);
      return false;
    }
  }

  private pause(c: Connection): false {
    c.paused = true;
    this.host.paused(c);
    return false;
  }

  /** A piped connection's bytes after its ConnectionBind, and what OpenSSL holds (also on resume). */
  readPiped(c: Connection, link: TlsLink, now: number): void {
    if (this.host.isOpen(c) && !c.paused) this.advance(c, link, now);
  }

  /** The connection moves to another engine: its session goes along, not freed (stream-handoff.ts). */
  detach(link: TlsLink): number {
    return link.session.ssl;
  }

  /** A connection handed over by another engine, with its established session. */
  adopt(ssl: number, onSocket: boolean, now: number): TlsLink {
    return { session: TlsSession.adopt(ssl, onSocket), onSocket, ready: true, readyAt: now, boundary: new RecordBoundary(false), drained: false };
  }

  /** Socket mode, the socket is writable: the plaintext backlog goes on (or the handshake, if it waited). */
  writeBacklog(c: Connection, link: TlsLink, now: number): number {
    if (!link.ready) {
      this.advance(c, link, now);
      return 0;
    }
    return c.backlog ? this.writer.writeThrough(c, link, c.backlog, c.backlogLength) : 0;
  }

  /** The connection is gone: its session (and BIOs) are freed. */
  closed(link: TlsLink): void {
    link.session.free();
  }

  /** Engine stop: the context's last reference goes with the last session. */
  close(): void {
    this.context.free();
  }
}
