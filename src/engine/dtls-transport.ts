/**
 * TURN over DTLS 1.2 on the engine's UDP listeners (coturn's --dtls; RFC 8656 §3.1 allows DTLS as the
 * client transport). The engine hands over every datagram whose first byte is a DTLS content type
 * (20..63, RFC 7983 §7: 0..3 is STUN, 64..79 ChannelData); the rest of the listener's traffic is plain.
 *
 * - A source without an association gets the stateless cookie exchange (ffi/dtls.ts DtlsListener with
 *   dtls-cookie.ts): a ClientHello without a valid cookie is answered with a HelloVerifyRequest and
 *   nothing is kept, so a flood of spoofed ClientHellos allocates no per-source state. Only a cookie
 *   that proves the address creates an association, keyed by the 5-tuple (listener, client address and
 *   port), under a per-engine cap (refusals counted).
 * - Each association is a connection to the core (a ConnectionId, like a TCP connection: its own
 *   5-tuple, its allocation ends with it); its decrypted datagrams are handled exactly like plain UDP
 *   ones, decrypted in place in the receive slot (plaintext is shorter than its record), and what the
 *   core sends it goes through SSL_write, one record per datagram, from the listener's socket.
 * - Timers: handshake retransmission (DTLS_get_timeout, driven by the engine's epoll timeout), the
 *   handshake timeout, and an association without an allocation closed after `unallocatedMs` of silence.
 */
import { DTLS_CLOSED, DTLS_FAILED, DtlsListener } from "../../ffi/dtls.ts";
import { DTLS_RECORD_HEADER } from "../../ffi/libssl.ts";
import { CONTENT_HANDSHAKE, countRecords, helloRandom, isNewClientHello } from "./dtls-records.ts";
import type { TlsContext } from "../../ffi/tls-context.ts";
import type { Endpoint, EndpointKey } from "../net/endpoint.ts";
import { connectionId, type ConnectionId } from "../turn/api.ts";
import { SLOT } from "./counters.ts";
import { DtlsCookies } from "./dtls-cookie.ts";
import type { UdpListener } from "./outbox.ts";
import { Association, sourceKey, type DtlsHandlers, type DtlsLimits } from "./dtls-association.ts";

export type { DtlsHandlers, DtlsLimits };

/** DTLS ids are minted from here, far above the TCP ones (tcp-connections.ts), so `owns` is one comparison. */
export const FIRST_DTLS_CONNECTION_ID = 2 ** 40;

export class DtlsTransport {
  readonly cookies: DtlsCookies;
  private readonly listener: DtlsListener;
  private readonly byListener: Array<Map<EndpointKey, Association>> = [];
  private readonly byId = new Map<ConnectionId, Association>();
  private readonly handshaking = new Set<Association>();
  /** Associations per source (sourceKey), for maxSessionsPerSource. */
  private readonly perSource = new Map<EndpointKey, number>();
  private nextId = FIRST_DTLS_CONNECTION_ID;
  private context: TlsContext;
  /** Records out of OpenSSL, split into datagrams from here. */
  private readonly output = new Uint8Array(65536);

  constructor(
    /** Builds the OpenSSL context from the certificate files (at start and at each reload). */
    private readonly loadContext: () => TlsContext,
    private readonly limits: DtlsLimits,
    private readonly handlers: DtlsHandlers,
    private readonly counters: Float64Array,
    clock: () => number = Date.now,
  ) {
    this.cookies = new DtlsCookies(clock);
    this.context = loadContext();
    this.listener = new DtlsListener(this.context, this.cookies);
  }

  /** Associations held now (established or in their handshake). */
  get size(): number {
    return this.byId.size;
  }

  owns(id: number): boolean {
    return id >= FIRST_DTLS_CONNECTION_ID;
  }

  /** Loads the certificate again for new associations; open ones keep theirs. Throws when it does not load. */
  reloadCertificate(): void {
    const next = this.loadContext();
    this.listener.useContext(next);
    this.context.free(); // each open association holds its own reference
    this.context = next;
  }

  /** One datagram from `client` on `listener` whose first byte is a DTLS content type; `address` is arena's. */
  handleDatagram(listener: UdpListener, client: Endpoint, arena: Uint8Array, address: number, offset: number, length: number, now: number): void {
    let table = this.byListener[listener.id];
    if (table === undefined) this.byListener[listener.id] = table = new Map();
    const a = table.get(client.key);
    if (a === undefined || (a.established && isNewClientHello(a.random, arena, offset, length))) {
      this.listen(listener, table, client, arena, address, offset, length, now, a);
      return;
    }
    a.lastSeen = now;
    a.session.feed(address + offset, length);
    if (!a.established && !this.advanceHandshake(a, now)) return;
    this.readRecords(a, arena, address, offset, length, now);
  }

  /** The cookie exchange (RFC 6347 §4.2.1); `previous` is an association this client restarts. */
  private listen(
    listener: UdpListener, table: Map<EndpointKey, Association>, client: Endpoint,
    arena: Uint8Array, address: number, offset: number, length: number, now: number, previous: Association | undefined,
  ): void {
    if (arena[offset] !== CONTENT_HANDSHAKE) return; // nothing to say to a stranger's other records
    // The cookie callbacks judge this client: inside DTLSv1_listen, and once more when OpenSSL processes
    // the buffered ClientHello in the first handshake step.
    this.cookies.client = client;
    const session = this.listener.listen(address + offset, length);
    if (session === null) {
      this.cookies.client = null;
      const n = this.listener.takeOutput(this.output, 0, this.output.length);
      if (n > 0) {
        this.counters[SLOT.dtlsHelloVerifies]!++;
        this.handlers.send(listener, client, this.output, 0, n);
      }
      return;
    }
    const source = sourceKey(client);
    const fromSource = this.perSource.get(source) ?? 0;
    if (previous === undefined && (this.byId.size >= this.limits.maxSessions || fromSource >= this.limits.maxSessionsPerSource)) {
      // Charged only now that the address is proven: a spoofed flood cannot fill the table or this count.
      this.cookies.client = null;
      session.free();
      this.counters[SLOT.dtlsRefused]!++;
      return;
    }
    if (previous !== undefined) this.close(previous, false); // the client started over from the same port
    const a = new Association(this.mint(), listener, client, session, now, now, helloRandom(arena, offset, length));
    table.set(client.key, a);
    this.byId.set(a.id, a);
    this.perSource.set(source, (this.perSource.get(source) ?? 0) + 1);
    this.handshaking.add(a);
    this.counters[SLOT.dtlsSessions] = this.byId.size;
    this.advanceHandshake(a, now);
    this.cookies.client = null;
  }

  /** Runs the handshake on what was fed; true once it is complete (application data may follow). */
  private advanceHandshake(a: Association, now: number): boolean {
    const r = a.session.handshake();
    this.flushOutput(a);
    if (r === 1) {
      a.established = true;
      a.retransmitAt = Infinity;
      this.handshaking.delete(a);
      this.counters[SLOT.dtlsHandshakes]!++;
      return true;
    }
    if (r === DTLS_FAILED) {
      this.counters[SLOT.dtlsFailed]!++;
      this.handlers.failed?.(a.client, a.session.failure);
      this.close(a, false);
      return false;
    }
    const wait = a.session.retransmitIn();
    a.retransmitAt = wait < 0 ? Infinity : now + wait;
    return false;
  }

  /** Decrypts the datagram's records in place and hands each to the core. */
  private readRecords(a: Association, arena: Uint8Array, address: number, offset: number, length: number, now: number): void {
    const records = countRecords(arena, offset, length);
    let at = offset;
    for (let k = 0; k < records.count; k++) {
      const n = a.session.read(address + at, offset + length - at);
      if (n > 0) {
        this.handlers.datagram(a.id, a.client, arena, at, n, now);
        at += n; // the next record's plaintext must not overwrite this one (it may be queued in place)
        if (!this.byId.has(a.id)) return; // closed while handled (an operator's kill)
        continue;
      }
      if (n === DTLS_CLOSED || n === DTLS_FAILED) {
        if (n === DTLS_FAILED) {
          this.counters[SLOT.dtlsFailed]!++;
          this.handlers.failed?.(a.client, a.session.failure);
        }
        this.close(a, n === DTLS_FAILED);
        return;
      }
      break;
    }
    // A retransmitted Finished, an alert: OpenSSL may have answered. Application data never does.
    if (!records.allApplicationData) this.flushOutput(a);
  }

  /** Encrypts a message for association `id` and queues it: the core's replies and relayed data. */
  send(id: ConnectionId, bytes: Uint8Array, offset: number, length: number): void {
    const a = this.byId.get(id);
    if (a === undefined || !a.established) return;
    if (a.session.write(bytes, offset, length) < 0) {
      this.counters[SLOT.dtlsFailed]!++;
      return;
    }
    this.flushOutput(a);
  }

  /** Sends what OpenSSL wrote, one record per datagram (as OpenSSL does on a datagram socket). */
  private flushOutput(a: Association): void {
    const out = this.output;
    const n = a.session.takeOutput(out, 0, out.length);
    let at = 0;
    while (at + DTLS_RECORD_HEADER <= n) {
      const end = Math.min(n, at + DTLS_RECORD_HEADER + ((out[at + 11]! << 8) | out[at + 12]!));
      this.handlers.send(a.listener, a.client, out, at, end - at);
      at = end;
    }
  }

  /** Earliest retransmission due (ms), or undefined. */
  pollTimeout(): number | undefined {
    if (this.handshaking.size === 0) return undefined; // every loop turn asks: no iterator when none
    let due = Infinity;
    for (const a of this.handshaking) if (a.retransmitAt < due) due = a.retransmitAt;
    return due === Infinity ? undefined : due;
  }

  /** Retransmits the flights whose timers expired (DTLSv1_handle_timeout). */
  handleTimeout(now: number): void {
    for (const a of this.handshaking) {
      if (a.retransmitAt > now) continue;
      a.session.handleTimeout();
      this.flushOutput(a);
      const wait = a.session.retransmitIn();
      a.retransmitAt = wait < 0 ? Infinity : now + wait;
    }
  }

  /** Once a second: handshakes that took too long, and silent associations without an allocation. */
  sweep(now: number, hasAllocation: (id: ConnectionId) => boolean): void {
    for (const a of this.byId.values()) {
      const late = a.established
        ? now - a.lastSeen > this.limits.unallocatedMs && !hasAllocation(a.id)
        : now - a.startedAt > this.limits.handshakeTimeoutMs;
      if (late) {
        this.counters[SLOT.dtlsClosedByTimeout]!++;
        this.close(a, !a.established);
      }
    }
  }

  /** Ends association `id` (an operator's kill): close_notify, then forget it. */
  closeConnection(id: ConnectionId): void {
    const a = this.byId.get(id);
    if (a !== undefined) this.close(a, false);
  }

  closeAll(): void {
    for (const a of [...this.byId.values()]) this.close(a, false);
    this.listener.close();
    this.context.free();
  }

  private close(a: Association, silently: boolean): void {
    if (!this.byId.delete(a.id)) return;
    this.byListener[a.listener.id]?.delete(a.client.key);
    const source = sourceKey(a.client);
    const left = (this.perSource.get(source) ?? 1) - 1;
    if (left > 0) this.perSource.set(source, left);
    else this.perSource.delete(source);
    this.handshaking.delete(a);
    if (!silently && a.established) {
      a.session.shutdown();
      this.flushOutput(a);
    }
    a.session.free();
    this.counters[SLOT.dtlsSessions] = this.byId.size;
    if (a.established) this.handlers.closed(a.id);
  }

  private mint(): ConnectionId {
    return connectionId(this.nextId++);
  }
}
