/**
 * The engine's DTLS transport (src/engine/dtls-transport.ts) driven in memory by an OpenSSL DTLS client
 * (test/ffi/dtls-client.ts): the stateless cookie exchange, associations only after a valid cookie, the
 * handshake, data both ways, retransmission, timeouts, the cap, and a flood of spoofed ClientHellos.
 */
import { afterAll, expect, test } from "bun:test";
import { ptr } from "bun:ffi";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UdpSocketState } from "../../ffi/index.ts";
import { BLOCK_SLOTS, SLOT } from "../../src/engine/counters.ts";
import { dtlsContext } from "../../src/engine/engine-dtls.ts";
import { DtlsTransport, type DtlsLimits } from "../../src/engine/dtls-transport.ts";
import type { UdpListener } from "../../src/engine/outbox.ts";
import { endpointFromBytes, type Endpoint } from "../../src/net/endpoint.ts";
import { listenerId, type ConnectionId } from "../../src/turn/api.ts";
import { selfSignedCert } from "../e2e/harness.ts";
import { DtlsTestClient, initialClientHello } from "../ffi/dtls-client.ts";

const dir = mkdtempSync(join(tmpdir(), "bunturn-dtls-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const { cert, key } = selfSignedCert(dir);

// Never opened: the transport only hands it back with what it sends.
const listener: UdpListener = { kind: "listener", id: listenerId(0), udp: null as unknown as UdpSocketState, family: 4, label: "test", dtlsOnly: false };
const clientAt = (i: number): Endpoint => endpointFromBytes(new Uint8Array([10, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff]), 40000 + (i % 20000));

function setup(limits: Partial<DtlsLimits> = {}) {
  const counters = new Float64Array(BLOCK_SLOTS);
  const sent: Array<{ to: Endpoint; bytes: Uint8Array }> = [];
  const received: Array<{ id: ConnectionId; text: string }> = [];
  const closed: ConnectionId[] = [];
  const transport = new DtlsTransport(
    () => dtlsContext({ port: 0, cert, key, handshakeTimeoutMs: 10_000, maxSessions: 100, maxSessionsPerIp: 100 }),
    { maxSessions: 100, maxSessionsPerSource: 100, handshakeTimeoutMs: 10_000, unallocatedMs: 60_000, ...limits },
    {
      datagram: (id, _client, arena, offset, length) => received.push({ id, text: new TextDecoder().decode(arena.subarray(offset, offset + length)) }),
      closed: (id) => closed.push(id),
      send: (_l, to, bytes, offset, length) => sent.push({ to, bytes: bytes.slice(offset, offset + length) }),
    },
    counters,
  );
  const arena = new Uint8Array(65536);
  const address = ptr(arena) as unknown as number;
  /** One datagram from `from`, as the engine hands it over (at offset 8 of its receive slot). */
  const delivered: Uint8Array[] = [];
  const deliver = (from: Endpoint, bytes: Uint8Array, now = Date.now()) => {
    delivered.push(bytes.slice());
    arena.set(bytes, 8);
    transport.handleDatagram(listener, from, arena, address, 8, bytes.length, now);
  };
  /** Runs the handshake between `client` at `from` and the transport until neither has anything to say. */
  const converse = (client: DtlsTestClient, from: Endpoint) => {
    for (let round = 0; round < 10; round++) {
      client.handshake();
      const out = client.takeOutput();
      if (out === null && sent.length === 0) break;
      if (out !== null) deliver(from, out);
      for (const d of sent.splice(0)) client.feed(d.bytes);
    }
    return client.handshake();
  };
  return { transport, counters, sent, received, closed, delivered, deliver, converse };
}

test("a ClientHello without a cookie gets a HelloVerifyRequest and leaves no association", () => {
  const { transport, counters, sent, deliver } = setup();
  deliver(clientAt(1), initialClientHello());
  expect(sent.length).toBe(1);
  expect(sent[0]!.bytes[0]).toBe(22); // a handshake record…
  expect(sent[0]!.bytes[13]).toBe(3); // …holding a HelloVerifyRequest (RFC 6347 §4.2.1)
  expect(transport.size).toBe(0);
  expect(counters[SLOT.dtlsHelloVerifies]).toBe(1);
  transport.closeAll();
});

test("the cookie proves the address: handshake, then datagrams decrypted to the core and replies encrypted to the client", () => {
  const { transport, counters, sent, received, deliver, converse } = setup();
  const client = new DtlsTestClient();
  const alice = clientAt(2);
  expect(converse(client, alice)).toBe(true);
  expect(transport.size).toBe(1);
  expect(counters[SLOT.dtlsHandshakes]).toBe(1);
  expect(counters[SLOT.dtlsSessions]).toBe(1);
  client.write(new TextEncoder().encode("binding request"));
  deliver(alice, client.takeOutput()!);
  expect(received.map((r) => r.text)).toEqual(["binding request"]);
  expect(transport.owns(received[0]!.id)).toBe(true);
  const reply = new TextEncoder().encode("..binding response");
  transport.send(received[0]!.id, reply, 2, reply.length - 2);
  expect(sent.length).toBe(1);
  expect(sent[0]!.to).toBe(alice);
  client.feed(sent[0]!.bytes);
  expect(new TextDecoder().decode(client.read()!)).toBe("binding response");
  // Another source cannot use alice's association: its records start a cookie exchange of its own.
  client.write(new TextEncoder().encode("spoofed"));
  deliver(clientAt(3), client.takeOutput()!);
  expect(received.length).toBe(1);
  client.free();
  transport.closeAll();
});

test("a flood of ClientHellos from spoofed sources allocates nothing per source", () => {
  const { transport, counters, sent, deliver } = setup();
  const hello = initialClientHello();
  for (let i = 0; i < 1000; i++) deliver(clientAt(i), hello); // warm up
  Bun.gc(true);
  const before = process.memoryUsage().rss;
  const flood = 20_000;
  for (let i = 0; i < flood; i++) {
    deliver(clientAt(1000 + i), hello);
    sent.length = 0;
  }
  Bun.gc(true);
  const grown = process.memoryUsage().rss - before;
  expect(transport.size).toBe(0);
  expect(counters[SLOT.dtlsSessions]).toBe(0);
  expect(counters[SLOT.dtlsHelloVerifies]).toBe(1000 + flood);
  // An OpenSSL association is tens of kilobytes: 20 000 of them would be hundreds of megabytes.
  expect(grown).toBeLessThan(24 * 1024 * 1024);
  transport.closeAll();
}, 60_000);

test("past --dtls-max-sessions a proven client is refused and counted", () => {
  const { transport, counters, converse } = setup({ maxSessions: 1 });
  const first = new DtlsTestClient();
  const second = new DtlsTestClient();
  expect(converse(first, clientAt(10))).toBe(true);
  expect(converse(second, clientAt(11))).toBe(false);
  expect(transport.size).toBe(1);
  expect(counters[SLOT.dtlsRefused]).toBe(1); // charged once the cookie proved the address, not per ClientHello
  first.free();
  second.free();
  transport.closeAll();
});

test("a flight that gets no answer is sent again when its DTLS timer expires; the handshake times out", () => {
  const { transport, counters, sent, deliver } = setup({ handshakeTimeoutMs: 5000 });
  const client = new DtlsTestClient();
  const bob = clientAt(20);
  const now = Date.now();
  client.handshake();
  deliver(bob, client.takeOutput()!, now);
  for (const d of sent.splice(0)) client.feed(d.bytes);
  client.handshake(); // the ClientHello with the cookie
  deliver(bob, client.takeOutput()!, now);
  const flight = sent.splice(0).map((d) => Array.from(d.bytes));
  expect(flight.length).toBeGreaterThan(0);
  const due = transport.pollTimeout()!;
  expect(due).toBeGreaterThan(now);
  expect(due).toBeLessThanOrEqual(now + 1000); // RFC 6347 §4.2.4.1: 1 s initial timer
  transport.handleTimeout(due - 1);
  expect(sent.length).toBe(0);
  // OpenSSL's own timer runs on the real clock: wait it out, then the engine's turn sends the flight again.
  Bun.sleepSync(Math.max(0, due - Date.now()) + 20);
  transport.handleTimeout(Date.now());
  expect(sent.length).toBe(flight.length);
  transport.sweep(now + 4000, () => false);
  expect(transport.size).toBe(1);
  transport.sweep(now + 6000, () => false);
  expect(transport.size).toBe(0);
  expect(counters[SLOT.dtlsClosedByTimeout]).toBe(1);
  client.free();
  transport.closeAll();
});

test("one source (an IPv4 address, an IPv6 /64) gets at most --dtls-max-sessions-per-ip; others still get theirs; a closed one frees its slot", () => {
  const { transport, counters, converse } = setup({ maxSessionsPerSource: 2 });
  const sameHost = (port: number) => endpointFromBytes(new Uint8Array([192, 0, 2, 7]), port);
  const sameSlash64 = (last: number, port: number) => endpointFromBytes(new Uint8Array([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, last]), port);
  const clients: DtlsTestClient[] = [];
  const run = (from: Endpoint) => {
    const c = new DtlsTestClient();
    clients.push(c);
    return converse(c, from);
  };
  expect(run(sameHost(1001))).toBe(true);
  expect(run(sameHost(1002))).toBe(true);
  expect(run(sameHost(1003))).toBe(false);
  expect(run(sameSlash64(1, 2001))).toBe(true);
  expect(run(sameSlash64(2, 2002))).toBe(true);
  expect(run(sameSlash64(3, 2003))).toBe(false); // another address, the same /64
  expect(run(clientAt(60))).toBe(true);
  expect(transport.size).toBe(5);
  expect(counters[SLOT.dtlsRefused]).toBe(2);
  transport.sweep(Date.now() + 120_000, () => false); // all silent, none allocated: closed
  expect(transport.size).toBe(0);
  expect(run(sameHost(1004))).toBe(true);
  for (const c of clients) c.free();
  transport.closeAll();
});

test("an established association without an allocation is closed after a silence; with one it stays", () => {
  const { transport, closed, converse } = setup({ unallocatedMs: 1000 });
  const client = new DtlsTestClient();
  expect(converse(client, clientAt(30))).toBe(true);
  const later = Date.now() + 2000;
  transport.sweep(later, () => true);
  expect(transport.size).toBe(1);
  transport.sweep(later, () => false);
  expect(transport.size).toBe(0);
  expect(closed.length).toBe(1);
  client.free();
  transport.closeAll();
});

test("a client that starts over from the same address and port gets a new association; the old one ends", () => {
  const { transport, closed, received, deliver, converse } = setup();
  const carol = clientAt(40);
  const first = new DtlsTestClient();
  expect(converse(first, carol)).toBe(true);
  const second = new DtlsTestClient();
  expect(converse(second, carol)).toBe(true);
  expect(transport.size).toBe(1);
  expect(closed.length).toBe(1);
  second.write(new TextEncoder().encode("after restart"));
  deliver(carol, second.takeOutput()!);
  expect(received.map((r) => r.text)).toEqual(["after restart"]);
  expect(received[0]!.id).not.toBe(closed[0]);
  first.free();
  second.free();
  transport.closeAll();
});

test("a late copy of the ClientHello that began an association does not restart it", () => {
  const { transport, closed, received, delivered, deliver, converse } = setup();
  const dave = clientAt(50);
  const client = new DtlsTestClient();
  expect(converse(client, dave)).toBe(true);
  const helloWithCookie = delivered[1]!; // the first was the ClientHello without one
  expect(helloWithCookie[13]).toBe(1);
  deliver(dave, helloWithCookie);
  expect(transport.size).toBe(1);
  expect(closed).toEqual([]);
  client.write(new TextEncoder().encode("still here"));
  deliver(dave, client.takeOutput()!);
  expect(received.map((r) => r.text)).toEqual(["still here"]);
  client.free();
  transport.closeAll();
});
