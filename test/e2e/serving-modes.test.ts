/**
 * coturn's serving modes end to end with coturn's own clients: --no-udp (TURN over TCP only on the
 * listening port), --stun-only, --no-stun and --no-udp-relay, each checked both ways (what is still
 * served, and what is not).
 */
import { afterAll, describe, expect } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PASSWORD, USER, e2eTest, freePort, runUclient, spawnUntil, startBunturn, startPeer, type Running } from "./harness.ts";

const running: Running[] = [];
const dir = mkdtempSync(join(tmpdir(), "bunturn-modes-"));
afterAll(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
  rmSync(dir, { recursive: true, force: true });
});

async function server(args: string[]): Promise<Running> {
  const s = await startBunturn({ args });
  running.push(s);
  return s;
}

/** turnutils_stunclient's answer: the reflexive address, or null when the server stayed silent. */
async function stunBinding(port: number): Promise<string | null> {
  const { proc, chunks } = await spawnUntil(["turnutils_stunclient", "-p", String(port), "127.0.0.1"], null, 0);
  const timer = setTimeout(() => proc.kill("SIGKILL"), 8000);
  await proc.exited;
  clearTimeout(timer);
  return /UDP reflexive addr: (\S+)/.exec(chunks.join(""))?.[1] ?? null;
}

async function relay(s: Running, extra: string[] = []) {
  const p = await startPeer();
  running.push(p);
  return runUclient([...extra, "-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(s.port), "-n", "10", "-m", "1", "127.0.0.1"], 15000);
}

describe("serving modes", () => {
  e2eTest("--no-udp: TURN over TCP relays; nothing answers on UDP", async () => {
    const s = await server(["--no-udp"]);
    expect(s.output()).toMatch(/listening on 127\.0\.0\.1:\d+ \(TCP\);/);
    const tcp = await relay(s, ["-t"]);
    expect(tcp.sent).toBeGreaterThanOrEqual(10);
    expect(tcp.received).toBe(tcp.sent);
    expect(await stunBinding(s.port)).toBeNull();
  });

  e2eTest("--stun-only: Binding answered, no relay", async () => {
    const s = await server(["--stun-only"]);
    expect(await stunBinding(s.port)).toMatch(/^127\.0\.0\.1:\d+$/);
    const r = await relay(s);
    expect(r.received).toBeLessThanOrEqual(0);
  });

  e2eTest("--no-stun: relays, Binding unanswered", async () => {
    const s = await server(["--no-stun"]);
    expect(await stunBinding(s.port)).toBeNull();
    const r = await relay(s);
    expect(r.sent).toBeGreaterThanOrEqual(10);
    expect(r.received).toBe(r.sent);
  });

  e2eTest("--no-udp-relay: Allocate refused with 442, Binding answered", async () => {
    const s = await server(["--no-udp-relay"]);
    expect(await stunBinding(s.port)).toMatch(/^127\.0\.0\.1:\d+$/);
    const r = await relay(s);
    expect(r.output).toMatch(/442/);
    expect(r.received).toBeLessThanOrEqual(0);
  });

  e2eTest("--CA-file: a TLS client without a certificate from that CA is refused; with one, it relays", async () => {
    const [cert, key] = [join(dir, "cert.pem"), join(dir, "key.pem")];
    const gen = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", key, "-out", cert], { stdout: "ignore", stderr: "pipe" });
    expect(gen.exitCode).toBe(0);
    const tlsPort = freePort();
    const s = await server(["--tls-listening-port", String(tlsPort), "--cert", cert, "--pkey", key, "--CA-file", cert]);
    const p = await startPeer();
    running.push(p);
    const tls = (extra: string[]) => runUclient(["-t", "-S", ...extra, "-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(tlsPort), "-n", "10", "-m", "1", "127.0.0.1"], 15000);
    const without = await tls([]);
    expect(without.received).toBeLessThanOrEqual(0);
    const withCertificate = await tls(["-i", cert, "-k", key]);
    expect(withCertificate.sent).toBeGreaterThanOrEqual(10);
    expect(withCertificate.received).toBe(withCertificate.sent);
  });
});
