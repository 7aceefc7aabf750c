/**
 * TCP and TLS clients cannot hold the relay: a TLS client that never finishes its handshake (silent, or
 * half a ClientHello) is closed after --tls-handshake-timeout, one that finishes it and then says nothing
 * after --tcp-first-message-timeout; one source's (N+1)th connection is refused
 * (TCP and TLS counted together) while another source still gets in; and a relay out of descriptors
 * (ulimit -n in a child) does not spin on its listeners and serves again when descriptors come back.
 * Real bunturn processes on loopback, small caps and timeouts so each test takes seconds.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { connect as tcpConnect, type Socket as NetSocket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, USER, PASSWORD, REALM, freePort, relayRange, selfSignedCert, spawnUntil, startBunturn, stopProcess, type Running } from "./harness.ts";
import { bindingRequest } from "../binding-request.ts";

const dir = mkdtempSync(join(tmpdir(), "bunturn-streams-"));
const running: Running[] = [];
let cert = "";
let key = "";
beforeAll(() => {
  ({ cert, key } = selfSignedCert(dir));
});
afterAll(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
  rmSync(dir, { recursive: true, force: true });
});

interface Conn {
  socket: NetSocket;
  closed: Promise<number>;
  /** Sends a Binding request; true when a Binding success response comes back within `ms`. */
  binding(ms?: number): Promise<boolean>;
}

/** A TCP (or, with `tls`, TLS) connection that is open, or closed by the server, when this resolves. */
function open(port: number, options: { tls?: boolean; localAddress?: string } = {}): Promise<Conn> {
  return new Promise((resolve) => {
    const opened = Date.now();
    let received = Buffer.alloc(0);
    const socket: NetSocket = options.tls
      ? tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...(options.localAddress ? { localAddress: options.localAddress } : {}) })
      : tcpConnect({ host: "127.0.0.1", port, ...(options.localAddress ? { localAddress: options.localAddress } : {}) });
    socket.on("data", (d: Buffer) => void (received = Buffer.concat([received, d])));
    socket.on("error", () => {});
    const closed = new Promise<number>((r) => socket.on("close", () => r(Date.now() - opened)));
    const conn: Conn = {
      socket,
      closed,
      async binding(ms = 2000) {
        const before = received.length;
        if (!socket.destroyed) socket.write(bindingRequest());
        const end = Date.now() + ms;
        while (Date.now() < end && !socket.destroyed) {
          if (received.length >= before + 20 && received.readUInt16BE(before) === 0x0101) return true;
          await Bun.sleep(10);
        }
        return received.length >= before + 20 && received.readUInt16BE(before) === 0x0101;
      },
    };
    socket.once(options.tls ? "secureConnect" : "connect", () => resolve(conn));
    void closed.then(() => resolve(conn));
  });
}

const isClosed = (c: Conn, ms: number) => Promise.race([c.closed.then(() => true), Bun.sleep(ms).then(() => false)]);

test("a TLS client that sends nothing, or half a ClientHello, is closed after --tls-handshake-timeout; a finished handshake stays", async () => {
  const tlsPort = freePort();
  const relay = await startBunturn({
    args: ["--tls-listening-port", String(tlsPort), "--cert", cert, "--pkey", key, "--tls-handshake-timeout", "1", "--tcp-first-message-timeout", "2"],
  });
  running.push(relay);
  const silent = await open(tlsPort);
  const half = await open(tlsPort);
  // The first 40 bytes of a ClientHello record claiming 300 bytes.
  half.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x01, 0x2c, 0x01, 0x00, 0x01, 0x28, 0x03, 0x03, ...new Uint8Array(29)]));
  const good = await open(tlsPort, { tls: true });
  const mute = await open(tlsPort, { tls: true });
  const [silentMs, halfMs] = await Promise.all([silent.closed, half.closed]);
  for (const ms of [silentMs, halfMs]) {
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(3000);
  }
  // The finished handshake outlived the timeout and is served.
  expect(await good.binding()).toBe(true);
  // A client that finished its handshake but never sends a message goes after --tcp-first-message-timeout.
  const muteMs = await mute.closed;
  expect(muteMs).toBeGreaterThanOrEqual(1900);
  expect(muteMs).toBeLessThan(4500);
  expect(good.socket.destroyed).toBe(false);
  good.socket.destroy();
}, 20000);

test("one source's (N+1)th TCP or TLS connection is refused; another source still gets in; a closed one frees its place", async () => {
  const tlsPort = freePort();
  const relay = await startBunturn({
    args: ["--relay-threads", "2", "--tls-listening-port", String(tlsPort), "--cert", cert, "--pkey", key, "--max-tcp-connections-per-ip", "4"],
  });
  running.push(relay);
  const kept: Conn[] = [];
  for (let i = 0; i < 3; i++) kept.push(await open(relay.port));
  kept.push(await open(tlsPort, { tls: true }));
  for (const c of kept) expect(await c.binding()).toBe(true);
  const tcpFifth = await open(relay.port);
  expect(await isClosed(tcpFifth, 2000)).toBe(true);
  const tlsFifth = await open(tlsPort, { tls: true });
  expect(await isClosed(tlsFifth, 2000)).toBe(true);
  const other = await open(relay.port, { localAddress: "127.0.0.2" });
  expect(await other.binding()).toBe(true);
  const otherTls = await open(tlsPort, { tls: true, localAddress: "127.0.0.2" });
  expect(await otherTls.binding()).toBe(true);
  // One of 127.0.0.1's connections goes: its place is free again.
  kept[0]!.socket.destroy();
  await Bun.sleep(300);
  const again = await open(relay.port);
  expect(await again.binding()).toBe(true);
  for (const c of [...kept, other, otherTls, again]) c.socket.destroy();
}, 30000);

/** CPU seconds used by every thread of `pid` (utime + stime from /proc/PID/task/TID/stat). */
function threadsCpu(pid: number): number {
  let ticks = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ticks / 100;
}

test("out of descriptors, neither the engines' TCP listeners nor their TLS listeners spin, and both serve again when descriptors come back", async () => {
  const port = freePort();
  const tlsPort = freePort();
  const [min, max] = relayRange(10);
  const relayArgs = [
    "-L", "127.0.0.1", "-p", String(port), "-E", "127.0.0.1", "--min-port", String(min), "--max-port", String(max),
    "--realm", REALM, "--user", `${USER}:${PASSWORD}`, "--relay-threads", "2",
    "--tls-listening-port", String(tlsPort), "--cert", cert, "--pkey", key,
    // Caps above the descriptor limit, so that the limit itself is what the clients reach.
    "--max-tcp-connections", "5000", "--max-tcp-connections-per-ip", "0",
  ];
  const { proc, chunks } = await spawnUntil(
    ["bash", "-c", `ulimit -n 200 && exec bun ${join(ROOT, "src/cli/main.ts")} ${relayArgs.join(" ")}`], /listening on/, 15000);
  const conns: Conn[] = [];
  try {
    // Far more connections than the relay has descriptors (TCP alone is twice its limit), so each engine
    // has connections pending when it runs out; the rest wait in the kernel's queues. The engines accept
    // TLS on their own listeners, which park like the TCP ones.
    const opening: Array<Promise<Conn>> = [];
    for (let i = 0; i < 400; i++) opening.push(open(port));
    for (let i = 0; i < 100; i++) opening.push(open(tlsPort));
    for (const p of opening) void p.then((c) => conns.push(c));
    // Both engines' listeners ran out of descriptors.
    const exhausted = () =>
      /engine 0: TCP accept failed \(EMFILE/.test(chunks.join("")) && /engine 1: TCP accept failed \(EMFILE/.test(chunks.join(""));
    const deadline = Date.now() + 10000;
    while (!exhausted() && Date.now() < deadline) await Bun.sleep(50);
    expect(chunks.join("")).toMatch(/engine 0: TCP accept failed \(EMFILE/);
    expect(chunks.join("")).toMatch(/engine 1: TCP accept failed \(EMFILE/);
    await Bun.sleep(300);
    const before = threadsCpu(proc.pid);
    const started = Date.now();
    await Bun.sleep(1000);
    const used = (threadsCpu(proc.pid) - before) / ((Date.now() - started) / 1000);
    // A spinning listener costs a whole core (the old code: about 2 cores, one per engine, plus the main thread).
    expect(used).toBeLessThan(0.2);
    // The clients let go: descriptors come back, and both listeners serve again.
    for (const c of conns) c.socket.destroy();
    await Bun.sleep(1500);
    const tcp = await open(port);
    expect(await tcp.binding(3000)).toBe(true);
    const tls = await open(tlsPort, { tls: true });
    expect(await tls.binding(3000)).toBe(true);
    tcp.socket.destroy();
    tls.socket.destroy();
    expect(proc.exitCode).toBeNull();
  } finally {
    for (const c of conns) c.socket.destroy();
    await stopProcess(proc);
  }
}, 40000);
