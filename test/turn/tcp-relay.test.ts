/**
 * RFC 6062 in the sans-IO core, with a fake TcpRelayIo and the test clock: the Allocate rules (§5.1),
 * Connect answered when the engine reports (§5.2) or after 30 s (447), ConnectionAttempt only with a
 * permission (§5.3), ConnectionBind (§5.4), the 30 s wait for a bind, and connections ending with their
 * allocation.
 */
import { describe, expect, test } from "bun:test";
import { parseEndpoint, type Endpoint } from "../../src/net/endpoint.ts";
import { Attr, StunClass, StunMethod, readConnectionId, writeConnectionId, writeEvenPort, writeRequestedTransport, writeXorAddress, writeChannelNumber, writeLifetime } from "../../src/stun/index.ts";
import { FIRST_CONNECTION_ID, peerConnectionId, type ConnectionId, type PeerConnectionId, type RelayHandle, type TcpRelayIo } from "../../src/turn/api.ts";
import { harness, Response, type Harness, type TestClient } from "./harness.ts";

class FakeTcpRelays implements TcpRelayIo {
  next = 0x100;
  readonly connects: Array<{ relay: RelayHandle; peer: Endpoint; id: PeerConnectionId }> = [];
  readonly bound: Array<[PeerConnectionId, ConnectionId]> = [];
  readonly closed: PeerConnectionId[] = [];
  connect(relay: RelayHandle, peer: Endpoint): PeerConnectionId | 0 {
    const id = peerConnectionId(this.next++);
    this.connects.push({ relay, peer, id });
    return id;
  }
  bind(id: PeerConnectionId, client: ConnectionId): void {
    this.bound.push([id, client]);
  }
  close(id: PeerConnectionId): void {
    this.closed.push(id);
  }
}

const PEER = parseEndpoint("198.51.100.7", 8080);
const CONTROL = FIRST_CONNECTION_ID;
const DATA = FIRST_CONNECTION_ID + 1;

function setup(withTcp = true): { h: Harness; io: FakeTcpRelays; control: TestClient } {
  const io = new FakeTcpRelays();
  const h = harness(withTcp ? { tcpRelays: io } : {});
  const control = h.client("192.0.2.50", 40000, undefined, CONTROL);
  return { h, io, control };
}

function allocateTcp(c: TestClient, extra?: Parameters<TestClient["request"]>[1]): Response {
  if (c.nonce === undefined) c.learnNonce();
  return c.request(StunMethod.Allocate, (w) => {
    writeRequestedTransport(w, 6);
    extra?.(w);
  });
}

function permit(c: TestClient, peer = PEER): void {
  expect(c.request(StunMethod.CreatePermission, (w) => writeXorAddress(w, Attr.XorPeerAddress, peer)).ok).toBe(true);
}

/** A data connection of the same host, reusing the control connection's nonce (as coturn's client does). */
function dataClient(h: Harness, control: TestClient, listener = DATA, user?: { username: string; password: string }): TestClient {
  const d = h.client("192.0.2.50", 40001, user, listener);
  d.nonce = control.nonce;
  d.realm = control.realm;
  return d;
}

function bind(d: TestClient, id: number): Response {
  return d.request(StunMethod.ConnectionBind, (w) => writeConnectionId(w, id));
}

function idOf(r: Response): number {
  const v = r.attr(Attr.ConnectionId)!;
  return readConnectionId(v, 0, v.length)!;
}

describe("RFC 6062 §5.1: Allocate for TCP", () => {
  test("over TCP: a relay opened for TCP; over UDP: 400; EVEN-PORT: 400; without TCP relays (--no-tcp-relay): 442", () => {
    const { h, control } = setup();
    expect(allocateTcp(control).ok).toBe(true);
    expect(h.relays.opened.at(-1)).toMatchObject({ kind: "fresh", transport: "tcp" });
    const udp = setup().h.client();
    expect(allocateTcp(udp).errorCode).toBe(400);
    const even = setup().control;
    expect(allocateTcp(even, (w) => writeEvenPort(w, false)).errorCode).toBe(400);
    expect(allocateTcp(setup(false).control).errorCode).toBe(442);
  });

  test("over DTLS (a connection of the core, but datagrams): 400, and no ConnectionBind either", () => {
    const io = new FakeTcpRelays();
    const dtlsId = FIRST_CONNECTION_ID + 100;
    const h = harness({ tcpRelays: io, streamKind: (id) => (id === dtlsId ? "dtls" : "tcp") });
    const dtls = h.client("192.0.2.50", 40000, undefined, dtlsId);
    expect(allocateTcp(dtls).errorCode).toBe(400);
    expect(bind(dtls, 0x200).errorCode).toBe(400);
    expect(allocateTcp(h.client("192.0.2.50", 40001, undefined, CONTROL)).ok).toBe(true);
  });

  test("a TCP allocation has no channels: ChannelBind gets 400", () => {
    const { control } = setup();
    allocateTcp(control);
    const r = control.request(StunMethod.ChannelBind, (w) => {
      writeChannelNumber(w, 0x4000);
      writeXorAddress(w, Attr.XorPeerAddress, PEER);
    });
    expect(r.errorCode).toBe(400);
  });
});

describe("RFC 6062 §5.2: Connect", () => {
  test("answered once the engine reports the connection: CONNECTION-ID, signed; 446 for the same peer again", () => {
    const { h, io, control } = setup();
    allocateTcp(control);
    permit(control);
    const out = control.sendRaw(control.build(StunMethod.Connect, (w) => writeXorAddress(w, Attr.XorPeerAddress, PEER)));
    expect(out).toEqual([]); // no answer until the connection is up
    expect(io.connects).toHaveLength(1);
    expect(io.connects[0]!.peer.key).toBe(PEER.key);
    h.sink.take();
    h.server.handlePeerConnected(io.connects[0]!.id, true, h.now);
    const r = new Response(h.sink.take()[0]!.data);
    expect(r.method).toBe(StunMethod.Connect);
    expect(r.ok).toBe(true);
    expect(r.has(Attr.MessageIntegrity)).toBe(true);
    expect(idOf(r)).toBe(io.connects[0]!.id);
    expect(control.request(StunMethod.Connect, (w) => writeXorAddress(w, Attr.XorPeerAddress, PEER)).errorCode).toBe(446);
  });

  test("403 without a permission; a failed connection gets 447", () => {
    const { h, io, control } = setup();
    allocateTcp(control);
    expect(control.request(StunMethod.Connect, (w) => writeXorAddress(w, Attr.XorPeerAddress, PEER)).errorCode).toBe(403);
    permit(control);
    control.sendRaw(control.build(StunMethod.Connect, (w) => writeXorAddress(w, Attr.XorPeerAddress, PEER)));
    h.server.handlePeerConnected(io.connects[0]!.id, false, h.now);
    expect(new Response(h.sink.take()[0]!.data).errorCode).toBe(447);
    expect(h.server.counters.tcpConnectFailures).toBe(1);
  });

  test("30 s without an outcome: 447, and the engine is told to close the attempt", () => {
    const { h, io, control } = setup();
    allocateTcp(control);
    permit(control);
    control.sendRaw(control.build(StunMethod.Connect, (w) => writeXorAddress(w, Attr.XorPeerAddress, PEER)));
    h.advance(29_999);
    expect(h.sink.take()).toEqual([]);
    h.advance(2);
    expect(new Response(h.sink.take()[0]!.data).errorCode).toBe(447);
    expect(io.closed).toEqual([io.connects[0]!.id]);
  });
});

describe("RFC 6062 §5.3-5.4: ConnectionAttempt, ConnectionBind and the 30 s wait", () => {
  test("a peer's connection is taken only with a permission, and announced with CONNECTION-ID and XOR-PEER-ADDRESS", () => {
    const { h, control } = setup();
    allocateTcp(control);
    const relay = h.relays.lastId;
    expect(h.server.handlePeerAccepted(relay, PEER, peerConnectionId(0x200), h.now)).toBe(false);
    expect(h.sink.take()).toEqual([]);
    permit(control);
    expect(h.server.handlePeerAccepted(relay, PEER, peerConnectionId(0x200), h.now)).toBe(true);
    const sent = h.sink.take();
    expect(sent).toHaveLength(1);
    expect(sent[0]!.listener).toBe(CONTROL);
    const indication = new Response(sent[0]!.data);
    expect(indication.cls).toBe(StunClass.Indication);
    expect(indication.method).toBe(StunMethod.ConnectionAttempt);
    expect(idOf(indication)).toBe(0x200);
    expect(indication.addresses(Attr.XorPeerAddress)[0]!.key).toBe(PEER.key);
  });

  test("ConnectionBind with the control connection's nonce binds; the engine pipes it; the id binds once", () => {
    const { h, io, control } = setup();
    allocateTcp(control);
    permit(control);
    h.server.handlePeerAccepted(h.relays.lastId, PEER, peerConnectionId(0x200), h.now);
    const data = dataClient(h, control);
    // The control connection's nonce names another source port: accepted for this request (no 438 round).
    const first = data.request(StunMethod.ConnectionBind, (w) => writeConnectionId(w, 0x200), { retryStale: false });
    expect(first.ok).toBe(true);
    expect(io.bound).toEqual([[peerConnectionId(0x200), DATA as ConnectionId]]);
    expect(bind(dataClient(h, control, DATA + 1), 0x200).errorCode).toBe(400);
    // Bound: the 30 s wait is over, nothing closes it.
    h.advance(60_000);
    expect(io.closed).toEqual([]);
  });

  test("400: an unknown id, over UDP, on the control connection; 441: another user", () => {
    const { h, control } = setup();
    allocateTcp(control);
    permit(control);
    h.server.handlePeerAccepted(h.relays.lastId, PEER, peerConnectionId(0x200), h.now);
    expect(bind(dataClient(h, control), 0x201).errorCode).toBe(400);
    const udp = h.client("192.0.2.50", 40002);
    udp.nonce = control.nonce;
    udp.realm = control.realm;
    expect(udp.request(StunMethod.ConnectionBind, (w) => writeConnectionId(w, 0x200)).errorCode).toBe(400);
    expect(bind(control, 0x200).errorCode).toBe(400);
    const bob = dataClient(h, control, DATA + 2, { username: "bob", password: "hunter2" });
    expect(bind(bob, 0x200).errorCode).toBe(441);
  });

  test("an unbound connection is closed 30 s after it was announced, and counted", () => {
    const { h, io, control } = setup();
    allocateTcp(control);
    permit(control);
    h.server.handlePeerAccepted(h.relays.lastId, PEER, peerConnectionId(0x200), h.now);
    expect(h.server.counters.tcpPeerConnections).toBe(1);
    h.advance(29_999);
    expect(io.closed).toEqual([]);
    h.advance(2);
    expect(io.closed).toEqual([peerConnectionId(0x200)]);
    expect(h.server.counters.tcpUnboundExpired).toBe(1);
    expect(h.server.counters.tcpPeerConnections).toBe(0);
    expect(bind(dataClient(h, control), 0x200).errorCode).toBe(400);
  });

  test("the allocation's end (Refresh 0) closes all its connections; a connection the engine closed is forgotten", () => {
    const { h, io, control } = setup();
    allocateTcp(control);
    permit(control);
    h.server.handlePeerAccepted(h.relays.lastId, PEER, peerConnectionId(0x200), h.now);
    h.server.handlePeerAccepted(h.relays.lastId, parseEndpoint("198.51.100.7", 8081), peerConnectionId(0x201), h.now);
    h.server.handlePeerAccepted(h.relays.lastId, parseEndpoint("198.51.100.7", 8082), peerConnectionId(0x202), h.now);
    h.server.handlePeerConnectionClosed(peerConnectionId(0x202));
    expect(control.request(StunMethod.Refresh, (w) => writeLifetime(w, 0)).ok).toBe(true);
    expect(io.closed.sort()).toEqual([peerConnectionId(0x200), peerConnectionId(0x201)]);
    expect(h.server.counters.tcpPeerConnections).toBe(0);
  });
});
