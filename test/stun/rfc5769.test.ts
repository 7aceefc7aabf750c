/** RFC 5769 test vectors (§2.1-2.4) and the RFC 8489 Appendix B.1 SHA-256 vector (as corrected by errata). */
import { describe, expect, test } from "bun:test";
import {
  Attr, StunClass, StunMethod, StunWriter, decodeStun, getAttribute, readXorAddress, readText,
  verifyMessageIntegrity, writeFingerprint, writeMessageIntegrity, writeText, writeXorAddress, writeAddress,
  computeUserhash, readPasswordAlgorithm, PasswordAlgorithm,
} from "../../src/stun/index.ts";
import { formatIp, parseEndpoint } from "../../src/net/endpoint.ts";
import { md5Key, sha256Key } from "../../src/turn/credentials.ts";

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));
const utf8 = (s: string) => new TextEncoder().encode(s);

// RFC 5769 §2.1: sample request (short-term credentials, SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME).
const SAMPLE_REQUEST = hex(`
  00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae 80 22 00 10 53 54 55 4e 20 74 65 73
  74 20 63 6c 69 65 6e 74 00 24 00 04 6e 00 01 ff 80 29 00 08 93 2f f9 b1 51 26 3b 36 00 06 00 09
  65 76 74 6a 3a 68 36 76 59 20 20 20 00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49
  c1 b5 71 a2 80 28 00 04 e5 7a 3b cf`);
// §2.2: IPv4 response.
const SAMPLE_IPV4_RESPONSE = hex(`
  01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae 80 22 00 0b 74 65 73 74 20 76 65 63
  74 6f 72 20 00 20 00 08 00 01 a1 47 e1 12 a6 43 00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9
  2a f9 ba 53 f0 6b e7 d7 80 28 00 04 c0 7d 4c 96`);
// §2.3: IPv6 response.
const SAMPLE_IPV6_RESPONSE = hex(`
  01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae 80 22 00 0b 74 65 73 74 20 76 65 63
  74 6f 72 20 00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9 00 08 00 14
  a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41 80 28 00 04 c8 fb 0b 4c`);
// §2.4: request with long-term authentication.
const SAMPLE_LONG_TERM_REQUEST = hex(`
  00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e 00 06 00 12 e3 83 9e e3 83 88 e3 83
  aa e3 83 83 e3 82 af e3 82 b9 00 00 00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34
  6f 4c 39 46 53 54 76 79 36 34 73 41 00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00 00 08 00 14
  f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66`);

const SHORT_TERM_PASSWORD = utf8("VOkJxbRl1RmTxUk/WvJxBt");
const MATRIX_USER = "\u30DE\u30C8\u30EA\u30C3\u30AF\u30B9";

function decodeOk(bytes: Uint8Array) {
  const r = decodeStun(bytes);
  if (!r.ok) throw new Error(`decode failed: ${r.reason}`);
  return r.message;
}

describe("RFC 5769 §2.1 sample request", () => {
  test("decodes, fingerprint checks, integrity verifies with the short-term password", () => {
    const m = decodeOk(SAMPLE_REQUEST);
    expect(m.method).toBe(StunMethod.Binding);
    expect(m.cls).toBe(StunClass.Request);
    expect(Buffer.from(m.transactionId).toString("hex")).toBe("b7e7a701bc34d686fa87dfae");
    expect(new TextDecoder().decode(getAttribute(m, Attr.Software))).toBe("STUN test client");
    expect(new TextDecoder().decode(getAttribute(m, Attr.Username))).toBe("evtj:h6vY");
    expect(m.unknownComprehensionRequired).toEqual([]); // PRIORITY is tolerated
    const mi = m.integrityOffset;
    expect(verifyMessageIntegrity(m.raw, mi + 4, 20, SHORT_TERM_PASSWORD, false)).toBe(true);
    expect(verifyMessageIntegrity(m.raw, mi + 4, 20, utf8("wrong"), false)).toBe(false);
  });

  test("one flipped bit breaks the fingerprint", () => {
    const bad = SAMPLE_REQUEST.slice();
    bad[30] ^= 1;
    expect(decodeStun(bad)).toEqual({ ok: false, reason: "bad-fingerprint" });
  });
});

describe("RFC 5769 §2.2 / §2.3 sample responses", () => {
  test("IPv4 response: XOR-MAPPED-ADDRESS 192.0.2.1:32853, integrity, fingerprint", () => {
    const m = decodeOk(SAMPLE_IPV4_RESPONSE);
    expect(m.cls).toBe(StunClass.SuccessResponse);
    expect(new TextDecoder().decode(getAttribute(m, Attr.Software))).toBe("test vector");
    const raw = m.raw;
    const ep = readXorAddress(raw, 40, 8)!; // XOR-MAPPED-ADDRESS value at offset 40
    expect(formatIp(ep.address)).toBe("192.0.2.1");
    expect(ep.port).toBe(32853);
    expect(verifyMessageIntegrity(raw, m.integrityOffset + 4, 20, SHORT_TERM_PASSWORD, false)).toBe(true);
  });

  test("IPv6 response: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853", () => {
    const m = decodeOk(SAMPLE_IPV6_RESPONSE);
    const ep = readXorAddress(m.raw, 40, 20)!;
    expect(formatIp(ep.address)).toBe("2001:db8:1234:5678:11:2233:4455:6677");
    expect(ep.port).toBe(32853);
    expect(verifyMessageIntegrity(m.raw, m.integrityOffset + 4, 20, SHORT_TERM_PASSWORD, false)).toBe(true);
  });

  test("the writer reproduces the IPv4 response byte for byte (SOFTWARE padding aside)", () => {
    const w = new StunWriter(StunMethod.Binding, StunClass.SuccessResponse, hex("b7e7a701bc34d686fa87dfae"));
    writeText(w, Attr.Software, "test vector");
    // The RFC pads with spaces; integrity covers the padding, so copy the vector's padding byte.
    w.buffer[w.length - 1] = 0x20;
    writeXorAddress(w, Attr.XorMappedAddress, parseEndpoint("192.0.2.1", 32853));
    writeMessageIntegrity(w, SHORT_TERM_PASSWORD);
    writeFingerprint(w);
    expect(Buffer.from(w.finish()).toString("hex")).toBe(Buffer.from(SAMPLE_IPV4_RESPONSE).toString("hex"));
  });

  test("the writer reproduces the IPv6 response byte for byte", () => {
    const w = new StunWriter(StunMethod.Binding, StunClass.SuccessResponse, hex("b7e7a701bc34d686fa87dfae"));
    writeText(w, Attr.Software, "test vector");
    w.buffer[w.length - 1] = 0x20;
    writeXorAddress(w, Attr.XorMappedAddress, parseEndpoint("2001:db8:1234:5678:11:2233:4455:6677", 32853));
    writeMessageIntegrity(w, SHORT_TERM_PASSWORD);
    writeFingerprint(w);
    expect(w.finish()).toEqual(SAMPLE_IPV6_RESPONSE);
  });
});

describe("RFC 5769 §2.4 long-term credentials", () => {
  const key = md5Key(MATRIX_USER, "example.org", "TheMatrIX");

  test("decodes USERNAME, NONCE, REALM and verifies MESSAGE-INTEGRITY with MD5(user:realm:pass)", () => {
    const m = decodeOk(SAMPLE_LONG_TERM_REQUEST);
    const raw = m.raw;
    expect(readText(raw, 24, 18, Attr.Username)).toBe(MATRIX_USER);
    expect(new TextDecoder().decode(getAttribute(m, Attr.Nonce))).toBe("f//499k954d6OL34oL9FSTvy64sA");
    expect(new TextDecoder().decode(getAttribute(m, Attr.Realm))).toBe("example.org");
    expect(verifyMessageIntegrity(raw, m.integrityOffset + 4, 20, key, false)).toBe(true);
    const wrong = md5Key(MATRIX_USER, "example.org", "TheMatrix");
    expect(verifyMessageIntegrity(raw, m.integrityOffset + 4, 20, wrong, false)).toBe(false);
  });

  test("the writer reproduces the request byte for byte", () => {
    const w = new StunWriter(StunMethod.Binding, StunClass.Request, hex("78ad3433c6ad72c029da412e"));
    writeText(w, Attr.Username, MATRIX_USER);
    writeText(w, Attr.Nonce, "f//499k954d6OL34oL9FSTvy64sA");
    writeText(w, Attr.Realm, "example.org");
    writeMessageIntegrity(w, key);
    expect(w.finish()).toEqual(SAMPLE_LONG_TERM_REQUEST);
  });
});

describe("RFC 8489 Appendix B.1 (errata-corrected): USERHASH, PASSWORD-ALGORITHM, MESSAGE-INTEGRITY-SHA256", () => {
  const request = hex(`
    00 01 00 90 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
    00 1e 00 20 4a 3c f3 8f ef 69 92 bd a9 52 c6 78 04 17 da 0f 24 81 94 15 56 9e 60 b2 05 c4 6e 41 40 7f 17 04
    00 15 00 29 6f 62 4d 61 74 4a 6f 73 32 41 41 41 43 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39
    46 53 54 76 79 36 34 73 41 00 00 00
    00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
    00 1d 00 04 00 02 00 00
    00 1c 00 20 b5 c7 bf 00 5b 6c 52 a2 1c 51 c5 e8 92 f8 19 24 13 62 96 cb 92 7c 43 14 93 09 27 8c c6 51 8e 65`);

  test("USERHASH = SHA-256(user:realm) and the HMAC-SHA256 verifies with SHA-256(user:realm:pass)", () => {
    const m = decodeOk(request);
    expect(getAttribute(m, Attr.Userhash)).toEqual(computeUserhash(MATRIX_USER, "example.org"));
    const pa = getAttribute(m, Attr.PasswordAlgorithm)!;
    expect(readPasswordAlgorithm(pa, 0, pa.length)?.algorithm).toBe(PasswordAlgorithm.SHA256);
    const key = sha256Key(MATRIX_USER, "example.org", "TheMatrIX");
    expect(verifyMessageIntegrity(m.raw, m.integritySha256Offset + 4, 32, key, true)).toBe(true);
    expect(verifyMessageIntegrity(m.raw, m.integritySha256Offset + 4, 32, key.map((b) => b ^ 1), true)).toBe(false);
  });
});

test("MAPPED-ADDRESS and XOR round trips for both families", () => {
  const tid = hex("000102030405060708090a0b");
  for (const ep of [parseEndpoint("203.0.113.9", 1), parseEndpoint("2001:db8::9", 65535)]) {
    const w = new StunWriter(StunMethod.Binding, StunClass.SuccessResponse, tid);
    writeAddress(w, Attr.MappedAddress, ep);
    writeXorAddress(w, Attr.XorMappedAddress, ep);
    const m = decodeOk(w.finish());
    expect(m.attributes.length).toBe(2);
    const len = ep.family === 4 ? 8 : 20;
    expect(readXorAddress(m.raw, 20 + 4 + len + 4, len)!.key).toBe(ep.key);
  }
});
