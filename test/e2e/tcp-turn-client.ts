/**
 * A small TURN client over TCP (Bun.connect) for RFC 6062 tests, built on src/stun: messages framed from
 * the stream (RFC 8489 §6.2.2: no retransmissions over TCP), the long-term credential round, and once a
 * ConnectionBind succeeded (RFC 6062 §5.4) the connection's bytes are the peer's, counted and kept.
 * Only ever talks to 127.0.0.1.
 */
import type { Socket } from "bun";
import type { Endpoint } from "../../src/net/endpoint.ts";
import {
  Attr, StunClass, StunMethod, StunWriter, readConnectionId, writeConnectionId, writeMessageIntegrity,
  writeRequestedTransport, writeText, writeXorAddress, writeLifetime,
} from "../../src/stun/index.ts";
import { md5Key } from "../../src/turn/credentials.ts";
import { Response } from "../turn/harness.ts";
import { PASSWORD, USER } from "./harness.ts";

/** Nonce and realm learnt on one connection, reused on a data connection (as coturn's client does). */
export interface Credentials {
  nonce?: string;
  realm?: string;
}

export class TcpTurnClient {
  /** Indications received (ConnectionAttempt, RFC 6062 §5.3). */
  readonly indications: Response[] = [];
  /** After ConnectionBind: bytes from the peer. */
  readonly piped: Uint8Array[] = [];
  pipedBytes = 0;
  closed = false;
  private raw = false;
  private buffer = new Uint8Array(0);
  private readonly pending = new Map<string, (r: Response) => void>();
  private indicationWaiters: Array<() => void> = [];
  private socket!: Socket<undefined>;

  private constructor(readonly credentials: Credentials, private readonly user = USER, private readonly password = PASSWORD) {}

  static async open(port: number, credentials: Credentials = {}): Promise<TcpTurnClient> {
    const client = new TcpTurnClient(credentials);
    client.socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data: (_s, data) => client.receive(data),
        close: () => {
          client.closed = true;
        },
        error: () => {
          client.closed = true;
        },
      },
    });
    return client;
  }

  /** Writes bytes (a piped connection's data); returns how many the socket took. */
  write(bytes: Uint8Array): number {
    return this.socket.write(bytes);
  }

  close(): void {
    this.socket.end();
  }

  /** Stops reading the socket: the kernel's buffers fill and the sender meets TCP back-pressure. */
  pauseReading(): void {
    this.socket.pause();
  }

  private receive(data: Uint8Array): void {
    if (this.raw) return this.keep(data);
    const joined = new Uint8Array(this.buffer.length + data.length);
    joined.set(this.buffer);
    joined.set(data, this.buffer.length);
    let at = 0;
    while (!this.raw && joined.length - at >= 20) {
      const size = 20 + ((joined[at + 2]! << 8) | joined[at + 3]!);
      if (joined.length - at < size) break;
      const message = new Response(joined.slice(at, at + size));
      at += size;
      if (message.cls === StunClass.Indication) {
        this.indications.push(message);
        for (const wake of this.indicationWaiters.splice(0)) wake();
        continue;
      }
      // RFC 6062 §5.4: after a ConnectionBind success the stream is the peer's bytes.
      if (message.method === StunMethod.ConnectionBind && message.ok) this.raw = true;
      const key = Buffer.from(message.raw.subarray(8, 20)).toString("hex");
      this.pending.get(key)?.(message);
      this.pending.delete(key);
    }
    this.buffer = joined.slice(at);
    if (this.raw && this.buffer.length > 0) {
      this.keep(this.buffer);
      this.buffer = new Uint8Array(0);
    }
  }

  private keep(data: Uint8Array): void {
    this.pipedBytes += data.length;
    if (this.piped.length < 1000) this.piped.push(data.slice());
  }

  /** The piped bytes so far as text. */
  pipedText(): string {
    return Buffer.concat(this.piped).toString();
  }

  /** Waits for the next indication (up to `ms`). */
  async nextIndication(ms = 3000): Promise<Response | undefined> {
    if (this.indications.length > 0) return this.indications.shift();
    await Promise.race([new Promise<void>((resolve) => this.indicationWaiters.push(resolve)), Bun.sleep(ms)]);
    return this.indications.shift();
  }

  async request(method: number, attrs: (w: StunWriter) => void = () => {}, auth = this.credentials.nonce !== undefined): Promise<Response> {
    const tid = crypto.getRandomValues(new Uint8Array(12));
    const w = new StunWriter(method, StunClass.Request, tid);
    attrs(w);
    if (auth) {
      writeText(w, Attr.Username, this.user);
      writeText(w, Attr.Realm, this.credentials.realm!);
      writeText(w, Attr.Nonce, this.credentials.nonce!);
      writeMessageIntegrity(w, md5Key(this.user, this.credentials.realm!, this.password));
    }
    const key = Buffer.from(tid).toString("hex");
    const response = new Promise<Response>((resolve) => this.pending.set(key, resolve));
    this.socket.write(w.finish());
    const r = await Promise.race([response, Bun.sleep(10_000).then(() => undefined)]);
    if (r === undefined) throw new Error(`no response to method 0x${method.toString(16)}`);
    const code = r.errorCode;
    // RFC 8489 §9.2.3: learn realm and nonce from a 401 (once) or 438, then sign the request.
    if ((code === 401 && !auth) || code === 438) {
      this.credentials.nonce = r.text(Attr.Nonce);
      this.credentials.realm = r.text(Attr.Realm);
      return this.request(method, attrs, true);
    }
    return r;
  }

  /** Allocate with REQUESTED-TRANSPORT `transport` (6 = TCP, RFC 6062 §5.1). */
  async allocate(transport = 6, lifetime?: number): Promise<{ response: Response; relayed: Endpoint | undefined }> {
    const response = await this.request(StunMethod.Allocate, (w) => {
      writeRequestedTransport(w, transport);
      if (lifetime !== undefined) writeLifetime(w, lifetime);
    });
    return { response, relayed: response.ok ? response.addresses(Attr.XorRelayedAddress)[0] : undefined };
  }

  refresh(lifetime: number): Promise<Response> {
    return this.request(StunMethod.Refresh, (w) => writeLifetime(w, lifetime));
  }

  createPermission(peer: Endpoint): Promise<Response> {
    return this.request(StunMethod.CreatePermission, (w) => writeXorAddress(w, Attr.XorPeerAddress, peer));
  }

  /** RFC 6062 §5.2: Connect; the response's CONNECTION-ID when it succeeded. */
  connect(peer: Endpoint): Promise<Response> {
    return this.request(StunMethod.Connect, (w) => writeXorAddress(w, Attr.XorPeerAddress, peer));
  }

  /** RFC 6062 §5.4: ConnectionBind on this (data) connection. */
  connectionBind(id: number): Promise<Response> {
    return this.request(StunMethod.ConnectionBind, (w) => writeConnectionId(w, id));
  }
}

/** The CONNECTION-ID of a Connect response or ConnectionAttempt indication. */
export function connectionIdOf(r: Response): number {
  const v = r.attr(Attr.ConnectionId);
  if (v === undefined) throw new Error("no CONNECTION-ID");
  return readConnectionId(v, 0, v.length)!;
}
