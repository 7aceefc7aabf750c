/**
 * TLS terminated in the engine's TcpTransport (tls-connection.ts), driven by hand through our epoll
 * against Bun's own TLS client, in both session modes: memory BIOs (user-space TLS, what this machine
 * runs) and on the socket (what kernel TLS needs; here the kernel leaves the records to OpenSSL).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Epoll, boundPort } from "../../ffi/index.ts";
import { TlsContext } from "../../ffi/tls-context.ts";
import { SLOT } from "../../src/engine/counters.ts";
import { TcpTransport } from "../../src/engine/tcp-transport.ts";
import { encodeChannelData } from "../../src/stun/index.ts";
import type { ConnectionId } from "../../src/turn/api.ts";
import { selfSignedCert } from "../e2e/harness.ts";
import { LOOPBACK, bindingRequest, cleanup, runCleanup, transportPump } from "./tcp-harness.ts";

afterEach(runCleanup);

const dir = mkdtempSync(join(tmpdir(), "bunturn-tls-transport-"));
const first = selfSignedCert(mkdtempSync(join(dir, "a-")));
const second = selfSignedCert(mkdtempSync(join(dir, "b-")));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
const fingerprint = (pem: string) => new X509Certificate(readFileSync(pem)).fingerprint256;

function setup(onSocket: boolean, timeouts: { handshake?: number; firstMessage?: number } = {}) {
  const epoll = new Epoll(16);
  const frames: Array<{ id: ConnectionId; bytes: Uint8Array }> = [];
  const closed: number[] = [];
  const counters = new Float64Array(SLOT.tlsKernel + 1);
  let pair = first;
  const tcp = new TcpTransport(epoll, {
    frame: (id, _client, bytes, offset, length) => frames.push({ id, bytes: bytes.slice(offset, offset + length) }),
    closed: (id) => closed.push(id),
  }, {
    counters,
    tls: { context: () => TlsContext.server({ certFile: pair.cert, keyFile: pair.key }), onSocket },
    tlsHandshakeTimeoutMs: timeouts.handshake ?? 10_000,
    firstMessageTimeoutMs: timeouts.firstMessage ?? 10_000,
  });
  const port = boundPort(tcp.listenTls(4, LOOPBACK, 0));
  cleanup.push(() => {
    tcp.closeAll();
    epoll.close();
  });
  const pump = transportPump(epoll, tcp, 3000);
  const useSecond = () => {
    pair = second;
    tcp.tls!.reload();
  };
  return { tcp, frames, closed, counters, port, pump, useSecond };
}

async function client(port: number, pump: (done: () => boolean) => Promise<boolean>) {
  const received: number[] = [];
  let ready = false;
  const socket: TLSSocket = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => void (ready = true));
  socket.on("data", (d: Buffer) => void received.push(...d));
  socket.on("error", () => {});
  cleanup.push(() => socket.destroy());
  expect(await pump(() => ready)).toBe(true);
  return { socket, received };
}

for (const onSocket of [false, true]) {
  describe(onSocket ? "sessions on the socket" : "sessions with memory BIOs", () => {
    test("handshake, a message split across writes framed whole, a padded answer, counted as TLS", async () => {
      const { tcp, frames, counters, port, pump } = setup(onSocket);
      const { socket, received } = await client(port, pump);
      const request = bindingRequest();
      socket.write(request.subarray(0, 7));
      await pump(() => frames.length > 0);
      expect(frames.length).toBe(0);
      socket.write(request.subarray(7));
      expect(await pump(() => frames.length === 1)).toBe(true);
      expect(Array.from(frames[0]!.bytes)).toEqual(Array.from(request));
      expect(tcp.isTls(frames[0]!.id)).toBe(true);
      expect(tcp.send(frames[0]!.id, encodeChannelData(0x4002, new Uint8Array([9])))).toBe(true);
      expect(await pump(() => received.length >= 8)).toBe(true);
      expect(received).toEqual([0x40, 0x02, 0x00, 0x01, 9, 0, 0, 0]);
      expect(counters[SLOT.tlsHandshakes]).toBe(1);
      expect(counters[SLOT.tlsKernel]).toBe(0); // no kTLS on this context (and none in this kernel)
    });

    test("a 60 000-byte ChannelData (several records) arrives whole both ways", async () => {
      const { tcp, frames, port, pump } = setup(onSocket);
      const { socket, received } = await client(port, pump);
      socket.write(bindingRequest());
      expect(await pump(() => frames.length === 1)).toBe(true);
      const payload = new Uint8Array(60_000).map((_, i) => i % 251);
      socket.write(encodeChannelData(0x4001, payload));
      expect(await pump(() => frames.length === 2)).toBe(true);
      expect(frames[1]!.bytes.length).toBe(60_004);
      expect(frames[1]!.bytes.subarray(4)).toEqual(payload);
      expect(tcp.send(frames[0]!.id, encodeChannelData(0x4001, payload))).toBe(true);
      expect(await pump(() => received.length >= 60_004)).toBe(true);
      expect(new Uint8Array(received.slice(4))).toEqual(payload);
    });

    test("a client that never finishes its handshake is closed by the sweep after the handshake timeout", async () => {
      const { tcp, closed, port, pump, counters } = setup(onSocket, { handshake: 50 });
      const raw = tcpConnect({ host: "127.0.0.1", port });
      raw.on("error", () => {});
      cleanup.push(() => raw.destroy());
      raw.write(new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])); // half a ClientHello
      await pump(() => tcp.connectionCount === 1);
      expect(tcp.sweep(Date.now(), 60_000, () => false)).toBe(0);
      await Bun.sleep(80);
      expect(tcp.sweep(Date.now(), 60_000, () => false)).toBe(1);
      expect(closed.length).toBe(1);
      expect(counters[SLOT.tcpClosedByLimit]).toBe(1);
    });

    test("after the handshake, the first-message clock starts: a silent client goes after it", async () => {
      const { tcp, closed, port, pump } = setup(onSocket, { handshake: 10_000, firstMessage: 50 });
      await client(port, pump);
      await pump(() => false, 100); // the handshake completes on the server too
      expect(tcp.sweep(Date.now(), 60_000, () => false)).toBe(1);
      expect(closed.length).toBe(1);
    });

    test("bytes that are not TLS close the connection", async () => {
      const { tcp, closed, port, pump } = setup(onSocket);
      const raw = tcpConnect({ host: "127.0.0.1", port });
      raw.on("error", () => {});
      cleanup.push(() => raw.destroy());
      raw.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      expect(await pump(() => closed.length === 1)).toBe(true);
      expect(tcp.connectionCount).toBe(0);
    });

    test("a reload serves the new certificate to new connections; an open one keeps its session", async () => {
      const { tcp, frames, port, pump, useSecond } = setup(onSocket);
      const early = await client(port, pump);
      expect(early.socket.getPeerCertificate().fingerprint256).toBe(fingerprint(first.cert));
      useSecond();
      const late = await client(port, pump);
      expect(late.socket.getPeerCertificate().fingerprint256).toBe(fingerprint(second.cert));
      early.socket.write(bindingRequest());
      expect(await pump(() => frames.length === 1)).toBe(true);
      expect(tcp.send(frames[0]!.id, encodeChannelData(0x4003, new Uint8Array([1, 2, 3, 4])))).toBe(true);
      expect(await pump(() => early.received.length >= 8)).toBe(true);
    });
  });
}
