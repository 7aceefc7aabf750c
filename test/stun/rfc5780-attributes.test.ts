/** RFC 5780's attributes (§7.2-§7.6): their wire form, read back through the decoder. */
import { describe, expect, test } from "bun:test";
import { parseEndpoint } from "../../src/net/endpoint.ts";
import {
  Attr, CHANGE_IP, CHANGE_PORT, StunClass, StunDecoder, StunMethod, StunWriter, decodeStun, getAttribute,
  isUnknownComprehensionRequired, readChangeRequest, readOriginAddress, readResponsePort, writeChangeRequest,
  writeOtherAddress, writePadding, writeResponseOrigin, writeResponsePort,
} from "../../src/stun/index.ts";

const tid = new Uint8Array(12).fill(9);
const writer = () => new StunWriter(StunMethod.Binding, StunClass.Request, tid);

describe("RFC 5780 attributes", () => {
  test("CHANGE-REQUEST: 0x0003, 4 bytes, change IP = 0x4, change port = 0x2 (§7.2)", () => {
    for (const [ip, port, flags] of [[true, true, 6], [true, false, 4], [false, true, 2], [false, false, 0]] as const) {
      const w = writer();
      writeChangeRequest(w, ip, port);
      const bytes = w.finish();
      expect([...bytes.subarray(20, 28)]).toEqual([0x00, 0x03, 0x00, 0x04, 0, 0, 0, flags]);
      expect(readChangeRequest(bytes, 24, 4)).toBe(flags);
    }
    // Other bits are not flags; a value that is not 4 bytes is malformed.
    expect(readChangeRequest(new Uint8Array([0xff, 0xff, 0xff, 0xff]), 0, 4)).toBe(CHANGE_IP | CHANGE_PORT);
    expect(readChangeRequest(new Uint8Array(8), 0, 8)).toBe(-1);
  });

  test("RESPONSE-PORT: 0x0027, a 16-bit port then 2 bytes of padding (§7.5)", () => {
    const w = writer();
    writeResponsePort(w, 0xbeef);
    const bytes = w.finish();
    expect([...bytes.subarray(20, 28)]).toEqual([0x00, 0x27, 0x00, 0x04, 0xbe, 0xef, 0, 0]);
    expect(readResponsePort(bytes, 24, 4)).toBe(0xbeef);
    expect(readResponsePort(bytes, 24, 2)).toBe(-1);
  });

  test("PADDING: 0x0026 with the length asked for (§7.6)", () => {
    const w = writer();
    writePadding(w, 1500);
    const bytes = w.finish();
    expect(bytes.length).toBe(20 + 4 + 1500);
    expect([...bytes.subarray(20, 24)]).toEqual([0x00, 0x26, 0x05, 0xdc]);
  });

  test("RESPONSE-ORIGIN 0x802b and OTHER-ADDRESS 0x802c are plain (not XOR'd) addresses, IPv4 and IPv6 (§7.1, §7.3, §7.4)", () => {
    const w = new StunWriter(StunMethod.Binding, StunClass.SuccessResponse, tid);
    writeResponseOrigin(w, parseEndpoint("127.0.0.2", 3479));
    writeOtherAddress(w, parseEndpoint("2001:db8::1", 3478));
    const decoded = decodeStun(w.finish());
    if (!decoded.ok) throw new Error(decoded.reason);
    const origin = getAttribute(decoded.message, Attr.ResponseOrigin)!;
    expect([...origin]).toEqual([0, 1, 0x0d, 0x97, 127, 0, 0, 2]);
    expect(readOriginAddress(origin, 0, origin.length)).toMatchObject({ family: 4, port: 3479 });
    const other = getAttribute(decoded.message, Attr.OtherAddress)!;
    const endpoint = readOriginAddress(other, 0, other.length)!;
    expect(endpoint.key).toBe(parseEndpoint("2001:db8::1", 3478).key);
  });

  test("the decoder lists CHANGE-REQUEST, RESPONSE-PORT and PADDING as unknown: the Binding handler decides", () => {
    for (const type of [Attr.ChangeRequest, Attr.ResponsePort, Attr.Padding]) expect(isUnknownComprehensionRequired(type)).toBe(true);
    const w = writer();
    writeChangeRequest(w, true, true);
    const d = new StunDecoder();
    expect(d.decode(w.finish())).toBe(0);
    expect([...d.unknown.subarray(0, d.unknownCount)]).toEqual([Attr.ChangeRequest]);
  });
});
