import { describe, expect, test } from "bun:test";
import { parseArgv } from "../../src/cli/argv.ts";
import { ConfigError, mergeRaw, resolveConfig } from "../../src/config/resolve.ts";
import { parseTurnserverConf } from "../../src/config/turnserver-conf.ts";

const resolve = (argv: string[]) => resolveConfig(parseArgv(argv).raw);

function configError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  throw new Error("expected a ConfigError");
}

describe("command line, coturn's language", () => {
  test("defaults are coturn's", () => {
    const c = resolve(["--user", "a:b"]);
    expect(c.listeningPort).toBe(3478);
    expect([c.minPort, c.maxPort]).toEqual([49152, 65535]);
    expect(c.maxAllocateLifetime).toBe(3600);
    expect(c.defaultAllocateLifetime).toBe(600);
    expect(c.permissionLifetime).toBe(300);
    expect(c.channelLifetime).toBe(600);
    expect(c.staleNonce).toBe(600);
    expect(c.sockBufSize).toBe(2 * 1024 * 1024);
    expect(c.udpRecvmmsg).toBe(false);
    expect(c.udpSendmmsg).toBe(true);
    expect(c.udpGso).toBe(true);
    expect(c.udpGro).toBe(true);
    expect(c.peerPolicy.allowLoopback).toBe(false);
    expect(c.listeningIps).toEqual(["0.0.0.0", "::"]);
  });

  test("long and short forms, = and space, repeated users, --no- flags", () => {
    const c = resolve(["-p", "5000", "--listening-ip=127.0.0.1", "-u", "a:b", "--user=c:d:e", "--lt-cred-mech", "--realm", "example.org", "--no-udp-sendmmsg", "--no-udp-gso", "--no-udp-gro", "--udp-recvmmsg", "--relay-threads", "1", "--allowed-peer-ip", "10.0.0.1-10.0.0.9", "--allowed-peer-ip=192.168.0.0/16"]);
    expect(c.listeningPort).toBe(5000);
    expect(c.listeningIps).toEqual(["127.0.0.1"]);
    expect(c.relayIps).toEqual(["127.0.0.1"]); // relays follow a specific listening address
    expect(c.auth).toEqual({ kind: "long-term", users: [["a", "b"], ["c", "d:e"]] });
    expect(c.realm).toBe("example.org");
    expect(c.udpSendmmsg).toBe(false);
    expect(c.udpGso).toBe(false);
    expect(c.udpGro).toBe(false);
    expect(c.udpRecvmmsg).toBe(true);
    expect(c.relayThreads).toBe(1);
    expect(c.peerPolicy.allowed).toEqual(["10.0.0.1-10.0.0.9", "192.168.0.0/16"]);
  });

  test("REST API secret", () => {
    const c = resolve(["--use-auth-secret", "--static-auth-secret", "s3cret"]);
    expect(c.auth).toEqual({ kind: "rest", secrets: ["s3cret"], separator: ":" });
    expect(configError(() => resolve(["--use-auth-secret"]))).toContain("--static-auth-secret");
  });

  test("REST API secrets are repeatable, taken whole (commas too), from the command line and the file; the separator is one character", () => {
    const fromFile = parseTurnserverConf("use-auth-secret\nstatic-auth-secret=old,with,commas\nrest-api-separator=.\n", "t.conf");
    const c = resolveConfig(mergeRaw(fromFile, parseArgv(["--static-auth-secret", "new"]).raw));
    expect(c.auth).toEqual({ kind: "rest", secrets: ["old,with,commas", "new"], separator: "." });
    expect(resolve(["--use-auth-secret", "-C", "_", "--static-auth-secret", "s"]).auth).toMatchObject({ separator: "_" });
    expect(configError(() => resolve(["--use-auth-secret", "--static-auth-secret", "s", "--rest-api-separator", "::"]))).toContain("one character");
    // With a database, its turn_secret table may hold every secret.
    expect(resolve(["--use-auth-secret", "--userdb", "/tmp/x.sqlite"]).auth).toEqual({ kind: "rest", secrets: [], separator: ":", userdb: "/tmp/x.sqlite" });
  });

  test("safe by default: no credentials configured means a made-up user, never an open relay", () => {
    const c = resolve([]);
    expect(c.auth.kind).toBe("long-term");
    expect(c.generatedUser?.name).toBe("bunturn");
    expect(c.generatedUser!.password.length).toBeGreaterThanOrEqual(16);
    expect(resolve([]).generatedUser!.password).not.toBe(c.generatedUser!.password);
    expect(resolve(["--no-auth"]).auth).toEqual({ kind: "none" });
  });

  test("mistakes are one clear line", () => {
    expect(configError(() => parseArgv(["--bogus"]))).toBe("unknown option '--bogus' (see --help)");
    expect(configError(() => parseArgv(["--listening-port"]))).toBe("option '--listening-port' needs a value");
    expect(configError(() => resolve(["-p", "70000"]))).toBe("--listening-port: 70000 is not a port (1-65535)");
    expect(configError(() => resolve(["-p", "abc"]))).toContain("needs a whole number");
    expect(configError(() => resolve(["--min-port", "6000", "--max-port", "5000"]))).toContain("above --max-port");
    expect(configError(() => resolve(["--user", "nopassword"]))).toContain("NAME:PASSWORD");
    expect(configError(() => resolve(["--relay-ip", "not-an-ip"]))).toContain("not an IP address");
    expect(configError(() => resolve(["--lt-cred-mech", "--no-auth"]))).toContain("--no-auth cannot be combined");
    expect(configError(() => parseArgv(["stray"]))).toContain("unexpected argument");
  });
});

describe("turnserver.conf", () => {
  test("key=value, key value, bare flags, comments, quotes; command line wins", () => {
    const conf = `
# coturn-style
listening-port=3479
realm = "conf.example"
lt-cred-mech
user=alice:one
user bob:two   # trailing comment
udp-recvmmsg
--verbose
`;
    const raw = mergeRaw(parseTurnserverConf(conf, "t.conf"), parseArgv(["-p", "4000", "--user", "carol:three"]).raw);
    const c = resolveConfig(raw);
    expect(c.listeningPort).toBe(4000);
    expect(c.realm).toBe("conf.example");
    expect(c.udpRecvmmsg).toBe(true);
    expect(c.verbose).toBe(true);
    expect(c.auth).toEqual({ kind: "long-term", users: [["alice", "one"], ["bob", "two"], ["carol", "three"]] });
  });

  test("an unknown key names the file and line", () => {
    expect(configError(() => parseTurnserverConf("realm=x\n\nno-such-thing=1\n", "/etc/turnserver.conf"))).toBe(
      "/etc/turnserver.conf:3: unknown option 'no-such-thing'",
    );
    expect(configError(() => parseTurnserverConf("udp-recvmmsg=maybe", "f"))).toContain("is a flag");
  });
});
