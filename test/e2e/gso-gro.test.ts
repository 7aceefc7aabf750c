/**
 * UDP GSO and GRO through the relay (--udp-gso --udp-gro), on loopback: the client sends bursts of
 * ChannelData with UDP_SEGMENT, which the kernel delivers to the server's GRO listener as one buffer
 * (how a NIC's GRO hands over a video frame's packets); the server cuts it, relays each payload, and its
 * relay socket sends the run to the peer with UDP_SEGMENT. The peer answers with bursts the same way,
 * which reach the relay socket coalesced: each segment becomes ChannelData (a header iovec in front of
 * every segment but the first) and leaves to the client as one GSO run. Both ends receive without GRO,
 * so they see each datagram as the kernel cut it: every one must arrive intact and in order.
 */
import { afterAll, expect, test } from "bun:test";
import {
  RecvBatch, STAT, SendBatch, UdpCapabilities, UdpSocketState, boundPort, flushSendBatch, newStats, receiveBatch,
} from "../../ffi/index.ts";
import { parseEndpoint, type Endpoint } from "../../src/net/endpoint.ts";
import {
  Attr, StunClass, StunMethod, StunWriter, encodeChannelData, writeChannelNumber, writeRequestedTransport, writeXorAddress,
} from "../../src/stun/index.ts";
import { Response } from "../turn/harness.ts";
import { waitReadable } from "../ffi/helpers.ts";
import { startBunturn, type Running } from "./harness.ts";

const LOOPBACK = new Uint8Array([127, 0, 0, 1]);
const CHANNEL = 0x4002;
const caps = new UdpCapabilities({ recvmmsg: true, sendmmsg: true });
const sockets: UdpSocketState[] = [];
const running: Running[] = [];
afterAll(async () => {
  sockets.forEach((s) => s.close());
  await Promise.all(running.map((r) => r.stop()));
});

function open(): UdpSocketState {
  const s = UdpSocketState.open({ family: 4, address: LOOPBACK, port: 0, gso: true }, caps);
  sockets.push(s);
  return s;
}

/** Sends `datagrams` to `to` through one SendBatch (equal sizes: one UDP_SEGMENT message). Returns the GSO sends. */
function sendBurst(from: UdpSocketState, to: Endpoint, datagrams: Uint8Array[]): number {
  const batch = new SendBatch(64);
  for (const d of datagrams) batch.push(from, to.address, to.port, d);
  const stats = newStats();
  flushSendBatch(batch, stats);
  return stats[STAT.gsoSends]!;
}

/** `count` datagrams from `socket` (copies), or fewer if nothing more arrives within 3 s. */
function receive(socket: UdpSocketState, count: number): Uint8Array[] {
  const batch = new RecvBatch();
  const out: Uint8Array[] = [];
  while (out.length < count && waitReadable(socket.fd, 3000)) {
    const n = receiveBatch(socket, batch, newStats());
    for (let i = 0; i < n; i++) out.push(batch.datagram(i).slice());
  }
  return out;
}

/** Payload k of burst b: its bytes say which it is, so a reordering or a cut in the wrong place shows. */
function payload(b: number, k: number, length: number): Uint8Array {
  const d = new Uint8Array(length);
  for (let i = 0; i < length; i++) d[i] = (b * 31 + k * 7 + i) & 0xff;
  d[0] = b;
  d[1] = k;
  return d;
}

test("ChannelData bursts with UDP_SEGMENT both ways: every datagram intact and in order, GRO and GSO used", async () => {
  const s = await startBunturn({
    auth: "none",
    args: ["--relay-threads", "1", "--udp-gso", "--udp-gro", "--udp-recvmmsg", "--udp-recvmmsg-log", "--log-stats-interval", "1"],
  });
  running.push(s);
  const server = parseEndpoint("127.0.0.1", s.port);
  const client = open();
  const peer = open();
  const peerEndpoint = parseEndpoint("127.0.0.1", boundPort(peer.fd));

  const request = (attrs: (w: StunWriter) => void, method: number) => {
    const w = new StunWriter(method, StunClass.Request, crypto.getRandomValues(new Uint8Array(12)));
    attrs(w);
    sendBurst(client, server, [w.finish()]);
    return new Response(receive(client, 1)[0]!);
  };
  const allocated = request((w) => writeRequestedTransport(w, 17), StunMethod.Allocate);
  expect(allocated.ok).toBe(true);
  const relay = allocated.addresses(Attr.XorRelayedAddress)[0]!;
  const bound = request((w) => {
    writeChannelNumber(w, CHANNEL);
    writeXorAddress(w, Attr.XorPeerAddress, peerEndpoint);
  }, StunMethod.ChannelBind);
  expect(bound.ok).toBe(true);
  // The peer's permission comes with the channel; its first datagram back goes through the same path.

  // Bursts of 16 equal ChannelData (1196-byte payloads: 1200 on the wire), and one of 12 with a shorter last.
  const bursts = [16, 16, 16, 12];
  bursts.forEach((count, b) => {
    const sizes = Array.from({ length: count }, (_, k) => (b === 3 && k === count - 1 ? 300 : 1196));
    const sent = sendBurst(client, server, sizes.map((n, k) => encodeChannelData(CHANNEL, payload(b, k, n))));
    expect(sent).toBe(1);
    const got = receive(peer, count);
    expect(got.map((d) => d.length)).toEqual(sizes);
    got.forEach((d, k) => expect(d).toEqual(payload(b, k, sizes[k]!)));
  });

  bursts.forEach((count, b) => {
    const sizes = Array.from({ length: count }, (_, k) => (b === 3 && k === count - 1 ? 300 : 1196));
    expect(sendBurst(peer, relay, sizes.map((n, k) => payload(100 + b, k, n)))).toBe(1);
    const got = receive(client, count);
    expect(got.map((d) => d.length)).toEqual(sizes.map((n) => n + 4));
    got.forEach((d, k) => {
      expect(Array.from(d.subarray(0, 4))).toEqual([CHANNEL >> 8, CHANNEL & 0xff, sizes[k]! >> 8, sizes[k]! & 0xff]);
      expect(d.subarray(4)).toEqual(payload(100 + b, k, sizes[k]!));
    });
  });

  // The server really received coalesced buffers and sent runs with UDP_SEGMENT (its stats line).
  const total = bursts.reduce((a, n) => a + n, 0);
  const field = (line: string, name: string) => Number(new RegExp(` ${name}=(\\d+)`).exec(line)?.[1] ?? 0);
  const last = () => s.output().split("\n").filter((l) => l.includes("udp-recvmmsg stats:")).at(-1) ?? "";
  const deadline = Date.now() + 10_000;
  while (field(last(), "gso_segments") < 2 * total && Date.now() < deadline) await Bun.sleep(50);
  const line = last();
  expect(field(line, "gro_buffers")).toBe(2 * bursts.length);
  expect(field(line, "gso_sends")).toBeGreaterThanOrEqual(2 * bursts.length);
  expect(field(line, "gso_segments")).toBeGreaterThanOrEqual(2 * total);
  expect(field(line, "segments")).toBeGreaterThanOrEqual(2 * total);
}, 30_000);
