/**
 * End-to-end: RFC 6062 TCP relays with coturn's own client. `turnutils_uclient -T` makes two TCP
 * allocations, one Connects to the other's relayed address (Connect, §5.2), the other is told of it
 * (ConnectionAttempt, §5.3), both bind a new data connection (ConnectionBind, §5.4), then messages go
 * through the two pipes. -T implies -y (client to client); it is also given explicitly.
 */
import { describe, expect } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  PASSWORD, USER, closeAfterAll, e2eTest, freePort, runUclient, scrapeMetrics, selfSignedCert, startBunturn, startBunturnWithMetrics,
  type UclientResult,
} from "./harness.ts";

const { running, closers } = closeAfterAll();

function expectClean(r: UclientResult, messages: number): void {
  if (r.lost !== 0 || r.errors.length > 0 || r.received !== r.sent) console.error(r.output.slice(-3000));
  const errors = r.errors.filter((line) => !/tlsv1 alert protocol version/.test(line));
  expect(errors).toEqual([]);
  expect(r.output).not.toContain("cannot BIND");
  expect(r.sent).toBeGreaterThanOrEqual(messages);
  expect(r.received).toBe(r.sent);
  expect(r.lost).toBe(0);
}

describe("turnutils_uclient -T (TCP relays, RFC 6062)", () => {
  // Two engines: a data connection lands on either, so half the ConnectionBinds cross to the other engine.
  for (const threads of [1, 2]) {
    e2eTest(`10 client pairs, ${threads} engine(s)`, async () => {
      const { server: s, url } = await startBunturnWithMetrics(running, { args: ["--relay-threads", String(threads)] });
      const r = await runUclient(["-T", "-u", USER, "-w", PASSWORD, "-p", String(s.port), "-n", "30", "-l", "200", "-m", "10", "127.0.0.1"]);
      expectClean(r, 300);
      const metrics = await scrapeMetrics(url);
      // Every connection made (Connect) and announced (ConnectionAttempt) was bound.
      const binds = metrics.get("bunturn_tcp_relay_binds_total")!;
      expect(binds).toBeGreaterThanOrEqual(20);
      expect(binds).toBe(metrics.get('bunturn_tcp_relay_connects_total{result="ok"}')! + metrics.get("bunturn_tcp_relay_connection_attempts_total")!);
      // With two engines some of the data connections reach the engine that does not hold their peer.
      const handoffs = metrics.get("bunturn_tcp_relay_handoffs_total")!;
      if (threads === 1) expect(handoffs).toBe(0);
      else expect(handoffs).toBeGreaterThan(0);
    });
  }

  e2eTest("-T -y, 1000-byte messages", async () => {
    const s = await startBunturn({ args: ["--relay-threads", "2"] });
    running.push(s);
    const r = await runUclient(["-T", "-y", "-u", USER, "-w", PASSWORD, "-p", String(s.port), "-n", "40", "-l", "1000", "-m", "2", "127.0.0.1"]);
    expectClean(r, 80);
  });

  e2eTest("over TLS (-S)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bunturn-tcp-relay-"));
    closers.push(() => rmSync(dir, { recursive: true, force: true }));
    const { cert, key } = selfSignedCert(dir);
    const tlsPort = freePort();
    const s = await startBunturn({ args: ["--relay-threads", "2", "--cert", cert, "--pkey", key, "--tls-listening-port", String(tlsPort)] });
    running.push(s);
    const r = await runUclient(["-T", "-S", "-u", USER, "-w", PASSWORD, "-p", String(tlsPort), "-n", "20", "-m", "2", "127.0.0.1"]);
    expectClean(r, 40);
  });

  e2eTest("over TLS with two engines: data connections moved to the other engine keep their TLS session", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bunturn-tcp-relay-"));
    closers.push(() => rmSync(dir, { recursive: true, force: true }));
    const { cert, key } = selfSignedCert(dir);
    const tlsPort = freePort();
    const { url } = await startBunturnWithMetrics(running, { args: ["--relay-threads", "2", "--cert", cert, "--pkey", key, "--tls-listening-port", String(tlsPort)] });
    const r = await runUclient(["-T", "-S", "-u", USER, "-w", PASSWORD, "-p", String(tlsPort), "-n", "20", "-l", "200", "-m", "10", "127.0.0.1"]);
    expectClean(r, 200);
    const metrics = await scrapeMetrics(url);
    // The OpenSSL session crossed with each of these (stream-handoff.ts); the bytes after still decrypt.
    expect(metrics.get("bunturn_tcp_relay_handoffs_total")!).toBeGreaterThan(0);
    expect(metrics.get("bunturn_tls_handshakes_total")!).toBeGreaterThanOrEqual(20);
  });

  e2eTest("--no-tcp-relay: the TCP Allocate is refused, nothing is relayed", async () => {
    const s = await startBunturn({ args: ["--no-tcp-relay"] });
    running.push(s);
    const r = await runUclient(["-T", "-u", USER, "-w", PASSWORD, "-p", String(s.port), "-n", "5", "-m", "1", "127.0.0.1"], 10000);
    expect(r.output).toContain("error 442 (Unsupported Transport Protocol)");
    expect(r.received).toBeLessThanOrEqual(0);
  });
});
