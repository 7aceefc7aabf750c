/**
 * TcpTransport on real loopback TCP, driven by hand through our epoll: frames cut right whatever the
 * segmenting, answers padded, and connections without an allocation swept after their time.
 */
import { afterEach, expect, test } from "bun:test";
import type { Socket } from "bun";
import { Epoll, boundPort } from "../../ffi/index.ts";
import { TcpTransport } from "../../src/engine/tcp-transport.ts";
import { encodeChannelData } from "../../src/stun/index.ts";
import type { ConnectionId } from "../../src/turn/api.ts";
import { LOOPBACK, bindingRequest, cleanup, runCleanup, transportPump } from "./tcp-harness.ts";

afterEach(runCleanup);

async function setup() {
  const epoll = new Epoll(16);
  const frames: Array<{ id: ConnectionId; bytes: number[] }> = [];
  const closed: number[] = [];
  const tcp = new TcpTransport(epoll, {
    frame: (id, _client, bytes, offset, length) => frames.push({ id, bytes: Array.from(bytes.subarray(offset, offset + length)) }),
    closed: (id) => closed.push(id),
  });
  const listenerFd = tcp.listen(4, LOOPBACK, 0);
  const port = boundPort(listenerFd);
  cleanup.push(() => {
    tcp.closeAll();
    epoll.close();
  });
  const received: number[] = [];
  let clientClosed = false;
  const client: Socket<undefined> = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: { data: (_s, d) => void received.push(...d), close: () => void (clientClosed = true) },
  });
  cleanup.push(() => client.end());
  /** Runs the transport until `done` or `ms`. */
  const pump = transportPump(epoll, tcp, 2000);
  return { tcp, frames, closed, client, received, pump, isClientClosed: () => clientClosed };
}

test("frames are cut right when two arrive in one segment and one is split across two", async () => {
  const { frames, client, pump } = await setup();
  const a = bindingRequest();
  const b = encodeChannelData(0x4001, new Uint8Array([1, 2, 3])); // 7 bytes, unpadded
  const c = bindingRequest();
  const both = new Uint8Array([...a, ...b]);
  client.write(both);
  client.flush();
  expect(await pump(() => frames.length === 2)).toBe(true);
  client.write(c.subarray(0, 9));
  client.flush();
  await pump(() => frames.length === 3, 100);
  expect(frames.length).toBe(2); // half a message is not a message
  client.write(c.subarray(9));
  client.flush();
  expect(await pump(() => frames.length === 3)).toBe(true);
  expect(frames.map((f) => f.bytes.length)).toEqual([20, 7, 20]);
  expect(frames[2]!.bytes).toEqual(Array.from(c));
  expect(new Set(frames.map((f) => f.id)).size).toBe(1);
});

test("answers go out padded to 4 bytes (RFC 8656 §12.5)", async () => {
  const { tcp, frames, client, received, pump } = await setup();
  client.write(bindingRequest());
  client.flush();
  expect(await pump(() => frames.length === 1)).toBe(true);
  expect(tcp.send(frames[0]!.id, encodeChannelData(0x4002, new Uint8Array([9])))).toBe(true);
  expect(await pump(() => received.length >= 8)).toBe(true);
  expect(received).toEqual([0x40, 0x02, 0x00, 0x01, 9, 0, 0, 0]);
});

test("a connection without an allocation is closed once it is older than the limit; one with an allocation stays", async () => {
  const { tcp, frames, closed, client, pump, isClientClosed } = await setup();
  client.write(bindingRequest());
  client.flush();
  expect(await pump(() => frames.length === 1)).toBe(true);
  const id = frames[0]!.id;
  const now = Date.now();
  expect(tcp.sweep(now, 60_000, () => false)).toBe(0); // young
  expect(tcp.sweep(now + 61_000, 60_000, (listener) => listener === id)).toBe(0); // has an allocation
  expect(tcp.sweep(now + 61_000, 60_000, () => false)).toBe(1);
  expect(closed).toEqual([id]);
  expect(tcp.connectionCount).toBe(0);
  expect(await pump(() => isClientClosed())).toBe(true);
});
