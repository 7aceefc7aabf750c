import { describe, expect, test } from "bun:test";
import {
  Attr, StunClass, StunDecoder, StunMethod, StunWriter, decodeStun, getAttribute, writeFingerprint,
  writeMessageIntegrity, encodeMessageType, methodOf, classOf, parseChannelData, encodeChannelData, channelDataLength,
  readErrorCode, writeErrorCode, readUnknownAttributes, writeUnknownAttributes, readReservationToken, writeReservationToken,
  readEvenPort, writeEvenPort, readAddressFamily, writeAddressFamily, writePasswordAlgorithms, readPasswordAlgorithms,
  readText, crc32,
} from "../../src/stun/index.ts";

const tid = Uint8Array.from({ length: 12 }, (_, i) => i + 1);
function message(build: (w: StunWriter) => void = () => {}): Uint8Array {
  const w = new StunWriter(StunMethod.Binding, StunClass.Request, tid);
  build(w);
  return w.finish();
}
const reason = (b: Uint8Array) => {
  const r = decodeStun(b);
  return r.ok ? "ok" : r.reason;
};

describe("message type (RFC 8489 §5)", () => {
  test("class and method interleave", () => {
    expect(encodeMessageType(StunMethod.Binding, StunClass.Request)).toBe(0x0001);
    expect(encodeMessageType(StunMethod.Binding, StunClass.SuccessResponse)).toBe(0x0101);
    expect(encodeMessageType(StunMethod.Allocate, StunClass.ErrorResponse)).toBe(0x0113);
    expect(encodeMessageType(StunMethod.Data, StunClass.Indication)).toBe(0x0017);
    expect(encodeMessageType(0xfff, StunClass.ErrorResponse)).toBe(0x3fff);
    for (let m = 0; m < 0x1000; m += 7) {
      for (const c of [0, 1, 2, 3] as const) {
        const t = encodeMessageType(m, c);
        expect([methodOf(t), classOf(t)]).toEqual([m, c]);
      }
    }
  });
});

describe("malformed input is a typed result, never an exception", () => {
  test("truncated header", () => expect(reason(message().subarray(0, 19))).toBe("too-short"));
  test("top bits set (not STUN)", () => {
    const b = message();
    b[0] |= 0x80;
    expect(reason(b)).toBe("not-stun");
  });
  test("wrong magic cookie", () => {
    const b = message();
    b[4] = 0x21;
    b[7] = 0x43;
    expect(reason(b)).toBe("bad-cookie");
  });
  test("length field does not match the datagram", () => {
    const b = message((w) => w.addUint32(Attr.Lifetime, 1));
    expect(reason(b.subarray(0, b.length - 4))).toBe("bad-length");
    const longer = new Uint8Array(b.length + 4);
    longer.set(b);
    expect(reason(longer)).toBe("bad-length");
  });
  test("missing padding of the last attribute", () => {
    const b = message((w) => w.addBytes(Attr.Software, new Uint8Array([1, 2, 3, 4, 5])));
    const unpadded = b.slice(0, b.length - 3);
    unpadded[3] = unpadded.length - 20;
    expect(reason(unpadded)).toBe("bad-padding");
  });
  test("attribute length overrunning the message", () => {
    const b = message((w) => w.addUint32(Attr.Lifetime, 1));
    b[23] = 9;
    expect(reason(b)).toBe("attribute-overrun");
    const second = message((w) => { w.addUint32(Attr.Lifetime, 1); w.addUint32(Attr.Lifetime, 2); });
    second[31] = 5; // the second attribute claims 5 bytes where 4 remain
    expect(reason(second)).toBe("attribute-overrun");
  });
  test("bad fingerprint, fingerprint not last, fingerprint of the wrong size", () => {
    const good = message((w) => { w.addUint32(Attr.Lifetime, 5); writeFingerprint(w); });
    expect(reason(good)).toBe("ok");
    const flipped = good.slice();
    flipped[good.length - 1] ^= 0xff;
    expect(reason(flipped)).toBe("bad-fingerprint");
    const changedBody = good.slice();
    changedBody[27] ^= 1;
    expect(reason(changedBody)).toBe("bad-fingerprint");
    const after = message((w) => { writeFingerprint(w); w.addUint32(Attr.Lifetime, 5); });
    expect(reason(after)).toBe("attribute-after-fingerprint");
    const wrongSize = message((w) => w.addBytes(Attr.Fingerprint, new Uint8Array(8)));
    expect(reason(wrongSize)).toBe("bad-fingerprint");
  });
  test("too many attributes", () => {
    expect(reason(message((w) => { for (let i = 0; i < 200; i++) w.addEmpty(0x8100); }))).toBe("too-many-attributes");
  });
  test("thousands of random and mutated datagrams never throw", () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / 0x1000000;
    const base = message((w) => { w.addUint32(Attr.Lifetime, 5); w.addBytes(Attr.Username, new Uint8Array(7)); writeMessageIntegrity(w, new Uint8Array(16)); writeFingerprint(w); });
    const d = new StunDecoder();
    for (let i = 0; i < 5000; i++) {
      let b: Uint8Array;
      if (i % 2 === 0) {
        b = Uint8Array.from({ length: Math.floor(rand() * 120) }, () => Math.floor(rand() * 256));
        if (b.length >= 8 && rand() < 0.5) b.set([0x00, 0x01, 0x00, (b.length - 20) & 0xfc, 0x21, 0x12, 0xa4, 0x42]);
      } else {
        b = base.slice(0, Math.max(0, base.length - (rand() < 0.2 ? Math.floor(rand() * 8) : 0)));
        for (let k = 0; k < 3; k++) if (b.length) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      }
      expect(() => decodeStun(b)).not.toThrow();
      expect(() => d.decode(b)).not.toThrow();
    }
  });
});

describe("attribute rules (RFC 8489 §14)", () => {
  test("duplicates are kept in order; the first one counts", () => {
    const b = message((w) => { w.addUint32(Attr.Lifetime, 1); w.addUint32(Attr.Lifetime, 2); });
    const r = decodeStun(b);
    if (!r.ok) throw new Error(r.reason);
    expect(getAttribute(r.message, Attr.Lifetime)).toEqual(new Uint8Array([0, 0, 0, 1]));
    const d = new StunDecoder();
    d.decode(b);
    expect(d.indexOf(Attr.Lifetime)).toBe(0);
    expect(d.count).toBe(2);
  });
  test("attributes after MESSAGE-INTEGRITY are ignored, except MESSAGE-INTEGRITY-SHA256 and FINGERPRINT", () => {
    const b = message((w) => {
      writeMessageIntegrity(w, new Uint8Array(16));
      w.addUint32(Attr.Lifetime, 1);
      w.addUint32(0x0abc, 1); // unknown comprehension-required, but after MI: ignored
      writeFingerprint(w);
    });
    const d = new StunDecoder();
    expect(d.decode(b)).toBe(0);
    expect(d.indexOf(Attr.Lifetime)).toBe(-1);
    expect(d.unknownCount).toBe(0);
    expect(d.fingerprint).toBeGreaterThan(0);
  });
  test("unknown comprehension-required attributes are collected", () => {
    const d = new StunDecoder();
    d.decode(message((w) => { w.addEmpty(0x0abc); w.addEmpty(0x8abc); w.addEmpty(0x0abd); }));
    expect(Array.from(d.unknown.subarray(0, d.unknownCount))).toEqual([0x0abc, 0x0abd]);
  });
  test("attribute value round trips", () => {
    const b = message((w) => {
      writeErrorCode(w, 438);
      writeUnknownAttributes(w, [0x1234, 0x0abc]);
      writeReservationToken(w, 0xfedcba9876543210n);
      writeEvenPort(w, true);
      writeAddressFamily(w, Attr.RequestedAddressFamily, 6);
      writePasswordAlgorithms(w, [2, 1]);
      w.addBytes(Attr.Username, new TextEncoder().encode("ユーザー"));
    });
    const d = new StunDecoder();
    expect(d.decode(b)).toBe(0);
    const at = (t: number) => [d.bytes, d.offsets[d.indexOf(t)]!, d.lengths[d.indexOf(t)]!] as const;
    expect(readErrorCode(...at(Attr.ErrorCode))).toEqual({ code: 438, reason: "Stale Nonce" });
    expect(readUnknownAttributes(...at(Attr.UnknownAttributes))).toEqual([0x1234, 0x0abc]);
    expect(readReservationToken(...at(Attr.ReservationToken))).toBe(0xfedcba9876543210n);
    expect(readEvenPort(...at(Attr.EvenPort))).toEqual({ reserveNext: true });
    expect(readAddressFamily(...at(Attr.RequestedAddressFamily))).toBe(6);
    expect(readPasswordAlgorithms(...at(Attr.PasswordAlgorithms))!.map((e) => e.algorithm)).toEqual([2, 1]);
    expect(readText(...at(Attr.Username), Attr.Username)).toBe("ユーザー");
  });
  test("invalid UTF-8 and oversize text read as null", () => {
    expect(readText(new Uint8Array([0xff, 0xfe]), 0, 2, Attr.Username)).toBeNull();
    expect(readText(new Uint8Array(513), 0, 513, Attr.Username)).toBeNull();
  });
});

describe("ChannelData framing (RFC 8656 §12.4)", () => {
  test("encode/parse", () => {
    const b = encodeChannelData(0x4abc, new Uint8Array([1, 2, 3]));
    expect(b).toEqual(new Uint8Array([0x4a, 0xbc, 0, 3, 1, 2, 3]));
    expect(parseChannelData(b)).toBe(0x4abc);
    expect(channelDataLength(b)).toBe(3);
    expect(parseChannelData(b.subarray(0, 6))).toBe(-1);
    expect(parseChannelData(new Uint8Array([0x50, 0, 0, 0]))).toBe(0x5000);
    expect(parseChannelData(new Uint8Array([0x80, 0, 0, 0]))).toBe(-1);
    expect(parseChannelData(new Uint8Array([0x40, 0, 0, 0]))).toBe(0x4000);
  });
});

test("crc32 matches the standard check value", () => {
  expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926);
});
