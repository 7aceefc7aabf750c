/**
 * One client's datagram the kernel refuses must not switch batching off for everyone. An authenticated
 * client sends Send indications (RFC 8656 §11.2) to XOR-PEER-ADDRESS port 0 between ones to a real
 * peer, all in one burst, so the engine queues them on one relay socket and hands them to one sendmmsg:
 * the kernel would refuse the port-0 entries with EINVAL; the peer policy now drops them in the core
 * first (RFC 8656 §11.2), and the kernel's refusal is tested in test/ffi. They are counted; the others arrive;
 * sendmmsg stays on, and another client's burst still leaves in batches (Prometheus counters, real
 * server process, 127.0.0.1 only).
 */
import { expect } from "bun:test";
import { parseEndpoint, type Endpoint } from "../../src/net/endpoint.ts";
import { Attr, StunClass, StunMethod, StunWriter, encodeChannelData, writeXorAddress } from "../../src/stun/index.ts";
import { EchoPeer, TurnClient } from "../fuzz/turn-client.ts";
import { PASSWORD, USER, closeAfterAll, e2eTest, pollUntil, scrapeMetrics, startBunturnWithMetrics } from "./harness.ts";

const { running, closers } = closeAfterAll();

const metrics = scrapeMetrics;

function sendIndication(peer: Endpoint, payload: Uint8Array): Uint8Array {
  const w = new StunWriter(StunMethod.Send, StunClass.Indication, crypto.getRandomValues(new Uint8Array(12)));
  writeXorAddress(w, Attr.XorPeerAddress, peer);
  w.addBytes(Attr.Data, payload);
  return w.finish();
}

const until = (f: () => boolean | Promise<boolean>, ms = 3000) => pollUntil(f, ms);

e2eTest("a client sending to peer port 0 gets those datagrams dropped and counted; sendmmsg stays on for every client", async () => {
  const { server, url } = await startBunturnWithMetrics(running, {
    args: ["--relay-threads", "1"],
  }, 3000);
  const peer = await EchoPeer.open();
  closers.push(() => peer.close());
  const options = { server: { host: "127.0.0.1", port: server.port }, username: USER, password: PASSWORD };
  const hostile = await TurnClient.open(options);
  closers.push(() => hostile.close());
  expect((await hostile.allocate()).ok).toBe(true);
  // A permission is per IP address (RFC 8656 §9): it covers the peer's port and port 0 alike.
  expect((await hostile.createPermission(peer.endpoint)).ok).toBe(true);

  const portZero = parseEndpoint("127.0.0.1", 0);
  const burst: Uint8Array[] = [];
  for (let i = 0; i < 8; i++) burst.push(sendIndication(peer.endpoint, new Uint8Array([i])), sendIndication(portZero, new Uint8Array([i])));
  hostile.sendRawMany(burst);
  expect(await until(() => peer.echoed === 8)).toBe(true);

  // The core now refuses port 0 before the kernel sees it (RFC 8656 §11.2, docs/peer-policy.md): dropped
  // and counted there. A datagram the kernel refuses is covered at the ffi level (test/ffi/batch-io.test.ts).
  let m = await metrics(url);
  expect(await until(async () => (m = await metrics(url)).get('bunturn_packets_dropped_total{reason="protocol"}')! >= 8)).toBe(true);
  expect(m.get("bunturn_udp_send_refused_total")).toBe(0);
  expect(m.get("bunturn_udp_sendmmsg_unavailable_total")).toBe(0);
  expect(server.output()).not.toContain("sendmmsg refused by the kernel");

  // Another client's bursts of 16 ChannelData messages still leave in batches: some send call carries
  // more than one datagram (a burst read in one drain goes to the peer in one sendmmsg).
  const other = await TurnClient.open(options);
  closers.push(() => other.close());
  expect((await other.allocate()).ok).toBe(true);
  expect((await other.channelBind(0x4000, peer.endpoint)).ok).toBe(true);
  let batched = false;
  for (let round = 0; round < 5 && !batched; round++) {
    const before = await metrics(url);
    other.received.length = 0;
    other.sendRawMany(Array.from({ length: 16 }, (_, i) => encodeChannelData(0x4000, new Uint8Array(100).fill(i))));
    expect(await until(() => other.received.length === 16)).toBe(true);
    const after = await metrics(url);
    const datagrams = after.get("turn_udp_sendmmsg_datagrams")! - before.get("turn_udp_sendmmsg_datagrams")!;
    const calls = after.get("turn_udp_sendmmsg_flushes")! - before.get("turn_udp_sendmmsg_flushes")!;
    expect(datagrams).toBeGreaterThanOrEqual(32);
    batched = calls < datagrams;
  }
  expect(batched).toBe(true);
  expect((await metrics(url)).get("bunturn_udp_sendmmsg_unavailable_total")).toBe(0);
}, 30000);
