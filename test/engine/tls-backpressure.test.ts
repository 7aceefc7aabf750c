/**
 * A TLS client that stops reading, in both session modes: the encrypted (memory BIOs) or plaintext (on
 * the socket) replies wait in the connection's backlog while the socket is full, all arrive in order once
 * the client reads again, and a client that never reads is closed at --max-tcp-buffer. The client is our
 * own OpenSSL session on a raw socket, so that "not reading" is exact.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AF_INET, EAGAIN, Epoll, SOCK_NONBLOCK, SOCK_STREAM, SOCKADDR_SLOT, boundPort, libc, writeSockaddr } from "../../ffi/index.ts";
import { TlsContext } from "../../ffi/tls-context.ts";
import { TLS_WANT_READ, TlsSession } from "../../ffi/tls-session.ts";
import { SLOT } from "../../src/engine/counters.ts";
import { TcpTransport } from "../../src/engine/tcp-transport.ts";
import { encodeChannelData } from "../../src/stun/index.ts";
import type { ConnectionId } from "../../src/turn/api.ts";
import { selfSignedCert } from "../e2e/harness.ts";
import { LOOPBACK, bindingRequest, cleanup, runCleanup, transportPump } from "./tcp-harness.ts";

afterEach(runCleanup);
const dir = mkdtempSync(join(tmpdir(), "bunturn-tls-backpressure-"));
const pair = selfSignedCert(dir);
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

const FRAME = 60_000;
const EINPROGRESS = 115;

async function setup(onSocket: boolean, maxBufferPerConnection: number) {
  const epoll = new Epoll(16);
  const frames: ConnectionId[] = [];
  const counters = new Float64Array(SLOT.tlsKernel + 1);
  const tcp = new TcpTransport(epoll, { frame: (id) => frames.push(id), closed: () => {} }, {
    counters, maxBufferPerConnection, maxBufferPerEngine: 64 << 20,
    tls: { context: () => TlsContext.server({ certFile: pair.cert, keyFile: pair.key }), onSocket },
  });
  const port = boundPort(tcp.listenTls(4, LOOPBACK, 0));
  const pump = transportPump(epoll, tcp, 3000);
  const fd = libc.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  const name = new Uint8Array(SOCKADDR_SLOT);
  const r = libc.connect(fd, name, writeSockaddr(name, 0, LOOPBACK, port));
  expect(r === 0 || r === -EINPROGRESS).toBe(true);
  const clientContext = TlsContext.client();
  const session = TlsSession.onSocket(clientContext, fd, false);
  cleanup.push(() => {
    session.free();
    clientContext.free();
    libc.close(fd);
    tcp.closeAll();
    epoll.close();
  });
  expect(await pump(() => session.handshake() === 1)).toBe(true);
  const request = bindingRequest();
  expect(session.write(request, 0, request.length)).toBe(request.length);
  expect(await pump(() => frames.length === 1)).toBe(true);
  return { tcp, id: frames[0]!, counters, session, pump };
}

const payload = (i: number) => new Uint8Array(FRAME).fill(i & 0xff);

for (const onSocket of [false, true]) {
  describe(onSocket ? "sessions on the socket" : "sessions with memory BIOs", () => {
    test("replies wait in the backlog while the client does not read, and all arrive in order once it does", async () => {
      const { tcp, id, session, pump } = await setup(onSocket, 64 << 20);
      let sent = 0;
      while (tcp.backlogOf(id) === 0 && sent < 2000) expect(tcp.send(id, encodeChannelData(0x4001, payload(sent++)))).toBe(true);
      expect(tcp.backlogOf(id)).toBeGreaterThan(0); // the socket filled up
      const got = new Uint8Array(FRAME + 4);
      let frames = 0;
      let at = 0;
      const readSome = () => {
        for (;;) {
          const n = session.read(got, at, got.length - at);
          if (n === TLS_WANT_READ || n === -EAGAIN || n <= 0) return frames === sent;
          at += n;
          if (at === got.length) {
            expect(got[4]).toBe(frames & 0xff);
            expect(got[got.length - 1]).toBe(frames & 0xff);
            frames++;
            at = 0;
          }
        }
      };
      expect(await pump(readSome, 10_000)).toBe(true);
      expect(tcp.backlogOf(id)).toBe(0);
    });

    test("a client that never reads is closed once its backlog passes --max-tcp-buffer", async () => {
      const { tcp, id, counters } = await setup(onSocket, 1 << 20);
      let sent = 0;
      while (tcp.send(id, encodeChannelData(0x4001, payload(sent))) && sent < 2000) sent++;
      expect(sent).toBeLessThan(2000);
      expect(tcp.connectionCount).toBe(0);
      expect(counters[SLOT.tcpClosedByLimit]).toBe(1);
    });
  });
}
