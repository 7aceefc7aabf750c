/**
 * What one TCP client can hold of an engine is bounded (TcpTransport on real loopback TCP, driven by hand
 * through our epoll): connections that each claim a 65,535-byte ChannelData and never send it are closed
 * only once the engine's connections together hold more than --max-tcp-buffer-total; a client that never
 * reads is closed once its unread replies pass --max-tcp-buffer; the room comes back when they go.
 */
import { afterEach, expect, test } from "bun:test";
import type { Socket } from "bun";
import { Epoll, boundPort } from "../../ffi/index.ts";
import { ConnectionLimits, createConnectionTable } from "../../src/engine/connection-limits.ts";
import { TcpTransport, type TcpTransportOptions } from "../../src/engine/tcp-transport.ts";
import { BLOCK_SLOTS, SLOT } from "../../src/engine/counters.ts";
import type { ConnectionId } from "../../src/turn/api.ts";
import { LOOPBACK, bindingRequest, cleanup, runCleanup, transportPump } from "./tcp-harness.ts";

afterEach(runCleanup);

/**
 * A Binding request (a connection's first message must be STUN), then a ChannelData header claiming
 * 65,535 bytes and `sent` of them.
 */
function claimedChannelData(sent: number): Uint8Array {
  const m = new Uint8Array(20 + 4 + sent);
  m.set(bindingRequest());
  m.set([0x40, 0x00, 0xff, 0xff], 20);
  return m;
}

function setup(options: Partial<TcpTransportOptions>) {
  const epoll = new Epoll(64);
  const frames: ConnectionId[] = [];
  const closed: number[] = [];
  const counters = new Float64Array(BLOCK_SLOTS);
  const tcp = new TcpTransport(epoll, { frame: (id) => frames.push(id), closed: (id) => closed.push(id) }, { counters, ...options });
  const port = boundPort(tcp.listen(4, LOOPBACK, 0));
  cleanup.push(() => {
    tcp.closeAll();
    epoll.close();
  });
  const pump = transportPump(epoll, tcp, 3000);
  const connect = async () => {
    let isClosed = false;
    const socket: Socket<undefined> = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, close: () => void (isClosed = true) } });
    cleanup.push(() => socket.end());
    return { socket, closed: () => isClosed };
  };
  return { tcp, frames, closed, pump, connect, counters };
}

test("partial 65,535-byte frames are held up to the engine's limit; beyond it the connection that needs more is closed", async () => {
  // Each buffer grows 4 KiB -> 8 -> 16 -> 32 -> 64 KiB for 50,004 bytes: room for 4 of them, not 5.
  const grown = 65536 - 4096;
  const limit = 4 * grown + 1000;
  const { tcp, closed, pump, connect, counters } = setup({ maxBufferPerEngine: limit });
  const clients: Array<Awaited<ReturnType<typeof connect>>> = [];
  for (let i = 0; i < 6; i++) clients.push(await connect());
  for (const c of clients.slice(0, 4)) c.socket.write(claimedChannelData(50_000));
  expect(await pump(() => tcp.bufferedBytes === 4 * grown)).toBe(true);
  await pump(() => false, 200);
  expect(closed.length).toBe(0); // under the limit: nobody is closed, however long the frame takes
  for (const c of clients.slice(4)) c.socket.write(claimedChannelData(50_000));
  expect(await pump(() => closed.length === 2)).toBe(true);
  await pump(() => false, 200);
  expect(closed.length).toBe(2);
  expect(tcp.bufferedBytes).toBeLessThanOrEqual(limit);
  expect(counters[SLOT.tcpClosedByLimit]).toBe(2);
  expect(counters[SLOT.tcpConnections]).toBe(4);
  expect(await pump(() => clients.slice(4).every((c) => c.closed()))).toBe(true);
  // The clients go: the engine holds nothing more than its connections' first buffers.
  for (const c of clients) c.socket.end();
  expect(await pump(() => tcp.connectionCount === 0)).toBe(true);
  expect(tcp.bufferedBytes).toBe(0);
});

test("a completed big frame gives its room back", async () => {
  const { tcp, frames, pump, connect } = setup({});
  const c = await connect();
  const big = new Uint8Array(20 + 4 + 60_000);
  big.set(bindingRequest());
  big.set([0x40, 0x00, 60_000 >> 8, 60_000 & 0xff], 20);
  c.socket.write(big);
  expect(await pump(() => frames.length === 2)).toBe(true);
  expect(tcp.bufferedBytes).toBe(0);
  expect(tcp.connectionCount).toBe(1);
});

test("a client that never reads is closed once its unread replies pass the per-connection limit, and its room comes back", async () => {
  const { tcp, frames, closed, pump, connect } = setup({ maxBufferPerConnection: 256 * 1024 });
  const reader = await connect();
  const sleeper = await connect();
  reader.socket.write(bindingRequest());
  sleeper.socket.write(bindingRequest());
  expect(await pump(() => frames.length === 2)).toBe(true);
  const sleeperId = frames[1]!;
  // The sleeper's client never reads: the kernel buffers fill first, then the transport's backlog.
  sleeper.socket.pause();
  const reply = new Uint8Array(60_000);
  reply.set([0x40, 0x01, 60_000 >> 8, 60_000 & 0xff]);
  let sent = 0;
  let peak = 0;
  while (tcp.send(sleeperId, reply.subarray(0, 60_000 - 4 + 4))) {
    sent++;
    peak = Math.max(peak, tcp.bufferedBytes);
    if (sent > 2000) break;
  }
  expect(sent).toBeLessThan(2000); // it was closed, not buffered for ever
  expect(closed).toContain(sleeperId);
  expect(peak).toBeLessThanOrEqual(256 * 1024);
  expect(tcp.bufferedBytes).toBe(0);
  expect(tcp.connectionCount).toBe(1); // the reader is untouched
});

test("a connection whose first message is not STUN (ChannelData, or a PROXY line on the normal port) is closed at once", async () => {
  const { tcp, closed, pump, connect } = setup({});
  const proxyLine = await connect();
  proxyLine.socket.write("PROXY TCP4 203.0.113.8 127.0.0.1 40003 3478\r\n");
  const channelFirst = await connect();
  channelFirst.socket.write(new Uint8Array([0x40, 0x00, 0xff, 0xff, 1, 2, 3]));
  expect(await pump(() => closed.length === 2)).toBe(true);
  expect(tcp.connectionCount).toBe(0);
});

test("the connection caps refuse the source's (N+1)th connection and count it back when one closes", async () => {
  const limits = new ConnectionLimits(createConnectionTable(), { total: 0, perSource: 3 });
  const { tcp, pump, connect, counters } = setup({ limits });
  const clients: Array<Awaited<ReturnType<typeof connect>>> = [];
  for (let i = 0; i < 4; i++) clients.push(await connect());
  expect(await pump(() => clients.filter((c) => c.closed()).length === 1 && tcp.connectionCount === 3)).toBe(true);
  expect(limits.countFrom(LOOPBACK)).toBe(3);
  expect(counters[SLOT.tcpRefused]).toBe(1);
  clients.find((c) => !c.closed())!.socket.end();
  expect(await pump(() => tcp.connectionCount === 2)).toBe(true);
  expect(limits.countFrom(LOOPBACK)).toBe(2);
  const again = await connect();
  await pump(() => tcp.connectionCount === 3);
  expect(again.closed()).toBe(false);
  expect(limits.total).toBe(3);
});

test("a connection that sends no whole message within the first-message timeout is swept; one that spoke stays", async () => {
  const { tcp, frames, closed, pump, connect } = setup({ firstMessageTimeoutMs: 1000 });
  const mute = await connect();
  const speaker = await connect();
  speaker.socket.write(bindingRequest());
  mute.socket.write(bindingRequest().subarray(0, 10)); // half a message is not a message
  expect(await pump(() => frames.length === 1 && tcp.connectionCount === 2)).toBe(true);
  const now = Date.now();
  expect(tcp.sweep(now, 60_000, () => false)).toBe(0); // young
  expect(tcp.sweep(now + 1500, 60_000, () => false)).toBe(1);
  expect(closed.length).toBe(1);
  expect(closed[0]).not.toBe(frames[0]);
  expect(await pump(() => mute.closed())).toBe(true);
  expect(speaker.closed()).toBe(false);
});
