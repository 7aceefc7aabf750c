/**
 * The quota and amplification figures of docs/hostile-input.md ("Quota bypasses, channel growth, 401
 * reflection"), measured in process on the protocol core (TurnServer with a recording sink and a relay
 * allocator that hands out numbered relays and tokens; the engines' shared quota, SharedQuota). Uses only
 * APIs that predate the fixes, so the same file runs on an older checkout for the "before" column:
 *
 *   bun bench/hostile-quota.ts
 *
 * Prints one line per figure: the REST quota in both orders, EVEN-PORT reservations pinned under
 * --user-quota, ChannelBind up to 16,384 channels (rate per range of channel counts, heap per
 * allocation), and the 401: its size and how many a single source gets in one second.
 */
import { createHash } from "node:crypto";
import { parseEndpoint, type Endpoint } from "../src/net/endpoint.ts";
import {
  Attr, StunClass, StunMethod, StunWriter, decodeStun, getAttribute, readErrorCode, readReservationToken, readText,
  writeChannelNumber, writeEvenPort, writeLifetime, writeMessageIntegrity, writeRequestedTransport, writeText, writeXorAddress,
} from "../src/stun/index.ts";
import type { RelayAllocator, RelayHandle, RelayOpenRequest, RelayOpenResult, TurnSink } from "../src/turn/api.ts";
import { PeerPolicy, RestSecretCredentials, StaticUsers, TurnServer, type TurnServerOptions } from "../src/turn/server.ts";
import { SharedQuota, createQuotaShared } from "../src/engine/quota.ts";

const REALM = "bunturn.test";
const SECRET = "north-secret";
const now = 1_700_000_000_000;
/** The core's first UDP listener (a plain 0 at run time; typed without naming a type an older checkout lacks). */
const LISTENER = 0 as Parameters<TurnServer["handleClientDatagram"]>[0];

class Relays implements RelayAllocator {
  next = 1;
  readonly tokens = new Set<bigint>();
  open(request: RelayOpenRequest): RelayOpenResult {
    // Read by property so that the older request shape (one object with an optional token) works too.
    const redeemed = "reservationToken" in request ? request.reservationToken : undefined;
    if (redeemed !== undefined && !this.tokens.delete(redeemed)) return { ok: false, code: 508 };
    const id = this.next++;
    const relay: RelayHandle = { id: id as RelayHandle["id"], address: parseEndpoint("203.0.113.10", 50_000 + id) };
    if (!("reserveNext" in request && request.reserveNext)) return { ok: true, relay };
    const token = (BigInt(id) << 20n) | BigInt(50_000 + id + 1); // the reserved port in the low 16 bits, as the engine's pool does
    this.tokens.add(token);
    return { ok: true, relay, reservationToken: token };
  }
  close(): void {}
  releaseReservation(token: bigint): void {
    this.tokens.delete(token);
  }
}

class Sink implements TurnSink {
  last: Uint8Array | undefined;
  replies = 0;
  reply(_l: number, _c: Endpoint, data: Uint8Array): void {
    this.last = data.slice();
    this.replies++;
  }
  relayToClient(): void {}
  relayToPeer(): void {}
}

function server(o: Partial<TurnServerOptions> = {}) {
  const sink = new Sink();
  const relays = new Relays();
  const turn = new TurnServer({
    realm: REALM, nonceSecret: new Uint8Array(32).fill(7), credentials: new StaticUsers({ alice: "secret" }, REALM),
    peerPolicy: new PeerPolicy({ allowed: ["198.51.100.0/24"] }), relays, sink, ...o,
  });
  return { turn, sink, relays };
}

type Server = ReturnType<typeof server>;

/** A long-term-credential client on one 5-tuple: the 401 round, then signed requests. */
class Client {
  private nonce: string | undefined;
  constructor(private readonly s: Server, private readonly from: Endpoint, private readonly username = "alice", private readonly password = "secret") {}

  request(method: number, attrs: (w: StunWriter) => void = () => {}): { code: number; message: Uint8Array } {
    for (let attempt = 0; attempt < 2; attempt++) {
      const w = new StunWriter(method, StunClass.Request, crypto.getRandomValues(new Uint8Array(12)));
      attrs(w);
      if (this.nonce !== undefined) {
        writeText(w, Attr.Username, this.username);
        writeText(w, Attr.Realm, REALM);
        writeText(w, Attr.Nonce, this.nonce);
        writeMessageIntegrity(w, new Uint8Array(createHash("md5").update(`${this.username}:${REALM}:${this.password}`).digest()));
      }
      this.s.turn.handleClientDatagram(LISTENER, this.from, w.finish(), now);
      const message = this.s.sink.last!;
      const decoded = decodeStun(message);
      if (!decoded.ok) throw new Error("undecodable reply");
      const error = getAttribute(decoded.message, Attr.ErrorCode);
      const code = error === undefined ? 200 : readErrorCode(error, 0, error.length)!.code;
      if ((code === 401 || code === 438) && this.nonce === undefined) {
        const n = getAttribute(decoded.message, Attr.Nonce)!;
        this.nonce = readText(n, 0, n.length, Attr.Nonce)!;
        continue;
      }
      return { code, message };
    }
    throw new Error("no answer after the 401 round");
  }

  allocate(extra: (w: StunWriter) => void = () => {}) {
    return this.request(StunMethod.Allocate, (w) => {
      writeRequestedTransport(w, 17);
      extra(w);
    });
  }
}

function restQuota(order: (expiry: number) => string): string {
  const s = server({
    credentials: new RestSecretCredentials(SECRET),
    quota: new SharedQuota(createQuotaShared(), { userQuota: 2, totalQuota: 0, bpsCapacity: 0, restUsernames: true }),
  });
  const expiry = now / 1000 + 3600;
  let granted = 0;
  for (let i = 0; i < 4; i++) {
    const username = order(expiry + i);
    const c = new Client(s, parseEndpoint("192.0.2.7", 41_000 + i), username, RestSecretCredentials.password(SECRET, username));
    if (c.allocate().code === 200) granted++;
  }
  return `${granted} of 4 allocations`;
}

function reservationsPinned(userQuota: number): string {
  const s = server({ quota: new SharedQuota(createQuotaShared(), { userQuota, totalQuota: 0, bpsCapacity: 0, restUsernames: false }) });
  for (let i = 0; i < 50; i++) {
    const c = new Client(s, parseEndpoint("192.0.2.9", 30_000 + i));
    const r = c.allocate((w) => writeEvenPort(w, true));
    if (r.code === 200) c.request(StunMethod.Refresh, (w) => writeLifetime(w, 0));
  }
  return `${s.relays.tokens.size} ports reserved for 30 s`;
}

function channels(o: Partial<TurnServerOptions> = {}): string {
  const s = server(o);
  const c = new Client(s, parseEndpoint("192.0.2.10", 40_000));
  Bun.gc(true);
  const heapBefore = process.memoryUsage().heapUsed;
  if (c.allocate().code !== 200) throw new Error("allocate failed");
  const bind = (i: number) => c.request(StunMethod.ChannelBind, (w) => {
    writeChannelNumber(w, 0x4000 + i);
    writeXorAddress(w, Attr.XorPeerAddress, parseEndpoint("198.51.100.20", 10_000 + i));
  }).code;
  const parts: string[] = [];
  let bound = 0;
  let total = 0;
  let firstRefusal = "none";
  const note = (code: number, i: number) => {
    if (code === 200) total++;
    else if (firstRefusal === "none") firstRefusal = `the ${i + 1}th (${code})`;
  };
  for (const [from, to] of [[0, 1000], [1000, 2000], [8000, 9000], [15_384, 16_384]] as const) {
    for (; bound < from; bound++) note(bind(bound), bound);
    const started = performance.now();
    for (; bound < to; bound++) note(bind(bound), bound);
    parts.push(`#${from}-${to} ${Math.round((to - from) / ((performance.now() - started) / 1000))}/s`);
  }
  // Rebinding (refreshing) channel 500 with everything bound: the per-request cost at the largest table.
  const started = performance.now();
  for (let i = 0; i < 2000; i++) bind(500);
  const rebind = Math.round(2000 / ((performance.now() - started) / 1000));
  Bun.gc(true);
  const held = (process.memoryUsage().heapUsed - heapBefore) / 1024 / 1024;
  return `${total} channels bound, first refusal ${firstRefusal}; ChannelBind ${parts.join(", ")}; rebind at the end ${rebind}/s; the allocation held ${held.toFixed(1)} MB of heap`;
}

function unauthenticated(): string {
  // The engines' default (this option did not exist before: an older core ignores it).
  const s = server({ unauthenticatedRateLimit: 100 } as Partial<TurnServerOptions>);
  const bare = new StunWriter(StunMethod.Allocate, StunClass.Request, new Uint8Array(12)).finish();
  s.turn.handleClientDatagram(LISTENER, parseEndpoint("192.0.2.1", 1), bare, now);
  const size = s.sink.last!.length;
  const source = parseEndpoint("198.51.100.99", 4000);
  s.sink.replies = 0;
  for (let i = 0; i < 10_000; i++) s.turn.handleClientDatagram(LISTENER, { ...source, port: 1024 + (i % 50_000), key: source.key }, bare, now + i / 10);
  return `${bare.length}-byte Allocate -> ${size}-byte 401 (${(size / bare.length).toFixed(1)}x); 10,000 from one address in 1 s -> ${s.sink.replies} answers`;
}

// Channels first, on a heap without the other figures' garbage.
console.log(`ChannelBind x16,384 on one allocation: ${channels()}`);
// The bound raised to the whole channel range (an older core ignores the option): the cost alone.
console.log(`ChannelBind x16,384, bound raised to 16,384: ${channels({ maxChannelsPerAllocation: 16_384 } as Partial<TurnServerOptions>)}`);
console.log(`REST --user-quota 2, alice:EXPIRY x4: ${restQuota((e) => `alice:${e}`)}`);
console.log(`REST --user-quota 2, EXPIRY:alice x4: ${restQuota((e) => `${e}:alice`)}`);
console.log(`EVEN-PORT R + Refresh(0) x50, --user-quota 1: ${reservationsPinned(1)}`);
console.log(`EVEN-PORT R + Refresh(0) x50, --user-quota 2: ${reservationsPinned(2)}`);
console.log(`Unauthenticated: ${unauthenticated()}`);
