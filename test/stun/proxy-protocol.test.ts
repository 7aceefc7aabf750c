import { describe, expect, test } from "bun:test";
import { PROXY_V1_MAX, encodeProxyV2, parseProxyHeader, parseProxyV2 } from "../../src/net/proxy-protocol.ts";
import { formatEndpoint, parseEndpoint } from "../../src/net/endpoint.ts";

describe("PROXY protocol v2 header (a balancer to --tcp-proxy-port or --tls-proxy-port)", () => {
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

describe("PROXY protocol from a load balancer (v1 text, v2 binary; --tcp-proxy-port)", () => {
  const text = (s: string) => new TextEncoder().encode(s);
  const parse = (b: Uint8Array) => parseProxyHeader(b, 0, b.length);

  test("v1 TCP4 and TCP6 name the client; the header's length is the line with its CRLF", () => {
    const v4 = text("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nXYZ");
    const r4 = parse(v4);
    if (typeof r4 === "number" || !r4.client) throw new Error("expected a client");
    expect(r4.length).toBe(v4.length - 3);
    expect(formatEndpoint(r4.client)).toBe("192.0.2.1:56324");
    const r6 = parse(text("PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n"));
    if (typeof r6 === "number" || !r6.client) throw new Error("expected a client");
    expect(formatEndpoint(r6.client)).toBe("[2001:db8::1]:1");
  });

  test("v1 UNKNOWN and v2 LOCAL name no client", () => {
    expect(parse(text("PROXY UNKNOWN\r\n"))).toEqual({ length: 15, client: null });
    const local = encodeProxyV2(parseEndpoint("10.0.0.1", 1), parseEndpoint("10.0.0.2", 2));
    local[12] = 0x20;
    expect(parse(local)).toEqual({ length: local.length, client: null });
  });

  test("partial headers wait; anything malformed, and lines past 107 bytes, are refused", () => {
    expect(parse(text("PROXY TCP4 192.0.2.1"))).toBe(0);
    expect(parse(text("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r"))).toBe(0);
    for (const bad of [
      "GET / HTTP/1.1\r\n", "PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n", "PROXY TCP4 ::1 ::1 1 2\r\n",
      "PROXY TCP6 192.0.2.1 198.51.100.2 1 2\r\n", "PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n", "PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\rX", "PROXY TCP4 192.0.2.1\t198.51.100.2 1 2\r\n",
    ]) expect(parse(text(bad))).toBe(-1);
    expect(parse(text(`PROXY TCP4 ${"9".repeat(PROXY_V1_MAX)}`))).toBe(-1);
  });

  test("v2 headers longer than 1 KiB are refused before their bytes arrive", () => {
    const big = encodeProxyV2(parseEndpoint("10.0.0.1", 1), parseEndpoint("10.0.0.2", 2));
    big[14] = 0x04; // 1024 + 12 bytes of addresses and TLVs
    expect(parse(big.subarray(0, 16))).toBe(-1);
  });
});
