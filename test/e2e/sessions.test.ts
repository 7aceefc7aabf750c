/**
 * Sessions for operators and usage records, end to end: a real bunturn with --control-socket and
 * --usage-log, the project's TURN client and coturn's turnutils_uclient relaying to turnutils_peer.
 * `bunturn admin sessions` shows each allocation with its user, client, relay, peers and the traffic
 * each way; `bunturn admin kill` ends one (the client's next Refresh gets 437); every allocation that
 * ends leaves one JSON usage record with what it relayed.
 */
import { afterAll, beforeAll, expect } from "bun:test";
import { connect } from "node:net";
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatEndpoint, parseEndpoint } from "../../src/net/endpoint.ts";
import { TurnClient } from "../fuzz/turn-client.ts";
import { PASSWORD, ROOT, USER, e2eTest, freePort, runUclient, selfSignedCert, startBunturn, startPeer, type Running } from "./harness.ts";

const dir = mkdtempSync(join(tmpdir(), "bunturn-sessions-"));
const socketPath = join(dir, "control.sock");
const usagePath = join(dir, "usage.jsonl");
let relay: Running;
let peer: Running;

beforeAll(async () => {
  relay = await startBunturn({ args: ["--control-socket", socketPath, "--usage-log", usagePath, "--relay-threads", "2"] });
  peer = await startPeer();
});
afterAll(async () => {
  await relay?.stop();
  await peer?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function admin(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const proc = Bun.spawn(["bun", join(ROOT, "src/cli/main.ts"), "admin", ...args, "--control-socket", socketPath], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, out, err };
}

interface UsageLine { id: string; user: string; realm: string; client: string; transport: string; relays: string[]; durationMs: number;
  bytesToPeer: number; packetsToPeer: number; bytesToClient: number; packetsToClient: number; start: string; end: string }

async function usageRecords(until: (records: UsageLine[]) => boolean): Promise<UsageLine[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const records = existsSync(usagePath)
      ? readFileSync(usagePath, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as UsageLine)
      : [];
    if (until(records) || Date.now() > deadline) return records;
    await Bun.sleep(50);
  }
}

e2eTest("admin sessions lists an allocation with its traffic; admin kill ends it; its usage record follows", async () => {
  expect(statSync(socketPath).mode & 0o777).toBe(0o600);
  const client = await TurnClient.open({ server: { host: "127.0.0.1", port: relay.port }, username: USER, password: PASSWORD });
  try {
    expect((await client.allocate()).ok).toBe(true);
    const peerEndpoint = parseEndpoint("127.0.0.1", peer.port);
    expect((await client.createPermission(peerEndpoint)).ok).toBe(true);
    expect((await client.channelBind(0x4000, peerEndpoint)).ok).toBe(true);
    let echoes = 0;
    client.onData = () => void echoes++;
    for (let i = 0; i < 5; i++) client.sendChannelData(0x4000, new Uint8Array(100).fill(i));
    const deadline = Date.now() + 3000;
    while (echoes < 5 && Date.now() < deadline) await Bun.sleep(10);
    expect(echoes).toBe(5);

    const listed = await admin("sessions", "--json");
    expect(listed.code).toBe(0);
    const mine = (JSON.parse(listed.out) as Array<Record<string, unknown>>).find((s) => s.client === `127.0.0.1:${client.localPort}`);
    expect(mine).toMatchObject({
      user: USER, transport: "udp", relays: [formatEndpoint(client.relayed!)], peers: ["127.0.0.1"],
      channels: [`0x4000=127.0.0.1:${peer.port}`], bytesToPeer: 500, packetsToPeer: 5, bytesToClient: 500, packetsToClient: 5,
    });
    const id = mine!.id as string;

    const table = await admin("sessions");
    expect(table.out).toMatch(/^ID\s+USER\s+CLIENT\s+RELAY\s+PEERS\s+TO PEER\s+TO CLIENT\s+AGE/);
    expect(table.out).toContain(`${id}  `);
    expect(table.out).toContain(`127.0.0.1:${client.localPort}/udp`);

    const killed = await admin("kill", id);
    expect(killed).toMatchObject({ code: 0, out: `session ${id} ended\n` });
    expect((JSON.parse((await admin("sessions", "--json")).out) as Array<{ id: string }>).some((s) => s.id === id)).toBe(false);
    expect((await client.refresh(600)).errorCode).toBe(437); // RFC 8656 §7.3: no allocation any more
    expect((await admin("kill", id)).code).toBe(1); // gone: nothing to end

    const records = await usageRecords((r) => r.some((x) => x.id === id));
    const record = records.find((x) => x.id === id)!;
    expect(record).toMatchObject({ user: USER, client: `127.0.0.1:${client.localPort}`, transport: "udp", bytesToPeer: 500, packetsToPeer: 5, bytesToClient: 500, packetsToClient: 5 });
    expect(record.realm).toBe("bunturn.test");
    expect(record.durationMs).toBeGreaterThan(0);
    expect(Date.parse(record.end) - Date.parse(record.start)).toBe(record.durationMs);
  } finally {
    client.close();
  }
});

e2eTest("turnutils_uclient over TCP: each of its allocations ends with its connection and leaves one usage record; together they count what it relayed", async () => {
  await Bun.sleep(200); // the previous test's records are all written
  const before = (await usageRecords(() => true)).length;
  const r = await runUclient(["-t", "-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(peer.port), "-p", String(relay.port), "-n", "20", "-l", "120", "-m", "1", "127.0.0.1"]);
  expect(r.received).toBeGreaterThan(0);
  const records = await usageRecords((list) => list.slice(before).filter((x) => x.transport === "tcp").reduce((n, x) => n + x.packetsToClient, 0) >= r.received);
  const tcp = records.slice(before).filter((x) => x.transport === "tcp");
  // turnutils_uclient opens one allocation to probe the server and one per session it relays on (two
  // with -m 1): each ends with its connection and leaves its own record; together they carry the run.
  expect(tcp.length).toBeGreaterThanOrEqual(2);
  expect(new Set(tcp.map((x) => x.id)).size).toBe(tcp.length);
  for (const record of tcp) expect(record.user).toBe(USER);
  const sum = (key: "packetsToPeer" | "bytesToPeer" | "packetsToClient" | "bytesToClient") => tcp.reduce((n, x) => n + x[key], 0);
  expect(sum("packetsToPeer")).toBe(r.sent);
  expect(sum("bytesToPeer")).toBe(r.sent * 120);
  expect(sum("packetsToClient")).toBe(r.received);
  expect(sum("bytesToClient")).toBe(r.received * 120);
});

e2eTest("admin sessions says why when no relay listens on the socket", async () => {
  const proc = Bun.spawn(["bun", join(ROOT, "src/cli/main.ts"), "admin", "sessions", "-c", join(dir, "nothing.sock")], { stdout: "pipe", stderr: "pipe" });
  const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  expect(code).toBe(1);
  expect(err).toContain("cannot reach");
});

e2eTest("without --usage-log the record is one log line, 'usage {...}': at Refresh 0, and for what is still allocated at shutdown", async () => {
  const plain = await startBunturn({ args: ["--log-format", "text"] });
  const client = await TurnClient.open({ server: { host: "127.0.0.1", port: plain.port }, username: USER, password: PASSWORD });
  const staying = await TurnClient.open({ server: { host: "127.0.0.1", port: plain.port }, username: USER, password: PASSWORD });
  const ports = [client.localPort, staying.localPort];
  const records = () =>
    plain.output().split("\n").filter((l) => l.includes("usage {")).map((l) => JSON.parse(l.slice(l.indexOf("{"))) as UsageLine);
  try {
    expect((await client.allocate()).ok).toBe(true);
    expect((await client.refresh(0)).ok).toBe(true); // RFC 8656 §7.3: lifetime 0 deletes the allocation
    const deadline = Date.now() + 3000;
    while (records().length === 0 && Date.now() < deadline) await Bun.sleep(20);
    expect(records()).toHaveLength(1);
    expect(records()[0]).toMatchObject({ user: USER, client: `127.0.0.1:${client.localPort}`, transport: "udp", relays: [formatEndpoint(client.relayed!)], packetsToPeer: 0 });
    expect((await staying.allocate()).ok).toBe(true);
  } finally {
    client.close();
    staying.close();
    expect(await plain.stop()).toBe(0);
  }
  // SIGTERM ends the allocation that was still there: its record is written before the process exits.
  expect(records().map((r) => r.client)).toEqual(ports.map((port) => `127.0.0.1:${port}`));
});

e2eTest("a TLS client's usage record says tls (turnutils_uclient -t -S)", async () => {
  const { cert, key } = selfSignedCert(dir);
  const tlsPort = freePort();
  const tlsUsage = join(dir, "tls-usage.jsonl");
  const tls = await startBunturn({ args: ["--cert", cert, "--pkey", key, "--tls-listening-port", String(tlsPort), "--usage-log", tlsUsage] });
  try {
    const r = await runUclient(["-t", "-S", "-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(peer.port), "-p", String(tlsPort), "-n", "5", "-m", "1", "127.0.0.1"]);
    expect(r.received).toBeGreaterThan(0);
    const deadline = Date.now() + 5000;
    let records: UsageLine[] = [];
    while (Date.now() < deadline) {
      records = existsSync(tlsUsage) ? readFileSync(tlsUsage, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as UsageLine) : [];
      if (records.reduce((n, x) => n + x.packetsToClient, 0) >= r.received) break;
      await Bun.sleep(50);
    }
    expect(records.length).toBeGreaterThan(0);
    for (const record of records) expect(record.transport).toBe("tls");
    expect(records.reduce((n, x) => n + x.packetsToPeer, 0)).toBe(r.sent);
  } finally {
    await tls.stop();
  }
});

e2eTest("admin kill on a TCP client's allocation closes its connection too", async () => {
  const socketPath2 = join(dir, "open.sock");
  const open = await startBunturn({ auth: "none", args: ["--control-socket", socketPath2] });
  try {
    const tcp = connect({ host: "127.0.0.1", port: open.port });
    tcp.on("error", () => {});
    let received = Buffer.alloc(0);
    tcp.on("data", (d: Buffer) => void (received = Buffer.concat([received, d])));
    const closed = new Promise<void>((r) => tcp.on("close", () => r()));
    await new Promise((r) => tcp.once("connect", r));
    const allocate = new Uint8Array(28); // Allocate, REQUESTED-TRANSPORT UDP (RFC 8656 §7.1); --no-auth
    allocate.set([0x00, 0x03, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42]);
    allocate.set(crypto.getRandomValues(new Uint8Array(12)), 8);
    allocate.set([0x00, 0x19, 0x00, 0x04, 17, 0, 0, 0], 20);
    tcp.write(allocate);
    const deadline = Date.now() + 3000;
    while (received.length < 20 && Date.now() < deadline) await Bun.sleep(10);
    expect(received.readUInt16BE(0)).toBe(0x0103); // Allocate success
    const ask = (...args: string[]) => Bun.spawn(["bun", join(ROOT, "src/cli/main.ts"), "admin", ...args, "-c", socketPath2], { stdout: "pipe" });
    const listed = JSON.parse(await new Response(ask("sessions", "--json").stdout).text()) as Array<{ id: string; transport: string; user: string | null; client: string }>;
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ transport: "tcp", user: null, client: `127.0.0.1:${tcp.localPort}` });
    expect(await ask("kill", listed[0]!.id).exited).toBe(0);
    expect(await Promise.race([closed.then(() => "closed"), Bun.sleep(3000).then(() => "open")])).toBe("closed");
    expect(open.output()).toContain(`"id":"${listed[0]!.id}"`); // its usage record, in the log
  } finally {
    await open.stop();
  }
});
