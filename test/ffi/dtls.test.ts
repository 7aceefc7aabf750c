/**
 * ffi/dtls.ts at the FFI level: the listening object's stateless cookie exchange (DTLSv1_listen with
 * JSCallbacks for the cookie) and one association over memory BIOs, against an OpenSSL DTLS client.
 */
import { afterAll, expect, test } from "bun:test";
import { ptr } from "bun:ffi";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DTLS_WANT_READ, DtlsListener, type CookieJudge } from "../../ffi/dtls.ts";
import { DTLS_RECORD_HEADER } from "../../ffi/libssl.ts";
import { TlsContext } from "../../ffi/tls-context.ts";
import { selfSignedCert } from "../e2e/harness.ts";
import { DtlsTestClient } from "./dtls-client.ts";

const dir = mkdtempSync(join(tmpdir(), "bunturn-ffi-dtls-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const { cert: certFile, key: keyFile } = selfSignedCert(dir);

/** A judge that hands out one fixed cookie and counts its calls. */
function judge(cookie = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])) {
  const calls = { generate: 0, verify: 0 };
  const j: CookieJudge = {
    generate(into) {
      calls.generate++;
      into.set(cookie);
      return cookie.length;
    },
    verify(c) {
      calls.verify++;
      return c.length === cookie.length && c.every((b, i) => b === cookie[i]);
    },
  };
  return { j, calls };
}

function setup() {
  const context = TlsContext.server({ certFile, keyFile, dtls: true });
  const { j, calls } = judge();
  const listener = new DtlsListener(context, j);
  const buffer = new Uint8Array(70_000);
  const address = ptr(buffer) as unknown as number;
  const listen = (datagram: Uint8Array) => {
    buffer.set(datagram);
    return listener.listen(address, datagram.length);
  };
  const output = () => {
    const out = new Uint8Array(65536);
    return out.slice(0, listener.takeOutput(out, 0, out.length));
  };
  return { context, listener, calls, listen, output, buffer, address };
}

test("a ClientHello without a cookie: a HelloVerifyRequest carrying the judge's cookie, and no session", () => {
  const { context, listener, calls, listen, output } = setup();
  const client = new DtlsTestClient();
  client.handshake();
  expect(listen(client.takeOutput()!)).toBeNull();
  const hvr = output();
  expect(hvr[0]).toBe(22);
  expect(hvr[DTLS_RECORD_HEADER]).toBe(3); // HelloVerifyRequest
  // body: server_version (2), cookie length (1), cookie
  expect(Array.from(hvr.subarray(DTLS_RECORD_HEADER + 12 + 3))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  expect(calls.generate).toBe(1);
  client.free();
  listener.close();
  context.free();
});

test("the ClientHello echoing the cookie becomes a session that completes the handshake and carries data both ways", () => {
  const { context, listener, listen, output, buffer, address } = setup();
  const client = new DtlsTestClient();
  client.handshake();
  listen(client.takeOutput()!);
  client.feed(output());
  client.handshake();
  const session = listen(client.takeOutput()!)!;
  expect(session).not.toBeNull();
  expect(session.established).toBe(false);
  const out = new Uint8Array(65536);
  for (let round = 0; round < 5 && !session.established; round++) {
    session.handshake();
    const n = session.takeOutput(out, 0, out.length);
    if (n > 0) client.feed(out.slice(0, n));
    client.handshake();
    const reply = client.takeOutput();
    if (reply) {
      buffer.set(reply);
      session.feed(address, reply.length);
    }
  }
  session.handshake();
  expect(session.established).toBe(true);
  expect(session.retransmitIn()).toBe(-1); // no flight waits for an answer any more
  // Two records in one datagram (RFC 6347 §4.1.1), each read on its own.
  client.write(new TextEncoder().encode("one"));
  client.write(new TextEncoder().encode("two"));
  const both = client.takeOutput()!;
  buffer.set(both);
  session.feed(address, both.length);
  const got: string[] = [];
  for (let n = session.read(address, 1000); n > 0; n = session.read(address, 1000)) got.push(new TextDecoder().decode(buffer.subarray(0, n)));
  expect(got).toEqual(["one", "two"]);
  expect(session.read(address, 1000)).toBe(DTLS_WANT_READ);
  const hello = new TextEncoder().encode("hello");
  expect(session.write(hello, 0, hello.length)).toBe(5);
  const n = session.takeOutput(out, 0, out.length);
  client.feed(out.slice(0, n));
  expect(new TextDecoder().decode(client.read()!)).toBe("hello");
  session.free();
  client.free();
  listener.close();
  context.free();
});

test("garbage, a record that is no ClientHello, and an oversized datagram are dropped without an answer, and leave nothing for the next client", () => {
  const { context, listener, calls, listen, output } = setup();
  expect(listen(new Uint8Array([22, 0xfe, 0xfd, 1, 2, 3]))).toBeNull();
  expect(output().length).toBe(0);
  const appData = new Uint8Array(40);
  appData.set([23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 27]);
  expect(listen(appData)).toBeNull();
  expect(output().length).toBe(0);
  const big = new Uint8Array(20_000).fill(22);
  expect(listen(big)).toBeNull();
  output();
  expect(calls.generate).toBe(0);
  // The next, well-formed ClientHello gets its HelloVerifyRequest as if nothing came before.
  const client = new DtlsTestClient();
  client.handshake();
  expect(listen(client.takeOutput()!)).toBeNull();
  const hvr = output();
  expect(hvr[DTLS_RECORD_HEADER]).toBe(3);
  expect(calls.generate).toBe(1);
  client.free();
  listener.close();
  context.free();
});

test("a wrong cookie gets another HelloVerifyRequest, never a session", () => {
  const context = TlsContext.server({ certFile, keyFile, dtls: true });
  let issued = 0;
  const j: CookieJudge = {
    generate(into) {
      into.set([issued++, 9, 9, 9]);
      return 4;
    },
    verify: () => false,
  };
  const listener = new DtlsListener(context, j);
  const buffer = new Uint8Array(4096);
  const client = new DtlsTestClient();
  const out = new Uint8Array(4096);
  client.handshake();
  // The first ClientHello has no cookie; the second echoes one the judge refuses.
  for (let round = 0; round < 2; round++) {
    const hello = client.takeOutput()!;
    buffer.set(hello);
    expect(listener.listen(ptr(buffer) as unknown as number, hello.length)).toBeNull();
    const n = listener.takeOutput(out, 0, out.length);
    expect(out[DTLS_RECORD_HEADER]).toBe(3);
    client.feed(out.slice(0, n));
    client.handshake();
  }
  expect(issued).toBe(2);
  client.free();
  listener.close();
  context.free();
});
