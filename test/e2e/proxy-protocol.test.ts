/**
 * --tcp-proxy-port (coturn's option, HAProxy's PROXY protocol v1 and v2): a load balancer's connection
 * starts with a header naming the real client, and that client is the one the relay answers about
 * (XOR-MAPPED-ADDRESS) and counts (the per-source connection cap). The normal TCP port never reads a
 * header, a proxy-port connection without a valid one is closed, and so is one that stays silent.
 * A real bunturn process on loopback; each connection writes its own header, as a balancer would.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect, createServer, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeProxyV2 } from "../../src/net/proxy-protocol.ts";
import { formatEndpoint, parseEndpoint } from "../../src/net/endpoint.ts";
import { Attr } from "../../src/stun/index.ts";
import { Response } from "../turn/harness.ts";
import { PASSWORD, USER, e2eTest, freePort, runUclient, selfSignedCert, startBunturn, startPeer, type Running } from "./harness.ts";
import { bindingRequest } from "../binding-request.ts";

let relay: Running;
let proxyPort = 0;
let tlsPort = 0;
let tlsProxyPort = 0;
let cert = "";
let key = "";
const dir = mkdtempSync(join(tmpdir(), "bunturn-proxy-"));
beforeAll(async () => {
  proxyPort = freePort();
  ({ cert, key } = selfSignedCert(dir));
  tlsPort = freePort();
  tlsProxyPort = freePort();
  relay = await startBunturn({
    args: [
      "--tcp-proxy-port", String(proxyPort), "--max-tcp-connections-per-ip", "1", "--relay-threads", "1", "--unauthorized-ratelimit-rps", "2",
      "--cert", cert, "--pkey", key, "--tls-listening-port", String(tlsPort),
      "--tls-proxy-port", String(tlsProxyPort),
    ],
  });
});
afterAll(async () => {
  await relay.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Conn {
  socket: Socket;
  closed: Promise<void>;
  isClosed(): boolean;
  localPort: number;
  /** Sends `header` then a Binding request; the XOR-MAPPED-ADDRESS of the answer, or null when the server closed instead. */
  bind(header: Uint8Array | string): Promise<string | null>;
}

function open(port: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    let closedFlag = false;
    const socket = connect({ host: "127.0.0.1", port });
    socket.on("data", (d: Buffer) => void (received = Buffer.concat([received, d])));
    socket.on("error", () => {});
    const closed = new Promise<void>((r) => socket.on("close", () => ((closedFlag = true), r())));
    socket.once("connect", () =>
      resolve({
        socket, closed, isClosed: () => closedFlag, localPort: socket.localPort!,
        async bind(header) {
          socket.write(typeof header === "string" ? Buffer.from(header) : header);
          socket.write(bindingRequest());
          const end = Date.now() + 3000;
          while (Date.now() < end && !closedFlag) {
            if (received.length >= 20 && received.length >= 20 + received.readUInt16BE(2)) {
              const response = new Response(new Uint8Array(received.subarray(0, 20 + received.readUInt16BE(2))));
              return formatEndpoint(response.addresses(Attr.XorMappedAddress)[0]!);
            }
            await Bun.sleep(10);
          }
          return null;
        },
      }),
    );
    socket.once("error", reject);
  });
}

const server = parseEndpoint("127.0.0.1", 3478);

test("a PROXY v1 line on the proxy port: the claimed client is the XOR-MAPPED-ADDRESS", async () => {
  const c = await open(proxyPort);
  expect(await c.bind(`PROXY TCP4 203.0.113.7 127.0.0.1 40001 ${proxyPort}\r\n`)).toBe("203.0.113.7:40001");
  c.socket.destroy();
});

test("a PROXY v2 header on the proxy port (IPv6 client): the claimed client is the XOR-MAPPED-ADDRESS", async () => {
  const c = await open(proxyPort);
  expect(await c.bind(encodeProxyV2(parseEndpoint("2001:db8::7", 40002), parseEndpoint("2001:db8::1", 443)))).toBe("[2001:db8::7]:40002");
  c.socket.destroy();
});

test("v2 LOCAL and v1 UNKNOWN (a balancer's health check) keep the connection's own address", async () => {
  const local = encodeProxyV2(parseEndpoint("198.51.100.1", 1), server);
  local[12] = 0x20; // LOCAL command
  const a = await open(proxyPort);
  expect(await a.bind(local)).toBe(`127.0.0.1:${a.localPort}`);
  a.socket.destroy();
  await a.closed;
  // --max-tcp-connections-per-ip 1 counts 127.0.0.1 here: the engine lets go of `a` a moment after it closed.
  let b = await open(proxyPort);
  let mapped = await b.bind("PROXY UNKNOWN\r\n");
  for (let tries = 0; mapped === null && tries < 20; tries++) {
    await Bun.sleep(50);
    b = await open(proxyPort);
    mapped = await b.bind("PROXY UNKNOWN\r\n");
  }
  expect(mapped).toBe(`127.0.0.1:${b.localPort}`);
  b.socket.destroy();
});

test("the normal TCP port never reads a PROXY header: v1 or v2 there closes the connection", async () => {
  for (const header of [`PROXY TCP4 203.0.113.8 127.0.0.1 40003 ${relay.port}\r\n`, encodeProxyV2(parseEndpoint("203.0.113.8", 40003), server)]) {
    const c = await open(relay.port);
    expect(await c.bind(header)).toBeNull();
    expect(c.isClosed()).toBe(true);
  }
  // And the same port still answers a plain client with its real address.
  const plain = await open(relay.port);
  expect(await plain.bind(new Uint8Array(0))).toBe(`127.0.0.1:${plain.localPort}`);
  plain.socket.destroy();
});

test("on the proxy port, no header, a malformed one or an oversized one closes the connection", async () => {
  const oversized = encodeProxyV2(parseEndpoint("203.0.113.9", 1), server);
  oversized[14] = 0x10; // claims 4 KiB of TLVs
  for (const header of [
    new Uint8Array(0), // STUN straight away
    "PROXY TCP4 203.0.113.9 127.0.0.1 40004\r\n", // a field missing
    "PROXY TCP4 2001:db8::9 127.0.0.1 40004 5555\r\n", // family mismatch
    "PROXY TCP4 203.0.113.9  127.0.0.1 40004 5555\r\n", // two spaces
    "PROXY TCP4 203.0.113.9 127.0.0.1 70000 5555\r\n", // port out of range
    `PROXY TCP4 ${"1".repeat(120)}`, // no line end within 107 bytes
    oversized,
  ]) {
    const c = await open(proxyPort);
    expect(await c.bind(header)).toBeNull();
    expect(c.isClosed()).toBe(true);
  }
});

test("the connection cap counts the claimed client, not the balancer", async () => {
  // --max-tcp-connections-per-ip 1: all of these come from 127.0.0.1, but claim different clients.
  const first = await open(proxyPort);
  expect(await first.bind("PROXY TCP4 192.0.2.10 127.0.0.1 1000 5555\r\n")).toBe("192.0.2.10:1000");
  const other = await open(proxyPort);
  expect(await other.bind("PROXY TCP4 192.0.2.11 127.0.0.1 1000 5555\r\n")).toBe("192.0.2.11:1000");
  const same = await open(proxyPort);
  expect(await same.bind("PROXY TCP4 192.0.2.10 127.0.0.1 1001 5555\r\n")).toBeNull(); // a second one from 192.0.2.10
  for (const c of [first, other, same]) c.socket.destroy();
});

test("a balancer connection that sends no header is closed within the header deadline (5 s)", async () => {
  const c = await open(proxyPort);
  c.socket.write("PROX"); // a start, then nothing
  const started = Date.now();
  await Promise.race([c.closed, Bun.sleep(8000)]);
  expect(c.isClosed()).toBe(true);
  expect(Date.now() - started).toBeGreaterThan(3000);
}, 15000);

/** An Allocate without credentials (RFC 8656 §7.1): the server answers 401, within the source's rate limit. */
function unauthenticatedAllocate(): Uint8Array {
  const m = new Uint8Array(28);
  m.set([0x00, 0x03, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42]);
  m.set(crypto.getRandomValues(new Uint8Array(12)), 8);
  m.set([0x00, 0x19, 0x00, 0x04, 17, 0, 0, 0], 20); // REQUESTED-TRANSPORT UDP
  return m;
}

/** Sends `count` unauthenticated Allocates through the proxy port as `client` after `delayMs`; how many answers came back within 500 ms. */
async function answeredAllocates(client: string, count: number, delayMs = 0): Promise<number> {
  let received = Buffer.alloc(0);
  const socket = connect({ host: "127.0.0.1", port: proxyPort });
  socket.on("data", (d: Buffer) => void (received = Buffer.concat([received, d])));
  socket.on("error", () => {});
  await new Promise((r) => socket.once("connect", r));
  await Bun.sleep(delayMs);
  socket.write(`PROXY TCP4 ${client} 127.0.0.1 2000 ${proxyPort}\r\n`);
  for (let i = 0; i < count; i++) socket.write(unauthenticatedAllocate());
  await Bun.sleep(500);
  socket.destroy();
  let answers = 0;
  for (let at = 0; at + 20 <= received.length; at += 20 + received.readUInt16BE(at + 2)) answers++;
  return answers;
}

test("--unauthorized-ratelimit counts the claimed client: one claimed address runs out, another still gets its 401", async () => {
  // --unauthorized-ratelimit-rps 2, one relay thread: the balancer's own address (127.0.0.1) would be one bucket for all.
  // Both within a few ms, so no bucket refills in between (2 a second: one token per 500 ms).
  const [first, second] = await Promise.all([answeredAllocates("192.0.2.30", 4), answeredAllocates("192.0.2.31", 1, 50)]);
  expect(first).toBe(2);
  expect(second).toBe(1);
});

test("the TLS port never reads a PROXY header either: one before the ClientHello fails the handshake", async () => {
  const raw = connect({ host: "127.0.0.1", port: tlsPort });
  raw.on("error", () => {});
  await new Promise((r) => raw.once("connect", r));
  raw.write(`PROXY TCP4 203.0.113.40 127.0.0.1 40005 ${tlsPort}\r\n`);
  const secure = tlsConnect({ socket: raw, rejectUnauthorized: false });
  const outcome = await new Promise<string>((resolve) => {
    secure.once("secureConnect", () => resolve("handshake"));
    secure.once("error", () => resolve("error"));
    secure.once("close", () => resolve("closed"));
    setTimeout(() => resolve("timeout"), 5000);
  });
  expect(outcome === "error" || outcome === "closed").toBe(true);
  secure.destroy();
});

/** Through --tls-proxy-port: `header` in clear, then TLS, then a Binding; the XOR-MAPPED-ADDRESS, or null when the server closed. */
async function bindOverTls(header: string | Uint8Array): Promise<string | null> {
  const raw = connect({ host: "127.0.0.1", port: tlsProxyPort });
  raw.on("error", () => {});
  await new Promise((r) => raw.once("connect", r));
  raw.write(typeof header === "string" ? Buffer.from(header) : header);
  const secure = tlsConnect({ socket: raw, rejectUnauthorized: false });
  secure.on("error", () => {});
  let received = Buffer.alloc(0);
  let closed = false;
  secure.on("data", (d: Buffer) => void (received = Buffer.concat([received, d])));
  secure.on("close", () => void (closed = true));
  const ready = await Promise.race([
    new Promise((r) => secure.once("secureConnect", () => r(true))),
    new Promise((r) => secure.once("close", () => r(false))),
    Bun.sleep(3000).then(() => false),
  ]);
  if (!ready || closed) return secure.destroy(), null;
  secure.write(bindingRequest());
  const end = Date.now() + 3000;
  while (Date.now() < end && !closed) {
    if (received.length >= 20 && received.length >= 20 + received.readUInt16BE(2)) {
      secure.destroy();
      return formatEndpoint(new Response(new Uint8Array(received.subarray(0, 20 + received.readUInt16BE(2)))).addresses(Attr.XorMappedAddress)[0]!);
    }
    await Bun.sleep(10);
  }
  secure.destroy();
  return null;
}

test("--tls-proxy-port: a PROXY header in clear, then the client's TLS; the claimed client is the XOR-MAPPED-ADDRESS (v1 and v2)", async () => {
  expect(await bindOverTls(`PROXY TCP4 203.0.113.50 127.0.0.1 40050 ${tlsProxyPort}\r\n`)).toBe("203.0.113.50:40050");
  expect(await bindOverTls(encodeProxyV2(parseEndpoint("2001:db8::50", 40051), parseEndpoint("2001:db8::1", 443)))).toBe("[2001:db8::50]:40051");
});

test("--tls-proxy-port: TLS without a header, or a malformed header, is closed", async () => {
  expect(await bindOverTls(new Uint8Array(0))).toBeNull();
  expect(await bindOverTls("PROXY TCP4 203.0.113.51 127.0.0.1\r\n")).toBeNull();
});

/**
 * A load balancer in TCP mode, as HAProxy's `send-proxy` does it: accepts a client, connects to `target`,
 * writes a PROXY v1 line naming the client, then copies bytes both ways without looking at them.
 */
async function startBalancer(target: number): Promise<{ port: number; close(): void }> {
  const port = freePort();
  const server = createServer((client) => {
    const upstream = connect({ host: "127.0.0.1", port: target });
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    upstream.once("connect", () => {
      upstream.write(`PROXY TCP4 ${client.remoteAddress} 127.0.0.1 ${client.remotePort} ${port}\r\n`);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", () => r()));
  return { port, close: () => server.close() };
}

e2eTest("turnutils_uclient over TLS through a balancer that passes TLS through (PROXY v1 + --tls-proxy-port) relays", async () => {
  const authed = await startBunturn({
    args: ["--cert", cert, "--pkey", key, "--tls-listening-port", String(freePort()), "--tls-proxy-port", String(freePort())],
  });
  const tlsProxy = Number(/127\.0\.0\.1:(\d+) \(TLS, PROXY protocol\)/.exec(authed.output())?.[1]);
  const balancer = await startBalancer(tlsProxy);
  const peer = await startPeer();
  try {
    const r = await runUclient(["-t", "-S", "-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(peer.port), "-p", String(balancer.port), "-n", "20", "-l", "120", "-m", "1", "127.0.0.1"]);
    expect(r.sent).toBeGreaterThan(0);
    expect(r.received).toBe(r.sent);
  } finally {
    balancer.close();
    await peer.stop();
    await authed.stop();
  }
});
