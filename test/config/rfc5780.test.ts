/** --rfc5780 and --alt-listening-port resolved (src/config/resolve-rfc5780.ts), or refused with one line. */
import { describe, expect, test } from "bun:test";
import { resolveConfig } from "../../src/config/resolve.ts";
import { parseTurnserverConf } from "../../src/config/turnserver-conf.ts";
import { formatIp } from "../../src/net/endpoint.ts";
import { refusal, resolve } from "./resolve-argv.ts";

const TWO = ["--listening-ip", "127.0.0.1", "--listening-ip", "127.0.0.2"];

describe("--rfc5780", () => {
  test("off by default: no alternate addresses", () => {
    expect(resolve(TWO).rfc5780).toBeUndefined();
  });

  test("two listening IPs of one family: each is the other's alternate; the alternate port is the listening port plus one", () => {
    const config = resolve(["--rfc5780", ...TWO, "--listening-port", "4000"]);
    expect(config.rfc5780?.altPort).toBe(4001);
    expect(config.rfc5780?.alternates.map((a) => `${formatIp(a.address)}>${formatIp(a.alternate)}`)).toEqual(["127.0.0.1>127.0.0.2", "127.0.0.2>127.0.0.1"]);
    // Two listening IPs still relay from one address per family (the first).
    expect(config.relayIps).toEqual(["127.0.0.1"]);
  });

  test("three IPs of a family: each one's alternate is the next, cyclically (coturn's rule); a wildcard is left out", () => {
    const config = resolve(["--rfc5780", ...TWO, "--listening-ip", "127.0.0.3", "--listening-ip", "0.0.0.0", "--relay-ip", "127.0.0.1"]);
    expect(config.rfc5780?.alternates.map((a) => `${formatIp(a.address)}>${formatIp(a.alternate)}`)).toEqual([
      "127.0.0.1>127.0.0.2", "127.0.0.2>127.0.0.3", "127.0.0.3>127.0.0.1",
    ]);
  });

  test("--alt-listening-port, and the keys from a turnserver.conf", () => {
    expect(resolve(["--rfc5780", ...TWO, "--alt-listening-port", "5555"]).rfc5780?.altPort).toBe(5555);
    const raw = parseTurnserverConf("rfc5780\nlistening-ip=127.0.0.1\nlistening-ip=127.0.0.2\nalt-listening-port=3999\nalt-tls-listening-port=5350\n");
    expect(resolveConfig(raw).rfc5780?.altPort).toBe(3999);
  });

  test.each([
    [["--rfc5780"], "--rfc5780 needs two listening IPs of one family"],
    [["--rfc5780", "--listening-ip", "127.0.0.1"], "--rfc5780 needs two listening IPs of one family"],
    [["--rfc5780", "--listening-ip", "127.0.0.1", "--listening-ip", "::1"], "--rfc5780 needs two listening IPs of one family"],
    [["--rfc5780", ...TWO, "--no-udp"], "--rfc5780 with --no-udp"],
    [["--rfc5780", ...TWO, "--relay-ip", "127.0.0.1", "--external-ip", "198.51.100.7"], "--rfc5780 with --external-ip"],
    [["--rfc5780", ...TWO, "--alt-listening-port", "3478"], "--alt-listening-port 3478: must be a port other than"],
    [["--rfc5780", ...TWO, "--alt-listening-port", "50000"], "--alt-listening-port 50000: inside the relay port range"],
  ])("refused: %p", (argv, message) => {
    const line = refusal(argv as string[]);
    expect(line).toContain(message as string);
    expect(line).not.toContain("\n");
  });
});
