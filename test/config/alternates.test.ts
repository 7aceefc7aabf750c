/** coturn's alternate-server options: address forms, per-transport precedence, the "names this server" guard. */
import { describe, expect, test } from "bun:test";
import { parseArgv } from "../../src/cli/argv.ts";
import { parseAlternate, resolveAlternates } from "../../src/config/alternates.ts";
import { ConfigError, resolveConfig } from "../../src/config/resolve.ts";

const base = { any: [], udp: [], tcp: [], tls: [], listeningIps: ["127.0.0.1"], listeningPort: 3478, tlsPort: 5349, externalIps: [], hostAddresses: ["127.0.0.1", "10.1.2.3"] };

describe("alternate servers", () => {
  test("IP, IP:PORT, [IPv6]:PORT and a bare IPv6; default ports 3478, 5349 for TLS; anything else is one clear error", () => {
    expect(parseAlternate("192.0.2.1", "alternate-server", 3478)).toEqual({ ip: "192.0.2.1", port: 3478 });
    expect(parseAlternate("192.0.2.1:3479", "alternate-server", 3478)).toEqual({ ip: "192.0.2.1", port: 3479 });
    expect(parseAlternate("[2001:db8::1]:5000", "alternate-server", 3478)).toEqual({ ip: "2001:db8::1", port: 5000 });
    expect(parseAlternate("2001:db8::1", "tls-alternate-server", 5349)).toEqual({ ip: "2001:db8::1", port: 5349 });
    for (const bad of ["example.org", "192.0.2.1:0", "192.0.2.1:70000", "[2001:db8::1]:x", ""]) {
      expect(() => parseAlternate(bad, "alternate-server", 3478)).toThrow(ConfigError);
    }
  });

  test("coturn's precedence: each transport's own list, else alternate-server", () => {
    const a = resolveAlternates({ ...base, any: ["192.0.2.1"], tcp: ["192.0.2.2"] });
    expect(a.udp.servers).toEqual([{ ip: "192.0.2.1", port: 3478 }]);
    expect(a.tcp.servers).toEqual([{ ip: "192.0.2.2", port: 3478 }]);
    expect(a.tls.servers).toEqual([{ ip: "192.0.2.1", port: 3478 }]);
  });

  test("a list naming this server (its address, a wildcard's host address, or --external-ip) redirects only while draining", () => {
    const a = resolveAlternates({ ...base, any: ["127.0.0.1:3478", "192.0.2.1"] });
    expect(a.udp).toEqual({ servers: [{ ip: "192.0.2.1", port: 3478 }], namesSelf: true });
    const wildcard = resolveAlternates({ ...base, listeningIps: ["0.0.0.0"], any: ["10.1.2.3", "192.0.2.1"] });
    expect(wildcard.udp.namesSelf).toBe(true);
    const nat = resolveAlternates({ ...base, externalIps: ["198.51.100.4"], any: ["198.51.100.4", "192.0.2.1"] });
    expect(nat.udp.namesSelf).toBe(true);
    const other = resolveAlternates({ ...base, any: ["127.0.0.1:4000"] }); // same host, another server
    expect(other.udp).toEqual({ servers: [{ ip: "127.0.0.1", port: 4000 }], namesSelf: false });
  });

  test("from the command line; --drain-min-allocations defaults to 0 and is never negative", () => {
    const c = resolveConfig(parseArgv(["--user", "a:b", "--listening-ip", "127.0.0.1", "--alternate-server", "192.0.2.1", "--alternate-server", "192.0.2.2:4000", "--drain-min-allocations", "3"]).raw);
    expect(c.alternates.udp.servers.map((s) => s.port)).toEqual([3478, 4000]);
    expect(c.drainMinAllocations).toBe(3);
    expect(resolveConfig(parseArgv(["--user", "a:b"]).raw).drainMinAllocations).toBe(0);
    expect(() => resolveConfig(parseArgv(["--user", "a:b", "--drain-min-allocations", "-1"]).raw)).toThrow(ConfigError);
  });
});
