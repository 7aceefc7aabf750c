/**
 * What the relay does to IP header fields, seen by real sockets on both sides (ffi/, so the test can set
 * and read TTL and TOS): a relayed datagram keeps its TOS and loses one hop of TTL, in both directions,
 * as coturn does. The client speaks raw STUN (the server runs --no-auth) from one FFI socket.
 */
import { afterAll, expect, test } from "bun:test";
import {
  CmsgInfo, IPPROTO_IP, IP_TOS, IP_TTL, RecvBatch, SendBatch, UdpCapabilities, UdpSocketState, flushSendBatch,
  newStats, boundPort, receiveBatch, receivedTtlTos, setIntOption,
} from "../../ffi/index.ts";
import { parseEndpoint, type Endpoint } from "../../src/net/endpoint.ts";
import {
  Attr, StunClass, StunMethod, StunWriter, encodeChannelData, writeChannelNumber, writeRequestedTransport, writeXorAddress,
} from "../../src/stun/index.ts";
import { Response } from "../turn/harness.ts";
import { waitReadable } from "../ffi/helpers.ts";
import { startBunturn, type Running } from "./harness.ts";

const LOOPBACK = new Uint8Array([127, 0, 0, 1]);
const caps = new UdpCapabilities({ recvmmsg: true, sendmmsg: true });
const sockets = new Map<number, UdpSocketState>();
const running: Running[] = [];
afterAll(async () => {
  sockets.forEach((s) => s.close());
  await Promise.all(running.map((r) => r.stop()));
});

function socketWith(ttl: number, tos: number): { fd: number; port: number } {
  const socket = UdpSocketState.open({ family: 4, address: LOOPBACK, port: 0, receiveTtlTos: true }, caps);
  const fd = socket.fd;
  sockets.set(fd, socket);
  setIntOption(fd, IPPROTO_IP, IP_TTL, ttl);
  setIntOption(fd, IPPROTO_IP, IP_TOS, tos);
  return { fd, port: boundPort(fd) };
}

function send(fd: number, to: Endpoint, data: Uint8Array): void {
  const batch = new SendBatch(1);
  batch.push(sockets.get(fd)!, to.address, to.port, data);
  flushSendBatch(batch, newStats());
}

/** The next datagram on fd with its TTL and TOS. */
function receive(fd: number): { data: Uint8Array; ttl: number; tos: number; port: number } {
  if (!waitReadable(fd, 3000)) throw new Error("nothing arrived within 3 s");
  const batch = new RecvBatch(1);
  expect(receiveBatch(sockets.get(fd)!, batch, newStats())).toBe(1);
  const info = receivedTtlTos(batch, 0, new CmsgInfo());
  return { data: batch.datagram(0).slice(), ttl: info.ttl, tos: info.tos, port: batch.sourcePort(0) };
}

function request(fd: number, server: Endpoint, method: number, attrs: (w: StunWriter) => void): Response & { ttl: number } {
  const w = new StunWriter(method, StunClass.Request, crypto.getRandomValues(new Uint8Array(12)));
  attrs(w);
  send(fd, server, w.finish());
  const got = receive(fd);
  return Object.assign(new Response(got.data), { ttl: got.ttl });
}

/** A server with one allocation whose channel 0x4001 is bound to a peer socket; both sockets set TTL/TOS. */
async function channelToPeer() {
  const s = await startBunturn({ auth: "none", args: ["--relay-threads", "1"] });
  running.push(s);
  const server = parseEndpoint("127.0.0.1", s.port);
  const client = socketWith(9, 0x20);
  const peer = socketWith(7, 0x48);
  const allocated = request(client.fd, server, StunMethod.Allocate, (w) => writeRequestedTransport(w, 17));
  expect(allocated.ok).toBe(true);
  const relay = allocated.addresses(Attr.XorRelayedAddress)[0]!;
  const bound = request(client.fd, server, StunMethod.ChannelBind, (w) => {
    writeChannelNumber(w, 0x4001);
    writeXorAddress(w, Attr.XorPeerAddress, parseEndpoint("127.0.0.1", peer.port));
  });
  expect(bound.ok).toBe(true);
  return { server, client, peer, relay };
}

test("TTL-1 and the same TOS, client to peer and peer to client", async () => {
  const { server, client, peer, relay } = await channelToPeer();

  send(client.fd, server, encodeChannelData(0x4001, new Uint8Array([1, 2, 3])));
  const atPeer = receive(peer.fd);
  expect(Array.from(atPeer.data)).toEqual([1, 2, 3]);
  expect(atPeer.port).toBe(relay.port);
  expect(atPeer.ttl).toBe(8);
  expect(atPeer.tos).toBe(0x20);

  send(peer.fd, relay, new Uint8Array([4, 5]));
  const atClient = receive(client.fd);
  expect(Array.from(atClient.data)).toEqual([0x40, 0x01, 0x00, 0x02, 4, 5]);
  expect(atClient.ttl).toBe(6);
  expect(atClient.tos).toBe(0x48);

  // STUN answers are the server's own datagrams: the kernel's default TTL, not the request's minus one.
  const refreshed = request(client.fd, server, StunMethod.Refresh, () => {});
  expect(refreshed.ok).toBe(true);
  const defaultTtl = Number((await Bun.file("/proc/sys/net/ipv4/ip_default_ttl").text()).trim());
  expect(refreshed.ttl).toBe(defaultTtl);
}, 30000);

// The engine switches a socket to the relayed TTL/TOS as socket options once they repeat (sticky TTL/TOS,
// ffi/batch.ts): every datagram must still carry exactly what it would have carried with a cmsg each.
test("TTL/TOS stay exact per datagram when they repeat, change, and alternate with STUN answers", async () => {
  const { server, client, peer, relay } = await channelToPeer();
  const defaultTtl = Number((await Bun.file("/proc/sys/net/ipv4/ip_default_ttl").text()).trim());

  const roundTrips = (n: number, clientTtl: number, clientTos: number, peerTtl: number, peerTos: number) => {
    setIntOption(client.fd, IPPROTO_IP, IP_TTL, clientTtl);
    setIntOption(client.fd, IPPROTO_IP, IP_TOS, clientTos);
    setIntOption(peer.fd, IPPROTO_IP, IP_TTL, peerTtl);
    setIntOption(peer.fd, IPPROTO_IP, IP_TOS, peerTos);
    for (let i = 0; i < n; i++) {
      send(client.fd, server, encodeChannelData(0x4001, new Uint8Array([i])));
      const atPeer = receive(peer.fd);
      expect([atPeer.data[0], atPeer.ttl, atPeer.tos]).toEqual([i, clientTtl - 1, clientTos]);
      send(peer.fd, relay, new Uint8Array([i]));
      const atClient = receive(client.fd);
      expect([atClient.data[4], atClient.ttl, atClient.tos]).toEqual([i, peerTtl - 1, peerTos]);
    }
  };
  const answerHasDefaultTtl = () => {
    const refreshed = request(client.fd, server, StunMethod.Refresh, () => {});
    expect(refreshed.ok).toBe(true);
    expect(refreshed.ttl).toBe(defaultTtl);
  };

  roundTrips(20, 9, 0x20, 7, 0x48); // long enough for both sockets to switch to socket options
  answerHasDefaultTtl(); // the listener goes back to the default for the server's own datagram
  roundTrips(3, 9, 0x20, 7, 0x48); // cmsg again until the run is long enough
  roundTrips(20, 30, 0x10, 12, 0); // a new run: first by cmsg over the old options, then switched
  answerHasDefaultTtl();
  roundTrips(12, 2, 0, 2, 0x04);
}, 30000);
