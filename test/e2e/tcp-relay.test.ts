/**
 * End-to-end: RFC 6062 TCP relays with the project's own TCP client (./tcp-turn-client.ts) against the
 * real server, two engines (a data connection may land on either): Connect and the peer-initiated path
 * (ConnectionAttempt) with ConnectionBind and bytes both ways, the error answers (403, 446, 447, 400),
 * and what is closed when (one side closing, Refresh 0).
 */
import type { Socket, TCPSocketListener } from "bun";
import { describe, expect } from "bun:test";
import { closeSocket, libc, boundPort, openTcpListener } from "../../ffi/index.ts";
import { ipv4Endpoint, type Endpoint } from "../../src/net/endpoint.ts";
import { StunMethod, writeRequestedTransport } from "../../src/stun/index.ts";
import { TurnClient } from "../fuzz/turn-client.ts";
import { PASSWORD, USER, closeAfterAll, e2eTest, freePort, pollUntil, startBunturn, type Running } from "./harness.ts";
import { TcpTurnClient, connectionIdOf } from "./tcp-turn-client.ts";

const { running, closers } = closeAfterAll();
const LOOPBACK = new Uint8Array([127, 0, 0, 1]);

/** A TCP peer on loopback: every connection it accepted, what each sent, and a way to answer. */
class TcpPeer {
  readonly sockets: Socket<{ received: string }>[] = [];
  closedCount = 0;
  private constructor(private readonly server: TCPSocketListener<{ received: string }>) {}

  static listen(): TcpPeer {
    let peer: TcpPeer | undefined;
    const server = Bun.listen<{ received: string }>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: (s) => {
          s.data = { received: "" };
          peer!.sockets.push(s);
        },
        data: (s, d) => {
          s.data.received += Buffer.from(d).toString();
        },
        close: () => {
          peer!.closedCount++;
        },
      },
    });
    peer = new TcpPeer(server);
    closers.push(() => server.stop(true));
    return peer;
  }

  get endpoint(): Endpoint {
    return ipv4Endpoint(0x7f000001, this.server.port);
  }
}

async function server(args: string[] = []): Promise<Running> {
  const s = await startBunturn({ args: ["--relay-threads", "2", ...args] });
  running.push(s);
  return s;
}

async function client(port: number): Promise<TcpTurnClient> {
  const c = await TcpTurnClient.open(port);
  closers.push(() => c.close());
  return c;
}

/** A control connection with a TCP allocation and a permission for 127.0.0.1. */
async function tcpAllocation(port: number): Promise<{ control: TcpTurnClient; relayed: Endpoint }> {
  const control = await client(port);
  const { response, relayed } = await control.allocate(6);
  expect(response.ok).toBe(true);
  expect((await control.createPermission(ipv4Endpoint(0x7f000001, 0))).ok).toBe(true);
  return { control, relayed: relayed! };
}

/** A new data connection bound to connection `id` (RFC 6062 §5.4), with the control connection's nonce. */
async function bind(port: number, control: TcpTurnClient, id: number): Promise<TcpTurnClient> {
  const data = await TcpTurnClient.open(port, control.credentials);
  closers.push(() => data.close());
  const r = await data.connectionBind(id);
  expect(r.ok).toBe(true);
  return data;
}

describe("RFC 6062 TCP relays, the project's client", () => {
  e2eTest("Connect (§5.2): CONNECTION-ID, the peer sees the relayed address, ConnectionBind, bytes both ways", async () => {
    const s = await server();
    const peer = TcpPeer.listen();
    const { control, relayed } = await tcpAllocation(s.port);
    const r = await control.connect(peer.endpoint);
    expect(r.ok).toBe(true);
    const id = connectionIdOf(r);
    expect(await pollUntil(() => peer.sockets.length === 1, 2000)).toBe(true);
    // The connection comes from the relayed transport address itself.
    expect(peer.sockets[0]!.remotePort).toBe(relayed.port);
    const data = await bind(s.port, control, id);
    data.write(new TextEncoder().encode("to the peer"));
    expect(await pollUntil(() => peer.sockets[0]!.data.received === "to the peer", 2000)).toBe(true);
    peer.sockets[0]!.write("to the client");
    expect(await pollUntil(() => data.pipedText() === "to the client", 2000)).toBe(true);
  });

  e2eTest("a peer connects (§5.3): ConnectionAttempt with CONNECTION-ID and XOR-PEER-ADDRESS, ConnectionBind, bytes both ways", async () => {
    const s = await server();
    const { control, relayed } = await tcpAllocation(s.port);
    let peerReceived = "";
    const peerSocket = await Bun.connect({ hostname: "127.0.0.1", port: relayed.port, socket: { data: (_s, d) => { peerReceived += Buffer.from(d).toString(); } } });
    closers.push(() => peerSocket.end());
    const attempt = await control.nextIndication();
    expect(attempt?.method).toBe(0x00c);
    const peerAddress = attempt!.addresses(0x0012)[0]!;
    expect(peerAddress.port).toBe(peerSocket.localPort);
    const data = await bind(s.port, control, connectionIdOf(attempt!));
    peerSocket.write("from the peer");
    expect(await pollUntil(() => data.pipedText() === "from the peer", 2000)).toBe(true);
    data.write(new TextEncoder().encode("from the client"));
    expect(await pollUntil(() => peerReceived === "from the client", 2000)).toBe(true);
    // Closing one side closes the other.
    peerSocket.end();
    expect(await pollUntil(() => data.closed, 2000)).toBe(true);
  });

  e2eTest("no permission: Connect gets 403, a peer's connection is closed and no ConnectionAttempt is sent", async () => {
    const s = await server();
    const peer = TcpPeer.listen();
    const control = await client(s.port);
    const { relayed } = await control.allocate(6);
    expect((await control.connect(peer.endpoint)).errorCode).toBe(403);
    let closed = false;
    await Bun.connect({ hostname: "127.0.0.1", port: relayed!.port, socket: { data: () => {}, close: () => { closed = true; } } });
    expect(await pollUntil(() => closed, 2000)).toBe(true);
    expect(await control.nextIndication(300)).toBeUndefined();
  });

  e2eTest("446: a second Connect to the same peer; 447: a closed port", async () => {
    const s = await server();
    const peer = TcpPeer.listen();
    const { control } = await tcpAllocation(s.port);
    expect((await control.connect(peer.endpoint)).ok).toBe(true);
    expect((await control.connect(peer.endpoint)).errorCode).toBe(446);
    const closedPort = ipv4Endpoint(0x7f000001, freePort());
    expect((await control.connect(closedPort)).errorCode).toBe(447);
  });

  e2eTest("447 when the peer never answers within the timeout (its accept queue is full: the SYN is dropped)", async () => {
    // RFC 6062 §5.2's 30 s, shortened for this server only (tests' environment knob).
    process.env.BUNTURN_TEST_TCP_RELAY_TIMEOUT_MS = "1500";
    let s: Running;
    try {
      s = await server();
    } finally {
      delete process.env.BUNTURN_TEST_TCP_RELAY_TIMEOUT_MS;
    }
    const listener = openTcpListener({ family: 4, address: LOOPBACK, port: 0, backlog: 0 });
    closers.push(() => closeSocket(listener, libc));
    const port = boundPort(listener);
    // Fill the queue (backlog 0 holds one connection); later SYNs are dropped, never refused.
    for (let i = 0; i < 2; i++) {
      Bun.connect({ hostname: "127.0.0.1", port, socket: { data: () => {} } }).then((f) => closers.push(() => f.end()), () => {});
    }
    await Bun.sleep(200);
    const { control } = await tcpAllocation(s.port);
    const started = Date.now();
    const r = await control.connect(ipv4Endpoint(0x7f000001, port));
    expect(r.errorCode).toBe(447);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
  });

  e2eTest("400: ConnectionBind with an unknown CONNECTION-ID, ConnectionBind on the control connection, a TCP Allocate over UDP", async () => {
    const s = await server();
    const peer = TcpPeer.listen();
    const { control } = await tcpAllocation(s.port);
    const id = connectionIdOf(await control.connect(peer.endpoint));
    const data = await TcpTurnClient.open(s.port, control.credentials);
    closers.push(() => data.close());
    expect((await data.connectionBind((id ^ 0x5a5a5a) >>> 0)).errorCode).toBe(400);
    expect((await control.connectionBind(id)).errorCode).toBe(400);
    // The right id still binds afterwards, on a fresh connection.
    await bind(s.port, control, id);
    expect(await udpTcpAllocate(s.port)).toBe(400);
  });

  e2eTest("a side that sends 4 MiB and closes: the other side gets every byte before its connection closes", async () => {
    const s = await server();
    const size = 4 << 20;
    const payload = new Uint8Array(size).map((_, i) => i % 251);
    let peerSocket: Socket<undefined> | undefined;
    let atPeer = 0;
    let peerClosed = false;
    const listener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: { open: (sock) => { peerSocket = sock; }, data: (_sock, d) => { atPeer += d.length; }, close: () => { peerClosed = true; } },
    });
    closers.push(() => listener.stop(true));
    const { control } = await tcpAllocation(s.port);
    const data = await bind(s.port, control, connectionIdOf(await control.connect(ipv4Endpoint(0x7f000001, listener.port))));
    expect(await pollUntil(() => peerSocket !== undefined, 2000)).toBe(true);
    // Peer to client, then the peer closes.
    await writeAll((b) => peerSocket!.write(b), payload);
    peerSocket!.end();
    expect(await pollUntil(() => data.closed, 10_000)).toBe(true);
    expect(data.pipedBytes).toBe(size);
    // Client to peer, then the client closes (a second pipe).
    peerSocket = undefined;
    const data2 = await bind(s.port, control, connectionIdOf(await control.connect(ipv4Endpoint(0x7f000001, listener.port))));
    expect(await pollUntil(() => peerSocket !== undefined, 2000)).toBe(true);
    peerClosed = false;
    await writeAll((b) => data2.write(b), payload);
    data2.close();
    expect(await pollUntil(() => peerClosed, 10_000)).toBe(true);
    expect(atPeer).toBe(size);
  });

  e2eTest("Refresh 0 ends the allocation's connections (§5): the data connection and the peer's are closed", async () => {
    const s = await server();
    const peer = TcpPeer.listen();
    const { control } = await tcpAllocation(s.port);
    const data = await bind(s.port, control, connectionIdOf(await control.connect(peer.endpoint)));
    data.write(new TextEncoder().encode("12345"));
    expect(await pollUntil(() => peer.sockets[0]?.data.received === "12345", 2000)).toBe(true);
    peer.sockets[0]!.write("abc");
    expect(await pollUntil(() => data.pipedText() === "abc", 2000)).toBe(true);
    expect((await control.refresh(0)).ok).toBe(true);
    expect(await pollUntil(() => data.closed && peer.closedCount === 1, 2000)).toBe(true);
    // The usage record counts what went through the pipe.
    expect(await pollUntil(() => /usage \{[^\n]*"bytesToPeer":5,[^\n]*"bytesToClient":3,/.test(s.output()), 2000)).toBe(true);
  });
});

/** Writes all of `bytes` through a socket that may take part of it (Bun's write returns what it took). */
async function writeAll(write: (b: Uint8Array) => number, bytes: Uint8Array): Promise<void> {
  let at = 0;
  const end = Date.now() + 10_000;
  while (at < bytes.length && Date.now() < end) {
    const n = write(bytes.subarray(at, Math.min(bytes.length, at + (1 << 16))));
    at += n;
    if (n === 0) await Bun.sleep(5);
  }
  expect(at).toBe(bytes.length);
}

/** An Allocate for TCP sent over UDP (with credentials): its error code. */
async function udpTcpAllocate(port: number): Promise<number | undefined> {
  const udp = await TurnClient.open({ server: { host: "127.0.0.1", port }, username: USER, password: PASSWORD });
  try {
    return (await udp.request(StunMethod.Allocate, (w) => writeRequestedTransport(w, 6))).errorCode;
  } finally {
    udp.close();
  }
}
