/**
 * How TLS records meet the engine's reads (tls-connection.ts, memory BIOs): a read that is exactly one
 * record is decrypted with one SSL_read, and every other cut (a record in pieces, a header split, two
 * records at once, a record and a half) must still deliver each frame whole and in order. The client is
 * an OpenSSL session of our own (ffi/tls-session.ts) over a plain socket, so the test decides where the
 * ciphertext is cut; Nagle is off and the server reads between writes, so each write is one read.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { connect as tcpConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { boundPort, Epoll } from "../../ffi/index.ts";
import { TlsContext } from "../../ffi/tls-context.ts";
import { TlsSession } from "../../ffi/tls-session.ts";
import { SLOT } from "../../src/engine/counters.ts";
import { TcpTransport } from "../../src/engine/tcp-transport.ts";
import { encodeChannelData } from "../../src/stun/index.ts";
import type { ConnectionId } from "../../src/turn/api.ts";
import { selfSignedCert } from "../e2e/harness.ts";
import { bindingRequest, cleanup, LOOPBACK, runCleanup, transportPump } from "./tcp-harness.ts";

afterEach(runCleanup);

const dir = mkdtempSync(join(tmpdir(), "bunturn-tls-records-"));
const pair = selfSignedCert(dir);
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

function setup() {
  const epoll = new Epoll(16);
  const frames: Array<{ id: ConnectionId; bytes: Uint8Array }> = [];
  const tcp = new TcpTransport(epoll, {
    frame: (id, _client, bytes, offset, length) => frames.push({ id, bytes: bytes.slice(offset, offset + length) }),
    closed: () => {},
  }, {
    counters: new Float64Array(SLOT.tlsKernel + 1),
    tls: { context: () => TlsContext.server({ certFile: pair.cert, keyFile: pair.key }), onSocket: false },
  });
  const port = boundPort(tcp.listenTls(4, LOOPBACK, 0));
  cleanup.push(() => {
    tcp.closeAll();
    epoll.close();
  });
  return { tcp, frames, port, pump: transportPump(epoll, tcp, 3000) };
}

/** A TLS client whose ciphertext the test cuts: `seal` returns a frame's record(s), `send` writes bytes as they are. */
async function client(port: number, pump: (done: () => boolean, ms?: number) => Promise<boolean>) {
  const context = TlsContext.client();
  const session = TlsSession.inMemory(context, false);
  const socket: Socket = tcpConnect({ host: "127.0.0.1", port, noDelay: true });
  socket.on("error", () => {});
  cleanup.push(() => {
    socket.destroy();
    session.free();
    context.free();
  });
  const scratch = new Uint8Array(70_000);
  const output = () => scratch.slice(0, session.takeOutput(scratch, 0, scratch.length));
  const received: number[] = [];
  let done = false;
  const step = () => {
    done = session.handshake() === 1;
    const out = output();
    if (out.length > 0) socket.write(out);
  };
  socket.on("data", (d: Buffer) => {
    session.feed(d, 0, d.length);
    if (!done) return step();
    for (let n = session.read(scratch, 0, scratch.length); n > 0; n = session.read(scratch, 0, scratch.length)) received.push(...scratch.subarray(0, n));
  });
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  step();
  expect(await pump(() => done)).toBe(true);
  const seal = (frame: Uint8Array): Uint8Array => {
    for (let done = 0; done < frame.length; ) {
      const n = session.write(frame, done, frame.length - done); // a record takes 16 KiB at most
      expect(n).toBeGreaterThan(0);
      done += n;
    }
    return output();
  };
  const send = async (bytes: Uint8Array) => {
    await new Promise<void>((resolve) => socket.write(bytes, () => resolve()));
    await pump(() => false, 15); // the server reads this write before the next one
  };
  return { seal, send, received };
}

const frame = (channel: number, fill: number, length: number) => encodeChannelData(channel, new Uint8Array(length).fill(fill));

test("records cut every way arrive whole and in order: lone, split, header split, two at once, one and a half", async () => {
  const { tcp, frames, port, pump } = setup();
  const { seal, send, received } = await client(port, pump);
  await send(seal(bindingRequest()));
  expect(await pump(() => frames.length === 1)).toBe(true);
  const expected: Uint8Array[] = [];
  const next = (fill: number, length = 100) => {
    const f = frame(0x4000 + fill, fill, length);
    expected.push(f);
    return seal(f);
  };
  await send(next(1)); // one record, one read
  const split = next(2);
  await send(split.subarray(0, 40)); // a record in two reads
  expect(frames.length).toBe(2);
  await send(split.subarray(40));
  await send(next(3)); // one record again, right after a split one
  const header = next(4);
  await send(header.subarray(0, 3)); // the header itself cut
  await send(header.subarray(3));
  await send(next(5));
  const a = next(6);
  const b = next(7);
  await send(new Uint8Array([...a, ...b])); // two records in one read
  await send(next(8));
  const c = next(9);
  const d = next(10);
  const both = new Uint8Array([...c, ...d]);
  await send(both.subarray(0, c.length + 20)); // a record and the start of the next
  await send(both.subarray(c.length + 20));
  await send(next(11, 20_000)); // two records (16 KiB each at most), one read
  await send(next(12));
  expect(await pump(() => frames.length === 1 + expected.length)).toBe(true);
  expect(frames.slice(1).map((f) => Array.from(f.bytes))).toEqual(expected.map((f) => Array.from(f)));
  // Answers go back through the same session: several in one turn, each its own record, in order.
  const answers = [frame(0x4001, 0xa1, 8), frame(0x4001, 0xa2, 12), frame(0x4001, 0xa3, 4)];
  for (const answer of answers) expect(tcp.send(frames[0]!.id, answer)).toBe(true);
  expect(await pump(() => received.length >= 36)).toBe(true);
  expect(received).toEqual(answers.flatMap((f) => Array.from(f)));
});

test("a partial record left in OpenSSL is not mistaken for a record boundary", async () => {
  const { frames, port, pump } = setup();
  const { seal, send } = await client(port, pump);
  await send(seal(bindingRequest()));
  expect(await pump(() => frames.length === 1)).toBe(true);
  // The first read ends inside a record (OpenSSL reads it ahead and waits); the second read is the rest
  // and one more record, cut so that its bytes 3-4 happen to read as a header announcing exactly the rest
  // of the read. Taken for a lone record, the second record would wait for a read that never comes.
  const firstPlain = frame(0x4001, 1, 100);
  const first = seal(firstPlain);
  const overhead = first.length - firstPlain.length; // header, content type, tag
  let cut = -1;
  let dataLength = 0;
  for (let k = 1; k + 5 <= first.length && cut < 0; k++) {
    const announced = (first[k + 3]! << 8) | first[k + 4]!;
    const secondLength = announced + 5 - (first.length - k);
    const plain = secondLength - overhead;
    if (plain >= 8 && plain <= 16_384 && plain % 4 === 0) [cut, dataLength] = [k, plain - 4];
  }
  expect(cut).toBeGreaterThan(0);
  const second = seal(frame(0x4002, 2, dataLength));
  const rest = new Uint8Array([...first.subarray(cut), ...second]);
  expect(rest.length).toBe(5 + ((rest[3]! << 8) | rest[4]!));
  await send(first.subarray(0, cut));
  await send(rest);
  expect(await pump(() => frames.length === 3, 1000)).toBe(true);
  expect(frames[2]!.bytes.length).toBe(4 + dataLength);
});
