/**
 * The libssl binding on its own: contexts refuse bad material with OpenSSL's words, sessions handshake
 * and carry bytes in memory mode and on a socket, a record cut across reads comes out whole once
 * complete, close_notify is seen, and a real client (openssl s_client) talks to a memory-mode server.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  acceptConnection, AF_INET, boundPort, EAGAIN, SOCK_NONBLOCK, libc, openTcpListener, SOCK_STREAM, SOCKADDR_SLOT, writeSockaddr,
} from "../../ffi/index.ts";
import { SSL_CTRL_SET_MAX_PROTO_VERSION, TLS1_2_VERSION, TLS1_3_VERSION } from "../../ffi/libssl.ts";
import { TlsContext } from "../../ffi/tls-context.ts";
import { TLS_CLOSED, TLS_FAILED, TLS_WANT_READ, TlsSession } from "../../ffi/tls-session.ts";
import { selfSignedCert } from "../e2e/harness.ts";
import { LOOPBACK4, waitReadable } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "bunturn-libssl-"));
const { cert, key } = selfSignedCert(dir);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const scratch = new Uint8Array(65536);
const EINPROGRESS = 115;
const text = (s: string) => new TextEncoder().encode(s);

/** Moves every pending ciphertext byte from one memory session to the other. */
function pump(from: TlsSession, to: TlsSession): number {
  let moved = 0;
  for (let n; (n = from.takeOutput(scratch, 0, scratch.length)) > 0; moved += n) to.feed(scratch, 0, n);
  return moved;
}

function handshakeInMemory(server: TlsSession, client: TlsSession): void {
  for (let turn = 0; turn < 10; turn++) {
    const c = client.handshake();
    pump(client, server);
    const s = server.handshake();
    pump(server, client);
    if (c === 1 && s === 1) return;
    if (c === TLS_FAILED || s === TLS_FAILED) throw new Error(`handshake failed: ${server.failure} ${client.failure}`);
  }
  throw new Error("handshake did not finish in 10 turns");
}

function readAll(session: TlsSession): string {
  const out = new Uint8Array(4096);
  let length = 0;
  for (let n; (n = session.read(out, length, out.length - length)) > 0; length += n);
  return new TextDecoder().decode(out.subarray(0, length));
}

describe("TlsContext", () => {
  test("loads a certificate chain and its key", () => {
    TlsContext.server({ certFile: cert, keyFile: key }).free();
  });

  test("refuses a key that does not belong to the certificate, in OpenSSL's words", () => {
    const other = selfSignedCert(mkdtempSync(join(dir, "other-")));
    expect(() => TlsContext.server({ certFile: cert, keyFile: other.key })).toThrow(/private key.*key values mismatch/);
  });

  test("refuses a missing file and a file that is not PEM", () => {
    expect(() => TlsContext.server({ certFile: join(dir, "absent.pem"), keyFile: key })).toThrow(/cannot load the certificate.*(No such file|system library)/);
    const garbage = join(dir, "garbage.pem");
    writeFileSync(garbage, "not a certificate\n");
    expect(() => TlsContext.server({ certFile: garbage, keyFile: key })).toThrow(/cannot load the certificate.*no start line/);
    expect(() => TlsContext.server({ certFile: cert, keyFile: garbage })).toThrow(/cannot load the private key/);
  });

  test("an encrypted key loads with its passphrase, fails without it or with a wrong one (never a prompt)", () => {
    const encrypted = join(dir, "encrypted.pem");
    const run = Bun.spawnSync(["openssl", "pkey", "-in", key, "-aes256", "-passout", "pass:sesame", "-out", encrypted], { stderr: "pipe" });
    expect(run.exitCode).toBe(0);
    TlsContext.server({ certFile: cert, keyFile: encrypted, keyPassphrase: "sesame" }).free();
    expect(() => TlsContext.server({ certFile: cert, keyFile: encrypted, keyPassphrase: "wrong" })).toThrow(/cannot load the private key/);
    expect(() => TlsContext.server({ certFile: cert, keyFile: encrypted })).toThrow(/give --pkey-pwd/);
  });

  test("a cipher list with no usable suite is refused", () => {
    expect(() => TlsContext.server({ certFile: cert, keyFile: key, cipherList: "NO-SUCH-CIPHER" })).toThrow(/no usable cipher.*no cipher match/);
  });
});

describe("TlsSession in memory", () => {
  const server = TlsContext.server({ certFile: cert, keyFile: key });
  const client = TlsContext.client();

  test("handshakes, then carries bytes both ways", () => {
    const s = TlsSession.inMemory(server);
    const c = TlsSession.inMemory(client, false);
    handshakeInMemory(s, c);
    expect(s.describe()).toStartWith("TLSv1.3 ");
    expect(c.write(text("ping"), 0, 4)).toBe(4);
    pump(c, s);
    expect(readAll(s)).toBe("ping");
    expect(s.write(text("pong"), 0, 4)).toBe(4);
    pump(s, c);
    expect(readAll(c)).toBe("pong");
    s.free();
    c.free();
  });

  test("a record split across reads comes out whole once its last byte arrives", () => {
    const s = TlsSession.inMemory(server);
    const c = TlsSession.inMemory(client, false);
    handshakeInMemory(s, c);
    c.write(text("one whole message"), 0, 17);
    const record = new Uint8Array(scratch.subarray(0, c.takeOutput(scratch, 0, scratch.length)));
    const out = new Uint8Array(64);
    for (let i = 0; i < record.length - 1; i++) {
      s.feed(record, i, 1);
      expect(s.read(out, 0, out.length)).toBe(TLS_WANT_READ);
    }
    s.feed(record, record.length - 1, 1);
    expect(s.read(out, 0, out.length)).toBe(17);
    expect(new TextDecoder().decode(out.subarray(0, 17))).toBe("one whole message");
    s.free();
    c.free();
  });

  test("close_notify reads as TLS_CLOSED on the other side", () => {
    const s = TlsSession.inMemory(server);
    const c = TlsSession.inMemory(client, false);
    handshakeInMemory(s, c);
    s.shutdown();
    expect(pump(s, c)).toBeGreaterThan(0);
    expect(c.read(scratch, 0, 100)).toBe(TLS_CLOSED);
    s.free();
    c.free();
  });

  test("a TLS 1.3-only server refuses a TLS 1.2 client with OpenSSL's reason", () => {
    const strict = TlsContext.server({ certFile: cert, keyFile: key, minVersion: TLS1_3_VERSION });
    const old = TlsContext.client();
    old.ctrl(SSL_CTRL_SET_MAX_PROTO_VERSION, TLS1_2_VERSION);
    const s = TlsSession.inMemory(strict);
    const c = TlsSession.inMemory(old, false);
    expect(() => handshakeInMemory(s, c)).toThrow(/unsupported protocol/);
    s.free();
    c.free();
    strict.free();
    old.free();
  });

  test("garbage instead of a ClientHello fails the handshake", () => {
    const s = TlsSession.inMemory(server);
    s.feed(text("GET / HTTP/1.1\r\n\r\n"), 0, 18);
    expect(s.handshake()).toBe(TLS_FAILED);
    expect(s.failure).toMatch(/wrong version number|http request/);
    s.free();
  });
});

/** A connected TCP pair on loopback: [client fd, server fd], both non-blocking. */
function loopbackPair(): [number, number] {
  const listener = openTcpListener({ family: 4, address: LOOPBACK4, port: 0 });
  const clientFd = libc.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  const name = new Uint8Array(SOCKADDR_SLOT);
  const connected = libc.connect(clientFd, name, writeSockaddr(name, 0, LOOPBACK4, boundPort(listener)));
  expect(connected === 0 || connected === -EINPROGRESS).toBe(true);
  expect(waitReadable(listener)).toBe(true);
  const serverFd = acceptConnection(listener, name, new Uint32Array(1));
  libc.close(listener);
  expect(serverFd).toBeGreaterThan(0);
  return [clientFd, serverFd];
}

describe("on sockets", () => {
  test("a memory-mode server over a real TCP connection serves a client session on the socket", () => {
    const [clientFd, serverFd] = loopbackPair();
    const s = TlsSession.inMemory(TlsContext.server({ certFile: cert, keyFile: key }));
    const c = TlsSession.onSocket(TlsContext.client(), clientFd, false);
    const wire = new Uint8Array(65536);
    let done = false;
    for (let turn = 0; turn < 20 && !done; turn++) {
      const cr = c.handshake();
      if (waitReadable(serverFd, 200)) {
        const n = libc.read(serverFd, wire, wire.length);
        if (n > 0) s.feed(wire, 0, n);
      }
      const sr = s.handshake();
      const out = s.takeOutput(wire, 0, wire.length);
      if (out > 0) expect(libc.write(serverFd, wire, out)).toBe(out);
      expect(sr).not.toBe(TLS_FAILED);
      done = cr === 1 && sr === 1;
    }
    expect(done).toBe(true);
    expect(c.write(text("over tcp"), 0, 8)).toBe(8);
    expect(waitReadable(serverFd)).toBe(true);
    s.feed(wire, 0, libc.read(serverFd, wire, wire.length));
    expect(readAll(s)).toBe("over tcp");
    expect(c.kernelSends()).toBe(false); // no SSL_OP_ENABLE_KTLS on this context
    s.free();
    c.free();
    libc.close(clientFd);
    libc.close(serverFd);
  });

  test("openssl s_client handshakes with a memory-mode server and its bytes arrive", async () => {
    const listener = openTcpListener({ family: 4, address: LOOPBACK4, port: 0 });
    const client = Bun.spawn(["openssl", "s_client", "-connect", `127.0.0.1:${boundPort(listener)}`, "-quiet", "-tls1_2"], {
      stdin: "pipe", stdout: "pipe", stderr: "pipe",
    });
    const name = new Uint8Array(SOCKADDR_SLOT);
    let fd = -EAGAIN;
    for (const end = Date.now() + 5000; fd < 0 && Date.now() < end; await Bun.sleep(5)) fd = acceptConnection(listener, name, new Uint32Array(1));
    libc.close(listener);
    expect(fd).toBeGreaterThan(0);
    const s = TlsSession.inMemory(TlsContext.server({ certFile: cert, keyFile: key }));
    const wire = new Uint8Array(65536);
    let received = "";
    client.stdin.write("hello from s_client\n");
    client.stdin.flush();
    for (const end = Date.now() + 5000; !received.includes("\n") && Date.now() < end; await Bun.sleep(5)) {
      const n = libc.read(fd, wire, wire.length);
      if (n > 0) s.feed(wire, 0, n);
      const h = s.handshake();
      expect(h).not.toBe(TLS_FAILED);
      if (h === 1) received += readAll(s);
      const out = s.takeOutput(wire, 0, wire.length);
      if (out > 0) libc.write(fd, wire, out);
    }
    expect(received).toBe("hello from s_client\n");
    expect(s.describe()).toStartWith("TLSv1.2 ");
    client.kill();
    await client.exited;
    s.free();
    libc.close(fd);
  });
});
