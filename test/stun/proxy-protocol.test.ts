import { describe, expect, test } from "bun:test";
import { encodeProxyV2, parseProxyV2 } from "../../src/net/proxy-protocol.ts";
import { formatEndpoint, parseEndpoint } from "../../src/net/endpoint.ts";

describe("PROXY protocol v2 header (TLS front end to engine)", () => {
  for (const [client, server] of [["198.51.100.7", "127.0.0.1"], ["2001:db8::5", "::1"]] as const) {
    test(`round-trips ${client}`, () => {
      const header = encodeProxyV2(parseEndpoint(client, 40000), parseEndpoint(server, 5349));
      const withData = new Uint8Array(header.length + 3);
      withData.set(header);
      const r = parseProxyV2(withData, 0, withData.length);
      if (typeof r === "number") throw new Error("expected a header");
      expect(r.length).toBe(header.length);
      expect(formatEndpoint(r.client)).toBe(formatEndpoint(parseEndpoint(client, 40000)));
      expect(parseProxyV2(header, 0, header.length - 1)).toBe(0); // incomplete: wait for more
    });
  }

  test("anything else is refused", () => {
    expect(parseProxyV2(new Uint8Array([0x00, 0x01, 0x00, 0x00]), 0, 4)).toBe(-1);
    const header = encodeProxyV2(parseEndpoint("10.0.0.1", 1), parseEndpoint("10.0.0.2", 2));
    header[13] = 0x31; // AF_UNIX: not ours
    expect(parseProxyV2(header, 0, header.length)).toBe(-1);
  });
});
