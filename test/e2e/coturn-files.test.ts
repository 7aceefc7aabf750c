/**
 * The turnserver.conf files that Matrix Synapse's, Nextcloud Talk's, Jitsi Meet's and BigBlueButton's
 * guides publish, and coturn's own docker file (test/fixtures/coturn/), start bunturn unchanged and relay
 * for turnutils_uclient with the credentials they configure. As with coturn, the command line after -c
 * wins over the file: the test moves the listeners, relays, certificate files and the syslog socket onto
 * its own loopback ports and files, and lets the test peer on 127.0.0.1 in (--allow-loopback-peers plus
 * --allowed-peer-ip, since some of the files deny 127.0.0.0/8 outright).
 */
import { afterAll, describe, expect } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bindUnixDatagram, libc } from "../../ffi/index.ts";
import { ROOT, e2eTest, freePort, pollUntil, relayRange, runUclient, spawnUntil, startPeer, stopProcess, type Running, type UclientResult } from "./harness.ts";

const FIXTURES = join(ROOT, "test/fixtures/coturn");
const dir = mkdtempSync(join(tmpdir(), "bunturn-coturn-files-"));
const running: Running[] = [];
afterAll(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
  rmSync(dir, { recursive: true, force: true });
});

let tlsFiles: { cert: string; key: string } | undefined;
function certificate(): { cert: string; key: string } {
  if (tlsFiles) return tlsFiles;
  const files = { cert: join(dir, "cert.pem"), key: join(dir, "key.pem") };
  for (const cmd of [
    ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", files.key, "-out", files.cert],
  ]) {
    const r = Bun.spawnSync(cmd, { stdout: "ignore", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString()}`);
  }
  return (tlsFiles = files);
}

interface Started extends Running {
  tlsPort: number;
}

/** bunturn -c FILE, then the test's own addresses, ports and files on the command line. */
async function startWith(file: string, extra: string[] = []): Promise<Started> {
  const port = freePort();
  const tlsPort = freePort();
  const [min, max] = relayRange();
  const cmd = [
    "bun", join(ROOT, "src/cli/main.ts"), "-c", file,
    "--listening-ip", "127.0.0.1", "--listening-port", String(port), "--tls-listening-port", String(tlsPort),
    "--relay-ip", "127.0.0.1", "--min-port", String(min), "--max-port", String(max),
    "--allow-loopback-peers", "--allowed-peer-ip", "127.0.0.1", ...extra,
  ];
  const { proc, chunks } = await spawnUntil(cmd, /listening on/, 15000);
  const s: Started = { proc, port, tlsPort, output: () => chunks.join(""), stop: () => stopProcess(proc) };
  running.push(s);
  return s;
}

async function peer(): Promise<Running> {
  const p = await startPeer();
  running.push(p);
  return p;
}

/** Everything sent came back through the relay; no ERROR line except uclient's own TLS 1.0/1.1 offers being refused. */
function expectRelayed(r: UclientResult, messages: number): void {
  const errors = r.errors.filter((line) => !/tlsv1 alert protocol version/.test(line));
  if (errors.length > 0 || r.received !== r.sent || r.sent < messages) console.error(r.output.slice(-3000));
  expect(errors).toEqual([]);
  expect(r.sent).toBeGreaterThanOrEqual(messages);
  expect(r.received).toBe(r.sent);
  expect(r.lost).toBe(0);
}

async function relayUdp(s: Started, credentials: string[], p: Running): Promise<UclientResult> {
  return runUclient([...credentials, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(s.port), "-n", "20", "-l", "120", "-m", "2", "127.0.0.1"]);
}

async function relayTls(s: Started, credentials: string[], p: Running): Promise<UclientResult> {
  return runUclient(["-t", "-S", ...credentials, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(s.tlsPort), "-n", "20", "-l", "120", "-m", "2", "127.0.0.1"]);
}

/** The datagrams waiting on a Unix datagram socket, as text. */
function syslogLines(fd: number): string[] {
  const buf = new Uint8Array(8192);
  const out: string[] = [];
  for (let n = libc.read(fd, buf, buf.length); n >= 0; n = libc.read(fd, buf, buf.length)) out.push(new TextDecoder().decode(buf.subarray(0, n)));
  return out;
}

const secretOf = (file: string) => /^static-auth-secret=(.*)$/m.exec(readFileSync(join(FIXTURES, file), "utf8"))![1]!;

describe("published turnserver.conf files", () => {
  e2eTest("Matrix Synapse: REST secret, syslog (to the test's socket), no-tcp-relay, the denied ranges", async () => {
    const socket = join(dir, "synapse-log.sock");
    const fd = bindUnixDatagram(socket);
    try {
      const s = await startWith(join(FIXTURES, "synapse.conf"), ["--syslog-socket", socket]);
      const r = await relayUdp(s, ["-W", secretOf("synapse.conf"), "-u", "1700000000:@alice:myserver.org"], await peer());
      expectRelayed(r, 40);
      // syslog: the start-up line went to the system logger (facility user, severity info: <14>).
      const lines = syslogLines(fd);
      expect(lines.some((l) => /^<14>\w{3} [ \d]\d \d\d:\d\d:\d\d bunturn\[\d+\]: bunturn .* listening on 127\.0\.0\.1:\d+ .*realm turn\.myserver\.org; auth: REST API/.test(l))).toBe(true);
    } finally {
      libc.close(fd);
    }
  }, 90_000);

  e2eTest("Nextcloud Talk: lt-cred-mech with use-auth-secret, bare stale-nonce, accepted keys said at -v", async () => {
    const s = await startWith(join(FIXTURES, "nextcloud.conf"), ["-v"]);
    const r = await relayUdp(s, ["-W", secretOf("nextcloud.conf"), "-u", "talk-user"], await peer());
    expectRelayed(r, 40);
    const out = s.output();
    expect(out).toContain("nextcloud.conf:5: 'fingerprint' accepted, nothing to do: FINGERPRINT is added");
    expect(out).toContain("nextcloud.conf:13: 'no-loopback-peers' accepted, nothing to do:");
    expect(out).toContain("nextcloud.conf:14: 'no-multicast-peers' accepted, nothing to do:");
  }, 90_000);

  e2eTest("Jitsi Meet: keep-address-family, no-tcp, cipher-list, syslog; relays over UDP and TLS", async () => {
    const { cert, key } = certificate();
    const socket = join(dir, "jitsi-log.sock");
    const fd = bindUnixDatagram(socket);
    try {
      const s = await startWith(join(FIXTURES, "jitsi-meet.conf"), ["--cert", cert, "--pkey", key, "--syslog-socket", socket]);
      expect(s.output()).toMatch(/listening on 127\.0\.0\.1:\d+ \(UDP\), 127\.0\.0\.1:\d+ \(TLS\);/); // no-tcp: no TCP listener
      const credentials = ["-W", secretOf("jitsi-meet.conf"), "-u", "1700000000"];
      expectRelayed(await relayUdp(s, credentials, await peer()), 40);
      expectRelayed(await relayTls(s, credentials, await peer()), 40);
      expect(syslogLines(fd).some((l) => l.includes("realm jitsi-meet.example.com"))).toBe(true);
    } finally {
      libc.close(fd);
    }
  }, 90_000);

  e2eTest("BigBlueButton: cipher-list, keep-address-family, verbose, its denied ranges; UDP and TLS", async () => {
    const { cert, key } = certificate();
    // Its dh-file need not exist: DHE uses OpenSSL's built-in groups (said at -v, which the file's `verbose` turns on).
    const s = await startWith(join(FIXTURES, "bigbluebutton.conf"), ["--cert", cert, "--pkey", key]);
    const credentials = ["-W", secretOf("bigbluebutton.conf"), "-u", "bbb-user"];
    expectRelayed(await relayUdp(s, credentials, await peer()), 40);
    expectRelayed(await relayTls(s, credentials, await peer()), 40);
    // `verbose` in the file: the accepted keys are said, one line each.
    expect(s.output()).toContain("bigbluebutton.conf:32: 'no-cli' accepted, nothing to do: bunturn has no telnet CLI");
    expect(s.output()).toContain("bigbluebutton.conf:29: 'dh-file' accepted, nothing to do: DHE suites named in --cipher-list use OpenSSL's built-in groups");
  }, 90_000);

  e2eTest("coturn's docker file: its mysql-userdb line is taken (the host is not there: said once, password hidden); without that line it starts and relays", async () => {
    const file = join(FIXTURES, "coturn-docker.conf");
    const { cert, key } = certificate();
    const withDb = await startWith(file, ["--relay-threads", "1", "--cert", cert, "--pkey", key]);
    // The driver's reason (in the parentheses) varies with the resolver and may span lines.
    expect(withDb.output()).toMatch(/user database host=mysql dbname=coturn user=coturn password=\*\*\* port=3306 connect_timeout=10 read_timeout=10: cannot be read \([\s\S]*\); no users or secrets from it until it is back/);
    expect(withDb.output()).not.toContain("CHANGE_ME");
    expect(withDb.output()).not.toContain("created user");
    await withDb.stop();

    // Users then come from elsewhere; here bunturn makes one up and prints its password, as it does
    // whenever no credentials are configured.
    const stripped = join(dir, "coturn-docker-without-mysql.conf");
    writeFileSync(stripped, readFileSync(file, "utf8").replace(/^mysql-userdb=.*\n/m, ""));
    const s = await startWith(stripped, ["--cert", cert, "--pkey", key]);
    // The password line is a warning (stderr) printed after "listening on" (stdout): the two pipes are
    // read independently, so it may arrive a moment after the line startWith waited for.
    const generated = /created user 'bunturn' with password '([^']+)'/;
    expect(await pollUntil(() => generated.test(s.output()), 5000)).toBe(true);
    const password = generated.exec(s.output())![1]!;
    expect(s.output()).toContain("realm example.org");
    const credentials = ["-u", "bunturn", "-w", password];
    expectRelayed(await relayUdp(s, credentials, await peer()), 40);
    expectRelayed(await relayTls(s, credentials, await peer()), 40);
  }, 90_000);
});
