/**
 * Drain (coturn's SIGUSR1, --drain-min-allocations) and ALTERNATE-SERVER (300 Try Alternate) end to end:
 * the project's TURN client for the drain's exact answers, coturn's turnutils_uclient for following a
 * redirect. Everything on 127.0.0.1.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { connect as tcpConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { formatEndpoint } from "../../src/net/endpoint.ts";
import { Attr, StunClass, StunMethod, StunWriter, readAddress, writeRequestedTransport } from "../../src/stun/index.ts";
import { Response as StunResponse } from "../turn/harness.ts";
import { EchoPeer, TurnClient, relayedEcho } from "../fuzz/turn-client.ts";
import { PASSWORD, USER, e2eTest, freePort, runUclient, startBunturn, startPeer, type Running, type UclientResult } from "./harness.ts";

const running: Running[] = [];
const closers: Array<{ close(): void }> = [];
const certDir = mkdtempSync(join(tmpdir(), "bunturn-alternate-"));
afterAll(async () => {
  closers.splice(0).forEach((c) => c.close());
  await Promise.all(running.splice(0).map((r) => r.stop()));
  rmSync(certDir, { recursive: true, force: true });
});

/** One unauthenticated Allocate over a stream (TCP or TLS); resolves with the response. */
function allocateOverStream(socket: Socket): Promise<StunResponse> {
  return new Promise((resolve, reject) => {
    let buffer = Buffer.alloc(0);
    const timer = setTimeout(() => reject(new Error("no response over the stream")), 5000);
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (buffer.length >= 20 && buffer.length >= 20 + buffer.readUInt16BE(2)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(new StunResponse(new Uint8Array(buffer.subarray(0, 20 + buffer.readUInt16BE(2)))));
      }
    });
    socket.on("error", reject);
    const w = new StunWriter(StunMethod.Allocate, StunClass.Request, crypto.getRandomValues(new Uint8Array(12)));
    writeRequestedTransport(w, 17);
    socket.write(w.finish());
  });
}

function alternateOf(r: StunResponse): string | undefined {
  const v = r.attr(Attr.AlternateServer);
  return v === undefined ? undefined : formatEndpoint(readAddress(v, 0, v.length)!);
}

async function until(what: string, f: () => boolean, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

async function server(args: string[]): Promise<Running & { metrics: (path: string) => Promise<{ status: number; text: string }> }> {
  const metricsPort = freePort();
  const s = await startBunturn({ args: ["--prometheus", "--prometheus-address", "127.0.0.1", "--prometheus-port", String(metricsPort), ...args] });
  running.push(s);
  await until("the metrics line", () => s.output().includes("prometheus metrics on"));
  return Object.assign(s, {
    metrics: async (path: string) => {
      const r = await fetch(`http://127.0.0.1:${metricsPort}${path}`, { signal: AbortSignal.timeout(5000) });
      return { status: r.status, text: await r.text() };
    },
  });
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name.replace(/[{}"=]/g, (c) => `\\${c}`)} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : NaN;
}

async function client(port: number): Promise<TurnClient> {
  const c = await TurnClient.open({ server: { host: "127.0.0.1", port }, username: USER, password: PASSWORD });
  closers.push(c);
  return c;
}

describe("drain (SIGUSR1)", () => {
  test("new Allocates get 403 on every engine, live allocations keep refreshing, permitting, binding and relaying, /ready is 503 while / is 200, exit 0 at --drain-min-allocations", async () => {
    const s = await server(["--relay-threads", "2", "--drain-min-allocations", "1"]);
    const peer = await EchoPeer.open();
    closers.push(peer);
    const first = await client(s.port);
    const echo = await relayedEcho(first, peer.endpoint);
    expect(await echo(5)).toBe(5);
    const second = await client(s.port);
    expect((await second.allocate()).ok).toBe(true);
    expect((await s.metrics("/ready")).status).toBe(200);

    s.proc.kill("SIGUSR1");
    await until("the drain line", () => s.output().includes("SIGUSR1: draining"));
    expect((await s.metrics("/ready")).status).toBe(503);
    expect((await s.metrics("/")).status).toBe(200);
    expect(metric((await s.metrics("/metrics")).text, "bunturn_draining")).toBe(1);

    // Eight new clients (eight source ports: the kernel spreads them over both engines): all refused.
    const refused = await Promise.all(Array.from({ length: 8 }, async () => (await (await client(s.port)).allocate()).errorCode));
    expect(refused).toEqual(Array(8).fill(403));

    // The live allocation goes on: Refresh, CreatePermission, a new ChannelBind, relayed data.
    expect((await first.refresh(600)).ok).toBe(true);
    const other = await EchoPeer.open();
    closers.push(other);
    expect((await first.createPermission(other.endpoint)).ok).toBe(true);
    expect((await first.channelBind(0x4001, other.endpoint)).ok).toBe(true);
    expect(await echo(5)).toBe(5);
    expect(s.proc.exitCode).toBeNull();

    // Two allocations, threshold 1: the second one leaving ends the drain, and the process exits 0.
    expect((await second.refresh(0)).ok).toBe(true);
    const code = await Promise.race([s.proc.exited, Bun.sleep(5000).then(() => "still running")]);
    expect(code).toBe(0);
    expect(s.output()).toContain("drain complete (1 allocation(s) left, threshold 1)");
  }, 30000);

  test("with no allocations, SIGUSR1 exits 0 at once (the default --drain-min-allocations is 0)", async () => {
    const s = await server([]);
    s.proc.kill("SIGUSR1");
    const code = await Promise.race([s.proc.exited, Bun.sleep(5000).then(() => "still running")]);
    expect(code).toBe(0);
  }, 20000);
});

/** uclient logs the redirect as "error 300 (Try Alternate)": that line is the redirect, not a failure. */
function expectRelayed(r: UclientResult, messages: number): void {
  const errors = r.errors.filter((line) => !/error 300/.test(line));
  if (errors.length > 0 || r.received !== r.sent) console.error(r.output.slice(-2000));
  expect(errors).toEqual([]);
  expect(r.sent).toBeGreaterThanOrEqual(messages);
  expect(r.received).toBe(r.sent);
}

describe("ALTERNATE-SERVER (300 Try Alternate)", () => {
  e2eTest("turnutils_uclient follows --alternate-server: it relays through the alternate, the first server allocates nothing", async () => {
    const target = await server([]);
    const front = await server(["--alternate-server", `127.0.0.1:${target.port}`]);
    expect(front.output()).toContain(`Allocates redirected (300 ALTERNATE-SERVER): UDP to 127.0.0.1:${target.port}`);
    const p = await startPeer();
    running.push(p);
    const r = await runUclient(["-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(front.port), "-n", "20", "-m", "1", "127.0.0.1"]);
    expectRelayed(r, 20);
    expect(r.output).toContain("error 300");
    const frontMetrics = (await front.metrics("/metrics")).text;
    expect(metric(frontMetrics, "bunturn_allocations_created_total")).toBe(0);
    expect(metric(frontMetrics, 'bunturn_allocates_turned_away_total{reason="alternate"}')).toBeGreaterThanOrEqual(1);
    expect(metric((await target.metrics("/metrics")).text, "bunturn_allocations_created_total")).toBeGreaterThanOrEqual(1);
  });

  e2eTest("a pool-wide list that names this server redirects nobody until the server drains, then sends new clients to the others", async () => {
    const target = await server([]);
    // The same list on every server of the pool: this server's own address is in it too.
    const ownPort = freePort();
    const pooled = await server(["--alternate-server", `127.0.0.1:${ownPort}`, "--alternate-server", `127.0.0.1:${target.port}`, "--drain-min-allocations", "1", "--listening-port", String(ownPort)]);
    expect(pooled.output()).toContain(`UDP while draining only (the list names this server) to 127.0.0.1:${target.port}`);
    const p = await startPeer();
    running.push(p);
    const uclient = () => runUclient(["-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(ownPort), "-n", "20", "-m", "1", "127.0.0.1"]);
    expectRelayed(await uclient(), 20);
    const created = () => pooled.metrics("/metrics").then((m) => metric(m.text, "bunturn_allocations_created_total"));
    const servedHere = await created();
    expect(servedHere).toBeGreaterThanOrEqual(1);

    // One live allocation keeps the draining server up (--drain-min-allocations 1 is reached only when it goes).
    const holder = await client(ownPort);
    expect((await holder.allocate()).ok).toBe(true);
    pooled.proc.kill("SIGUSR1");
    await until("the drain line", () => pooled.output().includes("SIGUSR1: draining"));
    const redirected = await uclient();
    expectRelayed(redirected, 20);
    expect(redirected.output).toContain("error 300");
    expect(await created()).toBe(servedHere + 1); // only the holder's allocation was added
    const m = (await pooled.metrics("/metrics")).text;
    expect(metric(m, 'bunturn_allocates_turned_away_total{reason="alternate"}')).toBeGreaterThanOrEqual(1);
    expect(metric(m, 'bunturn_allocates_turned_away_total{reason="draining"}')).toBe(0);
  });

  test("TCP and TLS clients get their own lists (--tcp-alternate-server, --tls-alternate-server); UDP, with no list, is served here", async () => {
    const gen = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
      "-keyout", join(certDir, "key.pem"), "-out", join(certDir, "cert.pem")], { stdout: "ignore", stderr: "pipe" });
    expect(gen.exitCode).toBe(0);
    const tlsPort = freePort();
    const s = await server(["--tcp-alternate-server", "192.0.2.1:3478", "--tls-alternate-server", "192.0.2.2",
      "--tls-listening-port", String(tlsPort), "--cert", join(certDir, "cert.pem"), "--pkey", join(certDir, "key.pem")]);
    const overTcp = await allocateOverStream(await new Promise<Socket>((resolve) => {
      const c = tcpConnect({ host: "127.0.0.1", port: s.port }, () => resolve(c));
    }));
    expect([overTcp.errorCode, alternateOf(overTcp)]).toEqual([300, "192.0.2.1:3478"]);
    const overTls = await allocateOverStream(await new Promise<Socket>((resolve) => {
      const c = tlsConnect({ host: "127.0.0.1", port: tlsPort, rejectUnauthorized: false }, () => resolve(c));
    }));
    expect([overTls.errorCode, alternateOf(overTls)]).toEqual([300, "192.0.2.2:5349"]);
    const overUdp = await (await client(s.port)).allocate();
    expect(overUdp.ok).toBe(true);
  }, 30000);
});
