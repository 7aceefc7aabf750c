/**
 * End-to-end: what RFC 6062 TCP relays may cost. A peer that never reads, or a client that never reads,
 * leaves at most one read (64 KiB) per direction in the server, and the sender meets TCP back-pressure;
 * peer connections nobody binds are closed after the timeout (RFC 6062 §5.3, shortened here) and counted;
 * a data connection that never sends its ConnectionBind is closed by --tcp-first-message-timeout.
 */
import { describe, expect } from "bun:test";
import { boundPort, closeSocket, libc, openTcpListener } from "../../ffi/index.ts";
import { ipv4Endpoint, type Endpoint } from "../../src/net/endpoint.ts";
import { closeAfterAll, e2eTest, pollUntil, scrapeMetrics, startBunturnWithMetrics } from "./harness.ts";
import { TcpTurnClient, connectionIdOf } from "./tcp-turn-client.ts";

const { running, closers } = closeAfterAll();
const LOOPBACK = new Uint8Array([127, 0, 0, 1]);
/** The most the server may hold for one pipe's direction: one read. */
const ONE_READ = 1 << 16;

async function relay(args: string[] = []): Promise<{ port: number; metric: (name: string) => Promise<number> }> {
  const { server, url } = await startBunturnWithMetrics(running, { args: ["--relay-threads", "2", ...args] });
  return { port: server.port, metric: async (name) => (await scrapeMetrics(url)).get(name) ?? NaN };
}

async function open(port: number, credentials?: TcpTurnClient["credentials"]): Promise<TcpTurnClient> {
  const c = await TcpTurnClient.open(port, credentials);
  closers.push(() => c.close());
  return c;
}

/** A listening peer that never accepts, so never reads: the kernel completes the handshake and queues. */
function deafPeer(): Endpoint {
  const fd = openTcpListener({ family: 4, address: LOOPBACK, port: 0, backlog: 16 });
  closers.push(() => closeSocket(fd, libc));
  return ipv4Endpoint(0x7f000001, boundPort(fd));
}

/** A control connection with a TCP allocation, a permission and a data connection bound to a Connect to `peer`. */
async function pipeTo(port: number, peer: Endpoint): Promise<TcpTurnClient> {
  const control = await open(port);
  expect((await control.allocate(6)).response.ok).toBe(true);
  expect((await control.createPermission(peer)).ok).toBe(true);
  const r = await control.connect(peer);
  expect(r.ok).toBe(true);
  const data = await open(port, control.credentials);
  expect((await data.connectionBind(connectionIdOf(r))).ok).toBe(true);
  return data;
}

/** Writes 64 KiB chunks for `ms` or until `limit` bytes; how many the socket took. */
async function flood(c: TcpTurnClient, ms: number, limit: number): Promise<number> {
  const chunk = new Uint8Array(ONE_READ).fill(0x61);
  let taken = 0;
  const end = Date.now() + ms;
  while (Date.now() < end && taken < limit) {
    const n = c.write(chunk);
    taken += n;
    if (n < chunk.length) await Bun.sleep(20);
  }
  return taken;
}

describe("RFC 6062 TCP relays: bounded memory and clean-up", () => {
  e2eTest("a peer that never reads: the server holds at most one read, the client is pushed back", async () => {
    const { port, metric } = await relay();
    const data = await pipeTo(port, deafPeer());
    const limit = 256 << 20;
    const taken = await flood(data, 3000, limit);
    // The kernel's buffers on both hops take some megabytes; the rest of the 256 MiB is refused.
    expect(taken).toBeLessThan(64 << 20);
    expect(await metric("bunturn_tcp_relay_buffered_bytes")).toBeLessThanOrEqual(ONE_READ);
    expect(await metric("bunturn_tcp_relay_bytes_total{direction=\"client_to_peer\"}")).toBeLessThanOrEqual(taken);
  });

  e2eTest("a client that never reads its data connection: the peer is pushed back, the server holds at most one read", async () => {
    const { port, metric } = await relay();
    let peerSocket: import("bun").Socket<undefined> | undefined;
    const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { open: (s) => { peerSocket = s; }, data: () => {} } });
    closers.push(() => server.stop(true));
    const data = await pipeTo(port, ipv4Endpoint(0x7f000001, server.port));
    expect(await pollUntil(() => peerSocket !== undefined, 2000)).toBe(true);
    // The client stops reading; the peer writes until its socket refuses.
    data.pauseReading();
    const chunk = new Uint8Array(ONE_READ).fill(0x62);
    let taken = 0;
    const end = Date.now() + 3000;
    while (Date.now() < end && taken < 256 << 20) {
      const n = peerSocket!.write(chunk);
      taken += n;
      if (n < chunk.length) await Bun.sleep(20);
    }
    expect(taken).toBeLessThan(64 << 20);
    expect(await metric("bunturn_tcp_relay_buffered_bytes")).toBeLessThanOrEqual(ONE_READ);
  });

  e2eTest("connections nobody binds are closed after the timeout and counted; the peer's side closes", async () => {
    process.env.BUNTURN_TEST_TCP_RELAY_TIMEOUT_MS = "1000";
    let r: Awaited<ReturnType<typeof relay>>;
    try {
      r = await relay();
    } finally {
      delete process.env.BUNTURN_TEST_TCP_RELAY_TIMEOUT_MS;
    }
    let closedAtPeer = 0;
    const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: () => {}, close: () => { closedAtPeer++; } } });
    closers.push(() => server.stop(true));
    const control = await open(r.port);
    const { relayed } = await control.allocate(6);
    const peer = ipv4Endpoint(0x7f000001, server.port);
    expect((await control.createPermission(peer)).ok).toBe(true);
    // One Connect and three peer-initiated connections, none ever bound.
    expect((await control.connect(peer)).ok).toBe(true);
    for (let i = 0; i < 3; i++) {
      const s = await Bun.connect({ hostname: "127.0.0.1", port: relayed!.port, socket: { data: () => {}, close: () => { closedAtPeer++; } } });
      closers.push(() => s.end());
    }
    expect(await pollUntil(async () => (await r.metric("bunturn_tcp_relay_connections")) === 4, 2000)).toBe(true);
    expect(await pollUntil(async () => (await r.metric("bunturn_tcp_relay_unbound_expired_total")) === 4, 4000)).toBe(true);
    expect(await r.metric("bunturn_tcp_relay_connections")).toBe(0);
    expect(await pollUntil(() => closedAtPeer === 4, 2000)).toBe(true);
  });

  e2eTest("data connections that never send their ConnectionBind are closed by --tcp-first-message-timeout", async () => {
    const { port, metric } = await relay(["--tcp-first-message-timeout", "1"]);
    const silent = await Promise.all([0, 1, 2].map(() => open(port)));
    expect(await pollUntil(() => silent.every((c) => c.closed), 4000)).toBe(true);
    expect(await metric("bunturn_tcp_connections")).toBe(0);
    expect(await metric("bunturn_tcp_connections_closed_by_limit_total")).toBeGreaterThanOrEqual(3);
  });
});
