/**
 * The TCP/TLS flood figures of docs/hostile-input.md ("Connection floods"), against any checkout:
 *
 *   bun bench/stream-floods.ts --root DIR --scenario tls-idle|tls-emfile|tcp-emfile|partial|noread
 *     [--nofile N] [--count CONNECTIONS] [--sources N] [--bindings N (noread)] [--extra "FLAGS"]
 *
 * Starts DIR's bunturn (2 engines, TLS on, `ulimit -n` from --nofile) on 127.0.0.1, runs one flood from
 * this process (sources 127.0.0.1-127.0.0.N) and prints one JSON line: connections closed by the server,
 * CPU of the server's threads over one second, RSS, and whether a new TCP and TLS client is answered.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { connect as tcpConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { tmpdir } from "node:os";
import { freePort, relayRange } from "./lib/proc.ts";
import { join, resolve } from "node:path";

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ""), process.argv[i + 1]!);
const root = resolve(args.get("root") ?? ".");
const scenario = args.get("scenario") ?? "tls-idle";
const nofile = Number(args.get("nofile") ?? 20000);
const [port, tlsPort] = [freePort(), freePort()];
const [minPort, maxPort] = relayRange(101);

const dir = mkdtempSync(join(tmpdir(), "bunturn-floods-"));
const cert = join(dir, "cert.pem");
const key = join(dir, "key.pem");
Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", key, "-out", cert], { stderr: "ignore" });

const relayArgs = ["-L", "127.0.0.1", "-p", String(port), "-E", "127.0.0.1", "--min-port", String(minPort), "--max-port", String(maxPort), "--user", "a:b",
  "--relay-threads", "2", "--tls-listening-port", String(tlsPort), "--cert", cert, "--pkey", key, ...(args.get("extra")?.split(" ") ?? [])];
const server = Bun.spawn(["bash", "-c", `ulimit -n ${nofile} && exec bun ${join(root, "src/cli/main.ts")} ${relayArgs.join(" ")}`], { cwd: root, stdout: "pipe", stderr: "pipe" });
let output = "";
for (const stream of [server.stdout, server.stderr]) void (async () => { for await (const c of stream as ReadableStream<Uint8Array>) output += new TextDecoder().decode(c); })();
while (!output.includes("listening on")) {
  if (server.exitCode !== null) throw new Error(output);
  await Bun.sleep(20);
}

const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, "utf8"))![1]) / 1024;
function cpu(): { main: number; all: number } {
  let main = 0;
  let all = 0;
  for (const tid of readdirSync(`/proc/${server.pid}/task`)) {
    try {
      const f = readFileSync(`/proc/${server.pid}/task/${tid}/stat`, "utf8").split(") ")[1]!.split(" ");
      const s = (Number(f[11]) + Number(f[12])) / 100;
      all += s;
      if (Number(tid) === server.pid) main += s;
    } catch { /* gone */ }
  }
  return { main, all };
}
async function cpuOverOneSecond(): Promise<{ mainThread: number; allThreads: number }> {
  const a = cpu();
  await Bun.sleep(1000);
  const b = cpu();
  return { mainThread: +(b.main - a.main).toFixed(2), allThreads: +(b.all - a.all).toFixed(2) };
}

interface Conn { socket: Socket; closedByServer: boolean; connected: boolean }
const conns: Conn[] = [];
function open(to: number, source: string, tls = false): Conn {
  const socket = tls
    ? tlsConnect({ host: "127.0.0.1", port: to, rejectUnauthorized: false, ...{ localAddress: source } })
    : tcpConnect({ host: "127.0.0.1", port: to, localAddress: source });
  const c: Conn = { socket, closedByServer: false, connected: false };
  socket.on("connect", () => void (c.connected = true));
  socket.on("error", () => {});
  socket.on("close", () => void (c.closedByServer = true));
  conns.push(c);
  return c;
}
const closed = () => conns.filter((c) => c.closedByServer).length;
const source = (i: number, sources: number) => `127.0.0.${1 + (i % sources)}`;

function binding(): Uint8Array {
  const m = new Uint8Array(20);
  m.set([0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42]);
  m.set(crypto.getRandomValues(new Uint8Array(12)), 8);
  return m;
}
async function answered(tls: boolean): Promise<boolean> {
  const c = open(tls ? tlsPort : port, "127.0.0.99", tls);
  conns.pop();
  let got = false;
  c.socket.on("data", (d: Buffer) => void (got ||= d.length >= 20 && d.readUInt16BE(0) === 0x0101));
  c.socket.once(tls ? "secureConnect" : "connect", () => c.socket.write(binding()));
  const end = Date.now() + 3000;
  while (!got && Date.now() < end) await Bun.sleep(20);
  c.socket.destroy();
  return got;
}

const result: Record<string, unknown> = { scenario, root, nofile, rssBeforeMiB: +rssMiB().toFixed(1) };
const count = Number(args.get("count") ?? 3000);
const sources = Number(args.get("sources") ?? 8);
if (scenario === "tls-idle") {
  for (let i = 0; i < count; i++) open(tlsPort, source(i, sources));
  await Bun.sleep(2000);
  result.closedAfter2s = closed();
  result.cpu = await cpuOverOneSecond();
  await Bun.sleep(12000);
  result.closedAfter15s = closed();
  await Bun.sleep(15000);
  result.closedAfter30s = closed();
  result.everConnected = conns.filter((c) => c.connected).length;
} else if (scenario === "tls-emfile" || scenario === "tcp-emfile") {
  for (let i = 0; i < count; i++) open(scenario === "tls-emfile" ? tlsPort : port, source(i, sources));
  await Bun.sleep(3000);
  result.closedBy3s = closed();
  result.cpu = await cpuOverOneSecond();
  result.newTcpClientAnswered = await answered(false);
  result.newTlsClientAnswered = await answered(true);
  await Bun.sleep(8000); // past the TLS handshake timeout (10 s) of the current code
  result.closedBy13s = closed();
  result.newTlsClientAnsweredAt13s = await answered(true);
} else if (scenario === "partial") {
  // A Binding first: a connection whose first message is not STUN is closed at once.
  const claim = new Uint8Array(20 + 4 + 60000);
  claim.set(binding());
  claim.set([0x40, 0x00, 0xff, 0xff], 20);
  for (let i = 0; i < count; i++) open(port, source(i, sources)).socket.on("connect", function (this: Socket) { this.write(claim); });
  await Bun.sleep(5000);
  result.closedBy5s = closed();
  result.rssHeldMiB = +rssMiB().toFixed(1);
  for (const c of conns) c.socket.destroy();
  await Bun.sleep(5000);
  result.rssAfterTheyGoMiB = +rssMiB().toFixed(1);
} else if (scenario === "noread") {
  const bindings = Number(args.get("bindings") ?? 30000);
  const burst = new Uint8Array(20 * bindings);
  for (let i = 0; i < bindings; i++) burst.set(binding(), i * 20);
  for (let i = 0; i < count; i++) {
    const c = open(port, source(i, sources));
    c.socket.on("connect", () => { c.socket.pause(); c.socket.write(burst); });
  }
  await Bun.sleep(8000);
  result.closedBy8s = closed();
  result.rssHeldMiB = +rssMiB().toFixed(1);
  for (const c of conns) c.socket.destroy();
  await Bun.sleep(5000);
  result.rssAfterTheyGoMiB = +rssMiB().toFixed(1);
}
result.serverAlive = server.exitCode === null;
for (const c of conns) c.socket.destroy();
server.kill("SIGTERM");
await server.exited;
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify(result));
process.exit(0);
