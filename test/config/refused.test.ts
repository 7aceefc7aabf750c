/** Configuration that cannot work is refused at start, one line each (src/config/host-checks.ts). */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { parseEndpoint } from "../../src/net/endpoint.ts";
import { PeerPolicy } from "../../src/turn/peer-policy.ts";
import { refusal, resolve } from "./resolve-argv.ts";

describe("refused at start, one line", () => {
  test.each([
    [["--relay-ip", "203.0.113.9"], "--relay-ip 203.0.113.9: not an address of this host"],
    [["--relay-ip", "0.0.0.0"], "--relay-ip 0.0.0.0: a relay needs a specific address of this host, not a wildcard"],
    [["--listening-ip", "203.0.113.9"], "--listening-ip 203.0.113.9: not an address of this host"],
    [["--relay-ip", "127.0.0.1", "--external-ip", "198.51.100.7/10.9.9.9"], "--external-ip 198.51.100.7/10.9.9.9: 10.9.9.9 is not a relay address"],
    [["--denied-peer-ip", "10.0.0.5-10.0.0.1"], "--denied-peer-ip '10.0.0.5-10.0.0.1': the range is reversed (its start is above its end)"],
    [["--allowed-peer-ip", "fd00::9-fd00::1"], "--allowed-peer-ip 'fd00::9-fd00::1': the range is reversed"],
    [["--allowed-peer-ip", "10.0.0.0/40"], "--allowed-peer-ip '10.0.0.0/40': bad prefix length"],
    [["--allowed-peer-ip", "10.0.0.1-::1"], "different families"],
    [["--allowed-peer-ip", "::ffff:10.0.0.0/104"], "an IPv4-mapped IPv6 range; write it as IPv4"],
    [["--denied-peer-ip", "localhost"], "--denied-peer-ip 'localhost': not an IP address"],
    [["--realm", ""], "--realm must not be empty"],
    [["--realm", "  "], "--realm must not be empty"],
    [["--stale-nonce", "4000000000"], "--stale-nonce: 4000000000 is out of range (1-8388607 seconds)"],
    [["--stale-nonce", "8388608"], "--stale-nonce: 8388608 is out of range"],
    [["--stale-nonce", "0"], "--stale-nonce: 0 is out of range"],
    [["--max-allocate-lifetime", "-1"], "--max-allocate-lifetime: -1 is out of range"],
    [["--default-allocate-lifetime", "99999999999"], "--default-allocate-lifetime: 99999999999 is out of range"],
    [["--permission-lifetime", "0"], "--permission-lifetime: 0 is out of range"],
    [["--channel-lifetime", "40000000"], "--channel-lifetime: 40000000 is out of range"],
    [["--min-port", "6000", "--max-port", "5000"], "--min-port 6000 is above --max-port 5000"],
    [["--sock-buf-size", "-5"], "--sock-buf-size: must be above 0, got -5"],
  ])("%p", (argv, message) => {
    const line = refusal(argv as string[]);
    expect(line).toContain(message as string);
    expect(line).not.toContain("\n");
  });

  test("the CLI prints the line and exits 1 without listening", async () => {
    const proc = Bun.spawn(["bun", join(import.meta.dir, "../../src/cli/main.ts"), "--relay-ip", "203.0.113.9", "--listening-ip", "127.0.0.1", "-p", "1"], {
      stdout: "pipe", stderr: "pipe",
    });
    const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    expect(code).toBe(1);
    const lines = (out + err).trim().split("\n");
    expect(lines.length).toBe(1);
    expect(lines[0]).toContain("--relay-ip 203.0.113.9: not an address of this host");
  }, 15_000);
});

describe("the peer policy's view of this host, resolved once", () => {
  test("interface, listening, relay and advertised addresses; the relay range", () => {
    const c = resolve(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1", "--external-ip", "198.51.100.7/127.0.0.1", "--min-port", "50000", "--max-port", "50010"]);
    expect(c.peerPolicy.relayAddresses).toEqual(["127.0.0.1", "198.51.100.7"]);
    expect(c.peerPolicy.relayPorts).toEqual({ min: 50000, max: 50010 });
    expect(c.peerPolicy.hostAddresses).toContain("127.0.0.1");
    expect(c.peerPolicy.hostAddresses).toContain("::1");
    const p = new PeerPolicy(c.peerPolicy);
    expect(p.isAllowed(parseEndpoint("198.51.100.7", 50005))).toBe(true); // the advertised relay address
    expect(p.isAllowed(parseEndpoint("198.51.100.7", 53))).toBe(false);
    expect(p.isAllowed(parseEndpoint("127.0.0.1", 50010))).toBe(true);
    expect(p.isAllowed(parseEndpoint("127.0.0.1", 50011))).toBe(false);
  });

  test("lifetimes inside the range, realm with text and local addresses start", () => {
    const c = resolve(["--listening-ip", "127.0.0.1", "--listening-ip", "::", "--stale-nonce", "8388607", "--channel-lifetime", "31536000", "--realm", "r"]);
    expect([c.staleNonce, c.channelLifetime, c.realm]).toEqual([8388607, 31536000, "r"]);
  });
});
