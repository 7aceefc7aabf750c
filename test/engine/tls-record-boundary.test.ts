import { expect, test } from "bun:test";
import { RecordBoundary } from "../../src/engine/tls-record-boundary.ts";

/** A TLS record (RFC 8446 §5.1): application_data, legacy version 0x0303, 2-byte length, then the body. */
function record(bodyLength: number, fillByte = 0xab): Uint8Array {
  const r = new Uint8Array(5 + bodyLength).fill(fillByte);
  r.set([23, 3, 3, bodyLength >> 8, bodyLength & 0xff]);
  return r;
}

test("a stream is at a boundary exactly after whole records, however it is cut", () => {
  // Bodies that look like headers (0x17 0x03 0x03 ...) must not confuse it: only lengths are followed.
  const stream = new Uint8Array(Buffer.concat([record(300, 0x17), record(0), record(5, 0x03), record(17_000)]));
  const ends = new Set<number>();
  for (let at = 0, i = 0; i < 4; i++) ends.add((at += 5 + [300, 0, 5, 17_000][i]!));
  for (const step of [1, 2, 3, 4, 5, 6, 7, 300, 305, 4096]) {
    const b = new RecordBoundary();
    expect(b.atBoundary()).toBe(true);
    for (let at = 0; at < stream.length; at += step) {
      const end = Math.min(at + step, stream.length);
      b.scan(stream, at, end);
      expect(b.atBoundary()).toBe(ends.has(end));
    }
  }
});

test("a read that is only a record's header is not a boundary (OpenSSL holds part of a record then)", () => {
  const b = new RecordBoundary();
  const r = record(100);
  b.scan(r, 0, 5);
  expect(b.atBoundary()).toBe(false);
  b.scan(r, 5, r.length);
  expect(b.atBoundary()).toBe(true);
});

test("a header split inside its length field still gives the right length", () => {
  const r = record(0x1234 & 0x3fff);
  for (let cut = 1; cut < 5; cut++) {
    const b = new RecordBoundary();
    b.scan(r, 0, cut);
    expect(b.atBoundary()).toBe(false);
    b.scan(r, cut, r.length - 1);
    expect(b.atBoundary()).toBe(false);
    b.scan(r, r.length - 1, r.length);
    expect(b.atBoundary()).toBe(true);
  }
});

test("a stream adopted mid-way (another engine saw its start) is never claimed to be at a boundary", () => {
  const b = new RecordBoundary(false);
  expect(b.atBoundary()).toBe(false);
  const r = record(10);
  b.scan(r, 0, r.length);
  expect(b.atBoundary()).toBe(false);
});
