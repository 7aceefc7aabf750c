/**
 * End-to-end: coturn's own test client against bunturn. Each case asserts what a user would see:
 * every message sent came back through the relay, nothing lost, no ERROR line.
 */
import { afterAll, describe, expect } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PASSWORD, USER, e2eTest, freePort, runUclient, startBunturn, startPeer, type Running, type UclientResult } from "./harness.ts";

const running: Running[] = [];
afterAll(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});

async function server(args: string[] = [], auth?: "users" | "none" | "custom"): Promise<Running> {
  const s = await startBunturn({ args, ...(auth ? { auth } : {}) });
  running.push(s);
  return s;
}
async function peer(ip = "127.0.0.1"): Promise<Running> {
  const p = await startPeer(ip);
  running.push(p);
  return p;
}

/**
 * uclient's counts: `messages` per client session; without -c each client has an RTP and an RTCP
 * allocation, so it may report up to twice that. Everything sent must come back, nothing lost.
 */
function expectClean(r: UclientResult, messages: number): void {
  if (r.lost !== 0 || r.errors.length > 0 || r.received !== r.sent) console.error(r.output.slice(-3000));
  // uclient offers TLS 1.0 and 1.1 before 1.2; our refusal of those ("alert protocol version") is right.
  const errors = r.errors.filter((line) => !/tlsv1 alert protocol version/.test(line));
  expect(errors).toEqual([]);
  expect(r.sent).toBeGreaterThanOrEqual(messages);
  expect(r.received).toBe(r.sent);
  expect(r.lost).toBe(0);
}

for (const recvmmsg of [false, true]) {
  const flags = recvmmsg ? ["--udp-recvmmsg"] : [];
  describe(`turnutils_uclient, --udp-recvmmsg ${recvmmsg ? "on" : "off"}`, () => {
    e2eTest("1 client over channels", async () => {
      const s = await server(flags);
      const p = await peer();
      const r = await runUclient(["-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(s.port), "-n", "40", "-l", "100", "-m", "1", "127.0.0.1"]);
      expectClean(r, 40);
    });

    e2eTest("10 clients over channels, 1000-byte messages", async () => {
      const s = await server(flags);
      const p = await peer();
      const r = await runUclient(["-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(s.port), "-n", "30", "-l", "1000", "-m", "10", "127.0.0.1"]);
      expectClean(r, 300);
    });

    e2eTest("Send and Data indications (-s)", async () => {
      const s = await server(flags);
      const p = await peer();
      const r = await runUclient(["-s", "-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(s.port), "-n", "40", "-l", "120", "-m", "2", "127.0.0.1"]);
      expectClean(r, 80);
    });

    e2eTest("client to client through two relays (-y)", async () => {
      const s = await server(flags);
      const r = await runUclient(["-y", "-u", USER, "-w", PASSWORD, "-p", String(s.port), "-n", "30", "-l", "100", "-m", "2", "127.0.0.1"]);
      expectClean(r, 60);
    });
  });
}

describe("turnutils_uclient, other modes", () => {
  e2eTest("TURN REST API shared secret (-W)", async () => {
    const s = await server(["--use-auth-secret", "--static-auth-secret", "north-secret"], "custom");
    const p = await peer();
    const r = await runUclient(["-W", "north-secret", "-u", "rest-user", "-e", "127.0.0.1", "-r", String(p.port), "-p", String(s.port), "-n", "30", "-m", "1", "127.0.0.1"]);
    expectClean(r, 30);
  });

  e2eTest("a wrong REST secret gets no relay", async () => {
    const s = await server(["--use-auth-secret", "--static-auth-secret", "north-secret"], "custom");
    const p = await peer();
    const r = await runUclient(["-W", "wrong-secret", "-u", "rest-user", "-e", "127.0.0.1", "-r", String(p.port), "-p", String(s.port), "-n", "5", "-m", "1", "127.0.0.1"], 15000);
    expect(r.received).not.toBe(5);
  });

  e2eTest("Send indications with DONT-FRAGMENT (-s -g): the relay socket goes DF and still delivers", async () => {
    const s = await server([]);
    const p = await peer();
    const r = await runUclient(["-s", "-g", "-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(s.port), "-n", "30", "-m", "2", "127.0.0.1"]);
    expectClean(r, 60);
  });

  e2eTest("IPv6 relay over ::1 (-x)", async () => {
    const s = await server(["--relay-ip", "::1", "--udp-recvmmsg"]);
    const p = await peer("::1");
    const r = await runUclient(["-x", "-u", USER, "-w", PASSWORD, "-e", "::1", "-r", String(p.port), "-p", String(s.port), "-n", "30", "-m", "1", "127.0.0.1"]);
    expectClean(r, 30);
  });

  e2eTest("loopback peers are refused unless allowed", async () => {
    const s = await startBunturn({ allowLoopback: false });
    running.push(s);
    const p = await peer();
    const r = await runUclient(["-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(s.port), "-n", "5", "-m", "1", "127.0.0.1"], 15000);
    expect(r.received).not.toBe(5);
    expect(r.output).toMatch(/403|Forbidden/);
  });
});

describe("TURN over TCP (turnutils_uclient -t), relays over UDP", () => {
  // Odd message lengths make ChannelData padding matter on the stream (RFC 8656 §12.5).
  for (const [name, flags] of [
    ["channels, unpadded ChannelData from the client", ["-l", "101"]],
    ["channels, padded ChannelData from the client (-D)", ["-D", "-l", "101"]],
    ["Send and Data indications (-s)", ["-s", "-l", "103"]],
    ["client to client (-y)", ["-y", "-l", "99"]],
  ] as const) {
    e2eTest(name, async () => {
      const s = await server([]);
      const p = await peer();
      const r = await runUclient(["-t", ...flags, "-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(s.port), "-n", "30", "-m", "3", "127.0.0.1"]);
      expectClean(r, 90);
    });
  }

  e2eTest("--no-tcp refuses TCP clients", async () => {
    const s = await server(["--no-tcp"]);
    expect(s.output()).toContain("(UDP)");
    const r = await runUclient(["-t", "-u", USER, "-w", PASSWORD, "-p", String(s.port), "-n", "5", "-m", "1", "-y", "127.0.0.1"], 15000);
    expect(r.received).not.toBe(r.sent > 0 ? r.sent : 5);
  });
});

describe("TURN over TLS (turnutils_uclient -t -S), relays over UDP", () => {
  let certDir = "";
  const tlsServer = async (): Promise<{ s: Running; tlsPort: number }> => {
    if (!certDir) {
      certDir = mkdtempSync(join(tmpdir(), "bunturn-cert-"));
      const gen = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
        "-keyout", join(certDir, "key.pem"), "-out", join(certDir, "cert.pem")], { stdout: "ignore", stderr: "pipe" });
      if (gen.exitCode !== 0) throw new Error(`openssl failed: ${gen.stderr.toString()}`);
    }
    const tlsPort = freePort();
    const s = await server(["--tls-listening-port", String(tlsPort), "--cert", join(certDir, "cert.pem"), "--pkey", join(certDir, "key.pem")]);
    expect(s.output()).toContain(`127.0.0.1:${tlsPort} (TLS)`);
    return { s, tlsPort };
  };
  afterAll(() => {
    if (certDir) rmSync(certDir, { recursive: true, force: true });
  });

  for (const [name, flags] of [
    ["channels", ["-l", "101"]],
    ["Send and Data indications (-s)", ["-s", "-l", "33"]],
    // Each relayed message must leave in its own TLS record: uclient reads one message per record.
    ["client to client (-y)", ["-y", "-l", "99"]],
  ] as const) {
    e2eTest(name, async () => {
      const { tlsPort } = await tlsServer();
      const p = await peer();
      const r = await runUclient(["-t", "-S", ...flags, "-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(tlsPort), "-n", "30", "-m", "3", "127.0.0.1"]);
      expectClean(r, 90);
    });
  }
});
