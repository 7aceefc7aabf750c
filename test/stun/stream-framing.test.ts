import { describe, expect, test } from "bun:test";
import { nextStreamFrame, streamPadding } from "../../src/stun/stream-framing.ts";

const stun = (bodyLength: number) => {
  const m = new Uint8Array(20 + bodyLength);
  m.set([0x00, 0x01, bodyLength >> 8, bodyLength & 0xff, 0x21, 0x12, 0xa4, 0x42]);
  return m;
};
const channel = (length: number, pad: boolean) => {
  const total = 4 + length + (pad ? streamPadding(4 + length) : 0);
  const m = new Uint8Array(total);
  m.set([0x40, 0x01, length >> 8, length & 0xff]);
  m.fill(7, 4, 4 + length);
  return m;
};
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

describe("STUN and ChannelData on a stream (RFC 8656 §12.5)", () => {
  test("a STUN message is its header plus its length; partial input waits", () => {
    const m = stun(8);
    expect(nextStreamFrame(m, 0, m.length)).toBe(28);
    expect(nextStreamFrame(m, 0, 27)).toBe(0);
    expect(nextStreamFrame(m, 0, 3)).toBe(0);
  });

  test("garbage cannot start a frame: wrong cookie, odd STUN length, first bits 10/11", () => {
    const m = stun(8);
    m[4] = 0;
    expect(nextStreamFrame(m, 0, m.length)).toBe(-1);
    const odd = stun(8);
    odd[3] = 7;
    expect(nextStreamFrame(odd, 0, odd.length)).toBe(-1);
    expect(nextStreamFrame(new Uint8Array([0x80, 0, 0, 0]), 0, 4)).toBe(-1);
    expect(nextStreamFrame(new Uint8Array([0xc0, 0, 0, 0]), 0, 4)).toBe(-1);
  });

  test("padded ChannelData (what the RFC requires) is consumed with its padding", () => {
    const bytes = concat(channel(5, true), stun(0));
    expect(nextStreamFrame(bytes, 0, bytes.length)).toBe(12);
    expect(nextStreamFrame(bytes, 12, bytes.length)).toBe(20);
  });

  test("unpadded ChannelData (turnutils_uclient without -D) is consumed without", () => {
    const bytes = concat(channel(5, false), channel(3, false), stun(4));
    expect(nextStreamFrame(bytes, 0, bytes.length)).toBe(9);
    expect(nextStreamFrame(bytes, 9, bytes.length)).toBe(7);
    expect(nextStreamFrame(bytes, 16, bytes.length)).toBe(24);
    // Zero bytes that are really the start of a STUN message are not mistaken for padding.
    const tricky = concat(channel(7, false), stun(0));
    expect(nextStreamFrame(tricky, 0, tricky.length)).toBe(11);
  });

  test("output padding: ChannelData to 4 bytes, STUN already aligned", () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => streamPadding(4 + n))).toEqual([0, 3, 2, 1, 0, 3]);
    expect(streamPadding(20)).toBe(0);
  });
});

test("ChannelData frames carry RFC 5766's whole channel range (0x4000-0x7FFF): coturn's clients bind 0x5000 and up", () => {
  expect(nextStreamFrame(new Uint8Array([0x7f, 0xff, 0, 4, 1, 2, 3, 4]), 0, 8)).toBe(8);
  expect(nextStreamFrame(new Uint8Array([0x50, 0x00, 0, 4, 1, 2, 3, 4]), 0, 8)).toBe(8);
  expect(nextStreamFrame(new Uint8Array([0x4f, 0xff, 0, 4, 1, 2, 3, 4]), 0, 8)).toBe(8);
  expect(nextStreamFrame(new Uint8Array([0x80, 0x00, 0, 4, 1, 2, 3, 4]), 0, 8)).toBe(-1);
});
