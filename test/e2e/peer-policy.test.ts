/**
 * The peer policy against the running server (test/fuzz/server-fixture.ts, relays on 127.0.0.1): this host's
 * own addresses, the relay range that stays reachable (two clients of one server), port 0, and operator
 * ranges that used to fail open (docs/peer-policy.md). Nothing is ever sent outside 127.0.0.0/8: a verdict
 * on another address is a CreatePermission or ChannelBind answer only.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { parseEndpoint, type Endpoint } from "../../src/net/endpoint.ts";
import { Attr, StunClass, StunMethod, StunWriter, writeAddressFamily, writeRequestedTransport, writeXorAddress } from "../../src/stun/index.ts";
import { PASSWORD, USER, e2eTest, freePort, runUclient, startBunturn, type Running } from "./harness.ts";
import { startFixture } from "../fuzz/run.ts";
import { EchoPeer, TurnClient } from "../fuzz/turn-client.ts";

const running: Running[] = [];
const closers: Array<() => void> = [];
afterAll(async () => {
  for (const c of closers.splice(0)) c();
  await Promise.all(running.splice(0).map((r) => r.stop()));
});

async function fixture(args: string[], allowLoopback: boolean): Promise<Running> {
  const s = await startFixture(args, "users", allowLoopback);
  running.push(s);
  return s;
}

async function client(server: Running): Promise<TurnClient> {
  const c = await TurnClient.open({ server: { host: "127.0.0.1", port: server.port }, username: USER, password: PASSWORD });
  closers.push(() => c.close());
  return c;
}

/** A UDP service on this host at a port in no relay range (freePort never hands one out). */
async function udpService(host: string): Promise<{ port: number; received: () => number }> {
  let count = 0;
  const socket = await Bun.udpSocket({ hostname: host, port: freePort(), socket: { data() { count++; } } });
  closers.push(() => socket.close());
  return { port: socket.port, received: () => count };
}

function sendIndication(c: TurnClient, peer: Endpoint, payload: Uint8Array): void {
  const w = new StunWriter(StunMethod.Send, StunClass.Indication, crypto.getRandomValues(new Uint8Array(12)));
  writeXorAddress(w, Attr.XorPeerAddress, peer);
  w.addBytes(Attr.Data, payload);
  c.sendRaw(w.finish());
}

/** Waits until `c` has received `n` datagrams more than `before`, or the time is up; returns how many came. */
async function awaitData(c: TurnClient, before: number, n: number, ms = 2000): Promise<number> {
  const deadline = Date.now() + ms;
  while (c.received.length - before < n && Date.now() < deadline) await Bun.sleep(5);
  return c.received.length - before;
}

async function verdicts(c: TurnClient, addresses: string[]): Promise<Record<string, [number, number]>> {
  const out: Record<string, [number, number]> = {};
  let channel = 0x4000;
  for (const ip of addresses) {
    const peer = parseEndpoint(ip, 9);
    out[ip] = [(await c.createPermission(peer)).errorCode ?? 200, (await c.channelBind(channel++, peer)).errorCode ?? 200];
  }
  return out;
}

describe("this host's own addresses, default policy with --relay-ip 127.0.0.1", () => {
  test("two clients of the server reach each other's relayed address with no allow flag", async () => {
    const server = await fixture([], false);
    const [a, b] = [await client(server), await client(server)];
    expect((await a.allocate()).ok).toBe(true);
    expect((await b.allocate()).ok).toBe(true);
    const [min, max] = server.relayPorts!;
    expect(a.relayed!.port).toBeGreaterThanOrEqual(min);
    expect(a.relayed!.port).toBeLessThanOrEqual(max);
    expect((await a.createPermission(b.relayed!)).ok).toBe(true);
    expect((await b.createPermission(a.relayed!)).ok).toBe(true);
    expect((await a.channelBind(0x4001, b.relayed!)).ok).toBe(true);
    expect((await b.channelBind(0x4002, a.relayed!)).ok).toBe(true);
    const [beforeA, beforeB] = [a.received.length, b.received.length];
    for (let i = 0; i < 5; i++) a.sendChannelData(0x4001, new Uint8Array(40).fill(i));
    expect(await awaitData(b, beforeB, 5)).toBe(5);
    for (let i = 0; i < 5; i++) b.sendChannelData(0x4002, new Uint8Array(40).fill(i));
    sendIndication(b, a.relayed!, new Uint8Array(30)); // the Send path too
    expect(await awaitData(a, beforeA, 6)).toBe(6);
  }, 20_000);

  e2eTest("turnutils_uclient -y (client to client through the relay range) with no allow flag", async () => {
    const s = await startBunturn({ allowLoopback: false });
    running.push(s);
    const r = await runUclient(["-y", "-u", USER, "-w", PASSWORD, "-p", String(s.port), "-n", "30", "-l", "100", "-m", "2", "127.0.0.1"]);
    if (r.received !== r.sent || r.errors.length > 0) console.error(r.output.slice(-3000));
    expect(r.errors).toEqual([]);
    expect(r.sent).toBeGreaterThanOrEqual(60);
    expect(r.received).toBe(r.sent);
    expect(r.lost).toBe(0);
  });

  test("the relay's own address outside the relay range is refused (403, Send dropped); an allowed neighbour is reached", async () => {
    const server = await fixture(["--allowed-peer-ip", "127.0.0.2"], false);
    const service = await udpService("127.0.0.1");
    const neighbour = await EchoPeer.open("127.0.0.2");
    closers.push(() => neighbour.close());
    const c = await client(server);
    expect((await c.allocate()).ok).toBe(true);
    const own = parseEndpoint("127.0.0.1", service.port);
    // CreatePermission judges the address only (RFC 8656 §10.2): some ports of it (the relay range) are peers.
    expect((await c.createPermission(own)).ok).toBe(true);
    expect((await c.channelBind(0x4000, own)).errorCode).toBe(403);
    expect((await c.channelBind(0x4001, parseEndpoint("127.0.0.1", server.port))).errorCode).toBe(403); // the listener itself
    for (let i = 0; i < 3; i++) sendIndication(c, own, new Uint8Array([1, 2, 3]));
    expect((await c.createPermission(parseEndpoint("127.0.0.3", 9))).errorCode).toBe(403);
    expect((await c.channelBind(0x4002, neighbour.endpoint)).ok).toBe(true);
    const before = c.received.length;
    for (let i = 0; i < 3; i++) c.sendChannelData(0x4002, new Uint8Array(20));
    expect(await awaitData(c, before, 3)).toBe(3);
    expect(service.received()).toBe(0);
  }, 20_000);
});

describe("port 0 and operator ranges", () => {
  test("XOR-PEER-ADDRESS port 0: CreatePermission 200 (port ignored), ChannelBind 403, Send dropped; send batching stays on", async () => {
    const server = await fixture([], true);
    const peer = await EchoPeer.open("127.0.0.1");
    closers.push(() => peer.close());
    const c = await client(server);
    expect((await c.allocate()).ok).toBe(true);
    const zero = parseEndpoint("127.0.0.1", 0);
    expect((await c.createPermission(zero)).ok).toBe(true);
    expect((await c.channelBind(0x4000, zero)).errorCode).toBe(403);
    for (let i = 0; i < 5; i++) sendIndication(c, zero, new Uint8Array(10));
    expect((await c.channelBind(0x4001, peer.endpoint)).ok).toBe(true);
    const before = c.received.length;
    for (let i = 0; i < 5; i++) c.sendChannelData(0x4001, new Uint8Array(20));
    expect(await awaitData(c, before, 5)).toBe(5);
    expect(server.output()).not.toContain("refused by the kernel");
  }, 20_000);

  test("--allowed-peer-ip 64:ff9b::/96 admits no IPv4 peer; --allowed-peer-ip 0.0.0.0/0 never 0.0.0.0 or broadcast", async () => {
    const server = await fixture(["--allowed-peer-ip", "64:ff9b::/96", "--allowed-peer-ip", "0.0.0.0/0"], false);
    const c = await client(server);
    expect((await c.allocate()).ok).toBe(true);
    expect(await verdicts(c, ["0.0.0.0", "255.255.255.255", "224.0.0.1"])).toEqual({
      "0.0.0.0": [403, 403], "255.255.255.255": [403, 403], "224.0.0.1": [403, 403],
    });
    const nat64Only = await fixture(["--allowed-peer-ip", "64:ff9b::/96"], false);
    const d = await client(nat64Only);
    expect((await d.allocate()).ok).toBe(true);
    expect(await verdicts(d, ["127.0.0.1", "127.0.0.5", "169.254.169.254", "10.0.0.1"])).toEqual({
      "127.0.0.1": [200, 403], // the relay address: CreatePermission judges the address, ChannelBind the port (9)
      "127.0.0.5": [403, 403], "169.254.169.254": [403, 403], "10.0.0.1": [403, 403],
    });
  }, 20_000);

  test("--denied-peer-ip ::/0 refuses ::ffff:8.8.8.8; the default refuses the IPv6 disguises of loopback", async () => {
    const server = await fixture(["--relay-ip", "::1", "--denied-peer-ip", "::/0"], false);
    const c = await client(server);
    const r = await c.request(StunMethod.Allocate, (w) => {
      writeRequestedTransport(w, 17);
      writeAddressFamily(w, Attr.AdditionalAddressFamily, 6);
    });
    expect(r.addresses(Attr.XorRelayedAddress).length).toBe(2);
    expect(await verdicts(c, ["::ffff:8.8.8.8", "8.8.8.8"])).toEqual({ "::ffff:8.8.8.8": [403, 403], "8.8.8.8": [200, 200] });
    const plain = await fixture(["--relay-ip", "::1"], false);
    const d = await client(plain);
    await d.request(StunMethod.Allocate, (w) => {
      writeRequestedTransport(w, 17);
      writeAddressFamily(w, Attr.AdditionalAddressFamily, 6);
    });
    const disguises = ["64:ff9b:1:7f00:1::", "2002:7f00:1::", "2001:0:7f00:1::", "::ffff:0:7f00:1", "fec0::1", "240.0.0.1"];
    const v = await verdicts(d, disguises);
    for (const ip of disguises) expect([ip, ...v[ip]!]).toEqual([ip, 403, 403]);
  }, 20_000);
});
