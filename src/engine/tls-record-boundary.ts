/**
 * Where a client's TLS records end, followed over every byte of ciphertext handed to OpenSSL: each record
 * is a 5-byte header whose last two bytes are the length of the body after it (RFC 8446 §5.1, RFC 5246
 * §6.2.1). OpenSSL cannot tell this itself: once it has parsed a record's header and waits for the body,
 * neither its input BIO nor SSL_has_pending shows that it holds part of a record. The one-SSL_read way
 * for a lone record (tls-connection.ts) is right only when the next read starts a record, so the engine
 * keeps count. A connection adopted from another engine starts mid-stream: its boundaries are unknown
 * and never claimed.
 */
const HEADER = 5;

export class RecordBoundary {
  /** Bytes of the current record's body still to come. */
  private bodyLeft = 0;
  /** Bytes of the next record's header seen so far (0-4). */
  private headerSeen = 0;
  /** The length field's high byte, once seen. */
  private lengthHigh = 0;

  /** `known`: false for a stream whose start this engine did not see. */
  constructor(private readonly known = true) {}

  /** Whether the ciphertext passed to `scan` so far ends exactly where a record ends. */
  atBoundary(): boolean {
    return this.known && this.bodyLeft === 0 && this.headerSeen === 0;
  }

  /** Follows bytes[start, end), the next ciphertext of the stream: headers byte by byte, bodies skipped. */
  scan(bytes: Uint8Array, start: number, end: number): void {
    let at = start;
    while (at < end) {
      if (this.bodyLeft > 0) {
        const take = Math.min(this.bodyLeft, end - at);
        this.bodyLeft -= take;
        at += take;
        continue;
      }
      const seen = this.headerSeen;
      if (seen === 3) this.lengthHigh = bytes[at]!;
      if (seen === HEADER - 1) {
        this.bodyLeft = (this.lengthHigh << 8) | bytes[at]!;
        this.headerSeen = 0;
      } else {
        this.headerSeen = seen + 1;
      }
      at++;
    }
  }
}
