/**
 * Every option name coturn's turnserver has (test/fixtures/coturn/option-names.txt, from coturn 4.17.1's
 * option list) is known to bunturn: implemented, accepted with a reason (said at -v), or refused at start
 * with one line naming the key and why. Keys that would weaken security if ignored are never accepted.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { parseArgv } from "../../src/cli/argv.ts";
import { COTURN_NAMES, SHORT_NAMES, classifyName } from "../../src/config/coturn-options.ts";
import { OPTIONS } from "../../src/config/options.ts";
import { ConfigError, resolveConfig } from "../../src/config/resolve.ts";
import { parseTurnserverConf } from "../../src/config/turnserver-conf.ts";
import { coturnOptionNames } from "./coturn-names.ts";
import { parseEndpoint } from "../../src/net/endpoint.ts";
import { PeerPolicy } from "../../src/turn/peer-policy.ts";

const ALL = coturnOptionNames();
const LONG = ALL.filter((o) => o.name !== "-");
const sampleValue = (name: string) => (/port|quota|bps|lifetime|threads|size|sessions|peers|nonce$|allocations|timeout|cpus/.test(name) ? "7" : "x");

function outcome(f: () => unknown): string {
  try {
    f();
    return "ok";
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
}

describe("coturn's option names", () => {
  test("the fixture is coturn's whole list", () => {
    expect(LONG.length).toBeGreaterThanOrEqual(140);
    for (const name of ["fingerprint", "no-cli", "stale-nonce", "keep-address-family", "cipher-list", "syslog", "mysql-userdb", "drain-min-allocations"]) {
      expect(LONG.map((o) => o.name)).toContain(name);
    }
  });

  test.each(LONG.map((o) => [o.name, o]))("%s is implemented, accepted or refused with a reason", (_, o) => {
    const c = classifyName(o.name);
    expect(c.status).not.toBe("unknown");
    if (c.status === "accepted" || c.status === "refused") {
      expect(c.why.length).toBeGreaterThan(10);
      expect(c.why).not.toContain("\n");
      expect(c.argument).toBe(o.argument === "none" ? "none" : o.argument);
    }
    // The command line and a turnserver.conf line both read it, or refuse it naming the key.
    const flag = o.argument === "required" ? [`--${o.name}`, sampleValue(o.name)] : [`--${o.name}`];
    const line = o.argument === "required" ? `${o.name}=${sampleValue(o.name)}` : o.name;
    for (const result of [outcome(() => parseArgv(flag)), outcome(() => parseTurnserverConf(line, "t.conf"))]) {
      if (c.status === "refused") {
        expect(result).toContain(o.name);
        expect(result).toContain("not supported: ");
        expect(result).not.toContain("\n");
      } else {
        expect(result).not.toContain("unknown option");
      }
    }
    if (c.status === "accepted") {
      const notes: string[] = [];
      parseTurnserverConf(line, "t.conf", notes);
      expect(notes).toEqual([`t.conf:1: '${o.name}' accepted, nothing to do: ${c.why}`]);
      expect(parseArgv(flag).notes).toEqual([`--${o.name}: accepted, nothing to do: ${c.why}`]);
    }
  });

  test.each(ALL.filter((o) => o.short !== null).map((o) => [o.short!, o]))("short %s means --%s", (short, o) => {
    const letter = short.slice(1);
    if (letter === "c" || letter === "h") return; // -c FILE and -h are read before any option
    const target = SHORT_NAMES.get(letter);
    expect(target).toBeDefined();
    const c = classifyName(target!);
    if (o.name === "-") expect(target).toBe(short);
    else if (c.status === "option") expect(classifyName(o.name)).toEqual(c);
    else expect(classifyName(target!)).toEqual({ ...classifyName(o.name), name: target! } as never); // -e: psql-userdb, also sql-userdb
  });

  test("an accepted flag set to false asks for what bunturn does not do: refused", () => {
    expect(outcome(() => parseTurnserverConf("no-multicast-peers=false", "t.conf"))).toBe(
      "t.conf:1: 'no-multicast-peers=false' is not supported: bunturn always behaves as 'no-multicast-peers' (multicast, broadcast and 0.0.0.0/8 peers are always refused (docs/peer-policy.md))",
    );
    expect(outcome(() => parseArgv(["--no-tlsv1=0"]))).toStartWith("--no-tlsv1=0: not supported: bunturn always behaves as --no-tlsv1");
    expect(outcome(() => parseTurnserverConf("fingerprint=yes\nno-cli=1", "t.conf"))).toBe("ok");
  });

  test("comments: a '#' line, or ' #' after a value; a '#' inside a value is part of it", () => {
    const raw = parseTurnserverConf("# all comment\nuser-quota=12 # 4 streams per call\nlt-cred-mech # only old coturn\nstatic-auth-secret=ab#cd\nuse-auth-secret\n");
    expect(raw["user-quota"]).toBe(12);
    expect(raw["static-auth-secret"]).toEqual(["ab#cd"]);
    expect(resolveConfig(raw).auth).toEqual({ kind: "rest", secrets: ["ab#cd"], separator: ":" });
  });

  test("a name coturn does not have either is unknown, never accepted", () => {
    expect(outcome(() => parseArgv(["--fingerprints"]))).toBe("unknown option '--fingerprints' (see --help)");
    expect(outcome(() => parseTurnserverConf("no-clii", "t.conf"))).toBe("t.conf:1: unknown option 'no-clii'");
  });

  test("keys that would weaken security if ignored are implemented or refused, never accepted", () => {
    for (const name of ["secure-stun", "mobility", "proc-user", "proc-group", "server-relay", "oauth", "check-origin-consistency",
      "no-auth", "allow-loopback-peers", "denied-peer-ip", "allowed-peer-ip", "user-quota", "total-quota", "max-bps", "bps-capacity",
      "no-udp-relay", "no-tls", "no-tcp", "no-tlsv1_2", "cipher-list", "CA-file", "stun-only", "no-stun", "cli", "web-admin",
      "secret-key-file", "daemon", "no-udp", "tlsv1", "tlsv1_1", "stateless-nonce-secret"]) {
      expect([name, classifyName(name).status]).not.toEqual([name, "accepted"]);
    }
  });

  test("no name is both bunturn's option and in the coturn table", () => {
    for (const name of Object.keys(COTURN_NAMES)) expect([name, Object.hasOwn(OPTIONS, name)]).toEqual([name, false]);
  });
});

describe("what the published files need", () => {
  const resolve = (argv: string[]) => resolveConfig(parseArgv(argv).raw);

  test("stale-nonce without a value is 600 seconds, in a file and on the command line", () => {
    expect(resolveConfig(parseTurnserverConf("stale-nonce\nuser=a:b")).staleNonce).toBe(600);
    expect(resolve(["--stale-nonce", "--user", "a:b"]).staleNonce).toBe(600);
    expect(resolve(["--stale-nonce", "120", "--user", "a:b"]).staleNonce).toBe(120);
  });

  test("lt-cred-mech with use-auth-secret is the REST API (coturn); no-auth with either is refused", () => {
    expect(resolveConfig(parseTurnserverConf("lt-cred-mech\nuse-auth-secret\nstatic-auth-secret=s")).auth).toEqual({ kind: "rest", secrets: ["s"], separator: ":" });
    expect(outcome(() => resolve(["--no-auth", "--use-auth-secret", "--static-auth-secret", "s"]))).toContain("--no-auth cannot be combined");
  });

  test("coturn's short options", () => {
    const c = resolve(["-m", "2", "-q", "3", "-Q", "9", "-s", "1000", "-B", "5000", "-S", "-V", "-n", "-f", "-u", "a:b"]);
    expect([c.relayThreads, c.userQuota, c.totalQuota, c.maxBps, c.bpsCapacity, c.stunOnly, c.verbose]).toEqual([2, 3, 9, 1000, 5000, true, true]);
    expect(resolve(["-z"]).auth).toEqual({ kind: "none" });
    expect(resolve(["-K", "-u", "a:b"]).defaultFamily).toBe("keep");
    expect(resolve(["-A", "ipv6", "-u", "a:b"]).defaultFamily).toBe("ipv6");
    expect(outcome(() => parseArgv(["-o"]))).toBe("--daemon: not supported: bunturn does not fork: run it under systemd or another supervisor (docs/systemd.md)");
    expect(resolve(["-M", "host=db dbname=coturn"]).auth).toEqual({ kind: "long-term", users: [], networkUserdb: { kind: "mysql", connection: "host=db dbname=coturn" } });
    expect(resolve(["-e", "host=db dbname=coturn"]).auth).toEqual({ kind: "long-term", users: [], networkUserdb: { kind: "postgres", connection: "host=db dbname=coturn" } });
    expect(outcome(() => parseArgv(["-J", "mongodb://db"]))).toContain("--mongo-userdb: not supported: only SQLite (--userdb), PostgreSQL (--psql-userdb), MySQL/MariaDB (--mysql-userdb) and Redis (--redis-userdb)");
    expect(resolve(["-N", "ip=db dbname=2"]).auth).toEqual({ kind: "long-term", users: [], networkUserdb: { kind: "redis", connection: "ip=db dbname=2" } });
    expect(outcome(() => resolve(["-N", "ip=db colour=blue"]))).toContain("--redis-userdb: unknown key 'colour'");
  });

  test("allocation-default-address-family and keep-address-family", () => {
    expect(resolve(["-u", "a:b"]).defaultFamily).toBe("ipv4");
    expect(resolveConfig(parseTurnserverConf("keep-address-family\nuser=a:b")).defaultFamily).toBe("keep");
    expect(outcome(() => resolve(["-A", "ipv5"]))).toContain("expected ipv4, ipv6 or keep, got 'ipv5'");
    expect(outcome(() => resolve(["-K", "-A", "ipv6"]))).toContain("--keep-address-family contradicts --allocation-default-address-family ipv6");
  });

  test("a denied IPv4-mapped range is taken (it refuses what it says); an allowed one is still refused", () => {
    expect(outcome(() => resolve(["-u", "a:b", "--denied-peer-ip", "::ffff:0:0-::ffff:ffff:ffff"]))).toBe("ok");
    const policy = new PeerPolicy(resolve(["-u", "a:b", "--denied-peer-ip", "::ffff:0:0-::ffff:ffff:ffff"]).peerPolicy);
    expect(policy.isAllowed(parseEndpoint("::ffff:8.8.8.8", 3478))).toBe(false);
    expect(policy.isAllowed(parseEndpoint("8.8.8.8", 3478))).toBe(true);
    expect(new PeerPolicy(resolve(["-u", "a:b"]).peerPolicy).isAllowed(parseEndpoint("::ffff:8.8.8.8", 3478))).toBe(true);
    expect(outcome(() => resolve(["-u", "a:b", "--allowed-peer-ip", "::ffff:0:0-::ffff:ffff:ffff"]))).toContain("write it as IPv4");
  });

  test("relays of both families by default when listening on IPv6 too; one family when told", () => {
    const c = resolve(["-u", "a:b"]);
    const hasGlobalV6 = c.peerPolicy.hostAddresses!.some((ip) => ip.includes(":") && ip !== "::1" && !/^fe[89ab]/i.test(ip));
    expect(c.relayAddresses.map((r) => r.family)).toEqual(hasGlobalV6 ? [4, 6] : [4]);
    expect(resolve(["-u", "a:b", "-L", "0.0.0.0"]).relayAddresses.map((r) => r.family)).toEqual([4]);
  });

  test("TLS options: files must exist, no-tlsv1_2, cipher list; dh-file means nothing without DHE", () => {
    const dir = import.meta.dir;
    const self = join(dir, "coturn-names.test.ts");
    const c = resolve(["-u", "a:b", "--cert", self, "--pkey", self, "--cipher-list", "ECDHE-RSA-AES128-GCM-SHA256", "--no-tlsv1_2", "--pkey-pwd", "pw", "--dh-file", "/etc/turnserver/dhp.pem", "--CA-file", self]);
    expect(c.tls).toEqual({ port: 5349, cert: self, key: self, tls13Only: true, ciphers: "ECDHE-RSA-AES128-GCM-SHA256", passphrase: "pw", caFile: self });
    expect(outcome(() => resolve(["-u", "a:b", "--cert", self, "--pkey", self, "--CA-file", "/nonexistent/ca.pem"]))).toBe("--CA-file: no such file /nonexistent/ca.pem");
  });

  test("no-software-attribute: no SOFTWARE (an empty server name)", () => {
    expect(resolve(["-u", "a:b"]).serverName).toBe("bunturn");
    expect(resolveConfig(parseTurnserverConf("no-software-attribute\nuser=a:b")).serverName).toBe("");
  });

  test("syslog and its facility", () => {
    expect(resolveConfig(parseTurnserverConf("syslog\nsyslog-facility=LOG_LOCAL3\nuser=a:b")).log.syslog).toEqual({ socket: "/dev/log", facility: 19 });
    expect(outcome(() => resolve(["--syslog", "--syslog-facility", "nope", "-u", "a:b"]))).toContain("--syslog-facility: unknown facility 'nope'");
    expect(resolve(["--syslog", "--no-stdout-log", "-u", "a:b"]).log.stdout).toBe(false);
  });
});
