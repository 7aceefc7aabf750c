/**
 * A small, well-behaved TURN client over a real UDP socket (Bun.udpSocket), built on src/stun: the
 * long-term credential round (RFC 8489 §9.2), Allocate/Refresh/CreatePermission/ChannelBind with
 * retransmission (RFC 8489 §6.2.1, shortened for loopback), ChannelData and Send indications out, and
 * everything else that arrives kept for the test to look at. Only ever talks to 127.0.0.1/::1.
 */
import type { udp } from "bun";
import { parseEndpoint, type Endpoint } from "../../src/net/endpoint.ts";
import {
  Attr, StunClass, StunMethod, StunWriter, encodeChannelData, writeChannelNumber, writeLifetime,
  writeMessageIntegrity, writeRequestedTransport, writeText, writeXorAddress,
} from "../../src/stun/index.ts";
import { Response } from "../turn/harness.ts";
import { md5Key } from "../../src/turn/credentials.ts";

export interface ClientOptions {
  server: { host: string; port: number };
  username?: string;
  password?: string;
  /** Local address to bind (any 127.0.0.0/8 address works on Linux). */
  bindHost?: string;
  /** Retransmissions of a request before giving up (RFC 8489 Rc, shortened). */
  attempts?: number;
  /** First retransmission timeout in ms (doubles each time). */
  rtoMs?: number;
}

interface Pending {
  resolve(r: Response): void;
  bytes: Uint8Array;
}

export class TurnClient {
  readonly received: Uint8Array[] = [];
  /** Every response's size in bytes, in arrival order (the flood test checks amplification). */
  readonly responseSizes: number[] = [];
  nonce: string | undefined;
  realm: string | undefined;
  relayed: Endpoint | undefined;
  private readonly pending = new Map<string, Pending>();
  onData: ((data: Uint8Array) => void) | undefined;

  private constructor(private readonly socket: udp.Socket<"uint8array">, private readonly o: ClientOptions) {}

  static async open(o: ClientOptions): Promise<TurnClient> {
    let client: TurnClient | undefined;
    const socket = await Bun.udpSocket({
      hostname: o.bindHost ?? "127.0.0.1",
      binaryType: "uint8array",
      socket: {
        data(_s, data) {
          client?.receive(data);
        },
        error() {},
      },
    });
    client = new TurnClient(socket, o);
    return client;
  }

  /** Sends what follows to another server from the same socket (a client moving within a fleet keeps its nonce). */
  moveTo(server: { host: string; port: number }): void {
    this.o.server = server;
  }

  get localPort(): number {
    return this.socket.port;
  }

  close(): void {
    this.socket.close();
    for (const p of this.pending.values()) p.resolve(undefined as never);
    this.pending.clear();
  }

  sendRaw(bytes: Uint8Array): void {
    this.socket.send(bytes, this.o.server.port, this.o.server.host);
  }

  /** Sends several datagrams with one system call (sendmmsg), so they queue at the server together. */
  sendRawMany(list: Uint8Array[]): void {
    this.socket.sendMany(list.flatMap((bytes) => [bytes, this.o.server.port, this.o.server.host]));
  }

  private receive(data: Uint8Array): void {
    if ((data[0]! & 0xc0) === 0 && data.length >= 20) {
      const key = Buffer.from(data.subarray(8, 20)).toString("hex");
      const p = this.pending.get(key);
      if (p) {
        this.pending.delete(key);
        this.responseSizes.push(data.length);
        try {
          p.resolve(new Response(data.slice()));
        } catch {
          /* an undecodable response is left to time out */
        }
        return;
      }
    }
    const copy = data.slice();
    this.received.push(copy);
    this.onData?.(copy);
  }

  private key(): Uint8Array {
    return md5Key(this.o.username!, this.realm!, this.o.password!);
  }

  /** Sends a request and waits for its response, retransmitting on loss; rejects after the last attempt. */
  async request(method: number, attrs: (w: StunWriter) => void = () => {}, auth = this.nonce !== undefined): Promise<Response> {
    const tid = crypto.getRandomValues(new Uint8Array(12));
    const w = new StunWriter(method, StunClass.Request, tid);
    attrs(w);
    if (auth && this.o.username !== undefined) {
      writeText(w, Attr.Username, this.o.username);
      writeText(w, Attr.Realm, this.realm!);
      writeText(w, Attr.Nonce, this.nonce!);
      writeMessageIntegrity(w, this.key());
    }
    const bytes = w.finish();
    const key = Buffer.from(tid).toString("hex");
    const response = new Promise<Response>((resolve) => this.pending.set(key, { resolve, bytes }));
    let rto = this.o.rtoMs ?? 100;
    for (let attempt = 0; attempt < (this.o.attempts ?? 7); attempt++) {
      this.sendRaw(bytes);
      const r = await Promise.race([response, Bun.sleep(rto).then(() => undefined)]);
      if (r !== undefined) return this.afterResponse(r, method, attrs, auth);
      rto = Math.min(rto * 2, 1000);
    }
    this.pending.delete(key);
    throw new Error(`no response to method 0x${method.toString(16)} from ${this.o.server.host}:${this.o.server.port}`);
  }

  private async afterResponse(r: Response, method: number, attrs: (w: StunWriter) => void, auth: boolean): Promise<Response> {
    const code = r.errorCode;
    // RFC 8489 §9.2.3: learn realm and nonce from 401 (once) or 438, then repeat the request signed.
    if ((code === 401 && !auth) || code === 438) {
      if (this.o.username === undefined) return r;
      this.nonce = r.text(Attr.Nonce);
      this.realm = r.text(Attr.Realm) ?? this.realm;
      return this.request(method, attrs, true);
    }
    return r;
  }

  async allocate(lifetime?: number): Promise<Response> {
    const r = await this.request(StunMethod.Allocate, (w) => {
      writeRequestedTransport(w, 17);
      if (lifetime !== undefined) writeLifetime(w, lifetime);
    });
    if (r.ok) this.relayed = r.addresses(Attr.XorRelayedAddress)[0];
    return r;
  }

  refresh(lifetime: number): Promise<Response> {
    return this.request(StunMethod.Refresh, (w) => writeLifetime(w, lifetime));
  }

  createPermission(...peers: Endpoint[]): Promise<Response> {
    return this.request(StunMethod.CreatePermission, (w) => {
      for (const p of peers) writeXorAddress(w, Attr.XorPeerAddress, p);
    });
  }

  channelBind(channel: number, peer: Endpoint): Promise<Response> {
    return this.request(StunMethod.ChannelBind, (w) => {
      writeChannelNumber(w, channel);
      writeXorAddress(w, Attr.XorPeerAddress, peer);
    });
  }

  sendChannelData(channel: number, payload: Uint8Array): void {
    this.sendRaw(encodeChannelData(channel, payload));
  }
}

/** A UDP echo peer on loopback (what turnutils_peer does), counting what it echoed. */
export class EchoPeer {
  echoed = 0;
  private constructor(private readonly socket: udp.Socket<"uint8array">) {}

  static async open(host = "127.0.0.1"): Promise<EchoPeer> {
    let peer: EchoPeer | undefined;
    const socket = await Bun.udpSocket({
      hostname: host,
      binaryType: "uint8array",
      socket: {
        data(s, data, port, address) {
          try {
            s.send(data, port, address);
            if (peer) peer.echoed++;
          } catch {
            // The relay closed (allocation deleted): the kernel reports ICMP port unreachable here.
          }
        },
        error() {},
      },
    });
    peer = new EchoPeer(socket);
    return peer;
  }

  get port(): number {
    return this.socket.port;
  }

  get endpoint(): Endpoint {
    return parseEndpoint(this.socket.hostname, this.socket.port);
  }

  close(): void {
    this.socket.close();
  }
}

/**
 * Allocates, binds channel 0x4000 to `peer` and returns a function that sends `n` ChannelData
 * round trips through the relay and resolves with how many came back within `waitMs`.
 */
export async function relayedEcho(client: TurnClient, peer: Endpoint): Promise<(n: number, waitMs?: number) => Promise<number>> {
  const a = await client.allocate();
  if (!a.ok) throw new Error(`allocate failed: ${a.errorCode}`);
  const b = await client.channelBind(0x4000, peer);
  if (!b.ok) throw new Error(`channel bind failed: ${b.errorCode}`);
  return async (n: number, waitMs = 2000) => {
    const before = client.received.length;
    const payload = new Uint8Array(100).fill(0x42);
    for (let i = 0; i < n; i++) client.sendChannelData(0x4000, payload);
    const deadline = Date.now() + waitMs;
    while (client.received.length - before < n && Date.now() < deadline) await Bun.sleep(5);
    return client.received.length - before;
  };
}
