/** Fakes for driving TurnServer through its public API: a recording sink, a relay allocator, a clock, clients. */
import { parseEndpoint, type Endpoint, type Family } from "../../src/net/endpoint.ts";
import {
  Attr, StunClass, StunMethod, StunWriter, decodeStun, getAttribute, readErrorCode, readLifetime, readText,
  readXorAddress, writeFingerprint, writeMessageIntegrity, writeMessageIntegritySha256, writeRequestedTransport, writeText,
  type StunMessage,
} from "../../src/stun/index.ts";
import { listenerId, relayId } from "../../src/turn/api.ts";
import type {
  ClientPath, CredentialStore, Millis, RelayAllocator, RelayHandle, RelayId, RelayOpenRequest, RelayOpenResult, TurnSink,
} from "../../src/turn/api.ts";
import { PeerPolicy, StaticUsers, TurnServer, type TurnServerOptions } from "../../src/turn/server.ts";
import { md5Key } from "../../src/turn/credentials.ts";

export const T0: Millis = 1_700_000_000_000;
export const REALM = "bunturn.test";

export interface Sent {
  kind: "reply" | "toClient" | "toPeer";
  listener?: number;
  to: Endpoint;
  data: Uint8Array;
  relay?: RelayHandle;
  dontFragment?: boolean;
}

export class RecordingSink implements TurnSink {
  readonly sent: Sent[] = [];
  reply(listener: ClientPath, client: Endpoint, data: Uint8Array): void {
    this.sent.push({ kind: "reply", listener, to: client, data: data.slice() });
  }
  relayToClient(listener: ClientPath, client: Endpoint, bytes: Uint8Array, offset: number, length: number): void {
    this.sent.push({ kind: "toClient", listener, to: client, data: bytes.slice(offset, offset + length) });
  }
  relayToPeer(relay: RelayHandle, peer: Endpoint, bytes: Uint8Array, offset: number, length: number, dontFragment: boolean): void {
    this.sent.push({ kind: "toPeer", to: peer, data: bytes.slice(offset, offset + length), relay, dontFragment });
  }
  take(): Sent[] {
    return this.sent.splice(0, this.sent.length);
  }
}

export class FakeRelays implements RelayAllocator {
  families = new Set<Family>([4, 6]);
  capacity = Infinity;
  nextId = 1;
  readonly live = new Map<RelayId, RelayHandle>();
  readonly closed: RelayHandle[] = [];
  readonly opened: RelayOpenRequest[] = [];
  readonly released: bigint[] = [];
  /** Live reservation tokens and the family of the port each holds. */
  readonly tokens = new Map<bigint, Family>();
  nextToken = 0x1122334455667788n;

  open(request: RelayOpenRequest): RelayOpenResult {
    this.opened.push({ ...request });
    // A token opens the port in the family it was reserved with (the allocator's knowledge, not the core's).
    const family = request.kind === "token" ? this.tokens.get(request.reservationToken) : request.family;
    if (family === undefined) return { ok: false, code: 508 };
    if (!this.families.has(family)) return { ok: false, code: 440 };
    if (request.kind === "token") this.tokens.delete(request.reservationToken);
    if (this.live.size >= this.capacity) return { ok: false, code: 508 };
    const id = relayId(this.nextId++);
    const evenPort = request.kind === "fresh" && request.evenPort;
    const port = evenPort ? 50000 + id * 2 : 50001 + id * 2;
    const address = family === 4 ? parseEndpoint("203.0.113.10", port) : parseEndpoint("2001:db8::10", port);
    const relay = { id, address };
    this.live.set(id, relay);
    if (request.kind === "fresh" && request.reserveNext) {
      const token = this.nextToken++;
      this.tokens.set(token, family);
      return { ok: true, relay, reservationToken: token };
    }
    return { ok: true, relay };
  }
  /** The id of the relay opened last. */
  get lastId(): RelayId {
    return relayId(this.nextId - 1);
  }
  close(relay: RelayHandle): void {
    if (!this.live.delete(relay.id)) throw new Error(`relay ${relay.id} closed twice or unknown`);
    this.closed.push(relay);
  }
  releaseReservation(token: bigint): void {
    this.tokens.delete(token);
    this.released.push(token);
  }
}

export interface Harness {
  server: TurnServer;
  sink: RecordingSink;
  relays: FakeRelays;
  now: Millis;
  /** Whether the server was built with credentials (clients then do the 401 round first). */
  authenticated: boolean;
  advance(ms: number): void;
  client(ip?: string, port?: number, user?: { username: string; password: string }, listener?: number): TestClient;
}

export function harness(overrides: Partial<TurnServerOptions> & { users?: Record<string, string> } = {}): Harness {
  const sink = new RecordingSink();
  const relays = new FakeRelays();
  const users = overrides.users ?? { alice: "secret", bob: "hunter2" };
  const credentials: CredentialStore | null = "credentials" in overrides ? overrides.credentials! : new StaticUsers(users, REALM);
  const server = new TurnServer({
    realm: REALM,
    software: "bunturn-test",
    nonceSecret: new Uint8Array(32).fill(7),
    // Test peers live in the documentation ranges, which a real server refuses: admitted here explicitly.
    peerPolicy: new PeerPolicy({ allowLoopback: true, allowed: ["198.51.100.0/24", "2001:db8::/32"] }),
    relays,
    sink,
    ...overrides,
    credentials,
  });
  const h: Harness = {
    server,
    sink,
    relays,
    now: T0,
    authenticated: credentials !== null,
    advance(ms) {
      h.now += ms;
      const due = server.pollTimeout();
      if (due !== undefined && due <= h.now) server.handleTimeout(h.now);
    },
    client(ip = "192.0.2.50", port = 40000, user = { username: "alice", password: "secret" }, listener = 0) {
      return new TestClient(h, parseEndpoint(ip, port), user, listenerId(listener));
    },
  };
  return h;
}

export function randomTid(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(12));
}

export interface RequestOptions {
  /** Sign with the cached realm/nonce (default true once a nonce is known). */
  auth?: boolean;
  sha256?: boolean;
  fingerprint?: boolean;
  tid?: Uint8Array;
  username?: string;
  password?: string;
  nonce?: string;
  realm?: string;
  /** Overrides the long-term key (e.g. a SHA-256 one). */
  key?: Uint8Array;
  /** Retry once with the new nonce on 438, as clients do (RFC 8489 §9.2.5). Default true. */
  retryStale?: boolean;
  /** Adds attributes between the method's own and the auth ones. */
  extra?: (w: StunWriter) => void;
}

export class TestClient {
  nonce: string | undefined;
  realm: string | undefined;
  lastTid: Uint8Array = new Uint8Array(12);

  constructor(
    readonly h: Harness,
    readonly endpoint: Endpoint,
    readonly user: { username: string; password: string },
    readonly listener: ClientPath,
  ) {}

  key(username = this.user.username, password = this.user.password, realm = this.realm ?? REALM): Uint8Array {
    return md5Key(username, realm, password);
  }

  /** Builds a request message. */
  build(method: number, attrs: (w: StunWriter) => void = () => {}, o: RequestOptions = {}): Uint8Array {
    const tid = o.tid ?? randomTid();
    this.lastTid = tid;
    const w = new StunWriter(method, StunClass.Request, tid);
    attrs(w);
    o.extra?.(w);
    const auth = o.auth ?? this.nonce !== undefined;
    if (auth) {
      const username = o.username ?? this.user.username;
      writeText(w, Attr.Username, username);
      writeText(w, Attr.Realm, o.realm ?? this.realm ?? REALM);
      writeText(w, Attr.Nonce, o.nonce ?? this.nonce ?? "none");
      const key = o.key ?? this.key(username, o.password ?? this.user.password, o.realm ?? this.realm ?? REALM);
      if (o.sha256) writeMessageIntegritySha256(w, key);
      else writeMessageIntegrity(w, key);
    }
    if (o.fingerprint) writeFingerprint(w);
    return w.finish();
  }

  /** Sends raw bytes from this client; returns what the server sent back to it. */
  sendRaw(data: Uint8Array): Sent[] {
    this.h.sink.take();
    this.h.server.handleClientDatagram(this.listener, this.endpoint, data, this.h.now);
    return this.h.sink.take();
  }

  /** Sends a request and returns the decoded reply (throws if there is not exactly one). */
  request(method: number, attrs?: (w: StunWriter) => void, o: RequestOptions = {}): Response {
    const out = this.sendRaw(this.build(method, attrs, o));
    const replies = out.filter((s) => s.kind === "reply");
    if (replies.length !== 1) throw new Error(`expected one reply, got ${replies.length}`);
    const r = new Response(replies[0]!.data);
    if (r.errorCode === 438 && o.retryStale !== false && o.nonce === undefined) {
      this.nonce = r.text(Attr.Nonce);
      return this.request(method, attrs, { ...o, tid: undefined, retryStale: false });
    }
    return r;
  }

  /** Unauthenticated first request, then the 401's realm and nonce are cached (RFC 8489 §9.2.3). */
  learnNonce(): Response {
    const r = this.request(StunMethod.Allocate, (w) => writeRequestedTransport(w, 17), { auth: false });
    if (r.errorCode !== 401) throw new Error(`expected 401, got ${r.errorCode}`);
    this.nonce = r.text(Attr.Nonce);
    this.realm = r.text(Attr.Realm);
    return r;
  }

  allocate(extra?: (w: StunWriter) => void, o: RequestOptions = {}): Response {
    if (this.nonce === undefined && this.h.authenticated) this.learnNonce();
    return this.request(StunMethod.Allocate, (w) => {
      writeRequestedTransport(w, 17);
      extra?.(w);
    }, o);
  }
}

export class Response {
  readonly message: StunMessage;
  constructor(readonly raw: Uint8Array) {
    const r = decodeStun(raw);
    if (!r.ok) throw new Error(`server sent an undecodable message: ${r.reason}`);
    this.message = r.message;
  }
  get cls() {
    return this.message.cls;
  }
  get method() {
    return this.message.method;
  }
  get ok(): boolean {
    return this.message.cls === StunClass.SuccessResponse;
  }
  get errorCode(): number | undefined {
    const v = getAttribute(this.message, Attr.ErrorCode);
    return v === undefined ? undefined : readErrorCode(v, 0, v.length)?.code;
  }
  has(type: number): boolean {
    return getAttribute(this.message, type) !== undefined;
  }
  attr(type: number): Uint8Array | undefined {
    return getAttribute(this.message, type);
  }
  all(type: number): Uint8Array[] {
    return this.message.attributes.filter((a) => a.type === type).map((a) => a.value);
  }
  text(type: number): string {
    const v = getAttribute(this.message, type)!;
    return readText(v, 0, v.length, type)!;
  }
  lifetime(): number | undefined {
    const v = getAttribute(this.message, Attr.Lifetime);
    return v === undefined ? undefined : readLifetime(v, 0, v.length) ?? undefined;
  }
  /** XOR address attributes, decoded against this message's own header. */
  addresses(type: number): Endpoint[] {
    const out: Endpoint[] = [];
    const m = this.message.raw;
    let pos = 20;
    while (pos < m.length) {
      const t = (m[pos]! << 8) | m[pos + 1]!;
      const len = (m[pos + 2]! << 8) | m[pos + 3]!;
      if (t === type) out.push(readXorAddress(m, pos + 4, len)!);
      pos += 4 + ((len + 3) & ~3);
    }
    return out;
  }
}
