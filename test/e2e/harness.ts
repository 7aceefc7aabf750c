/**
 * Runs the real thing: bunturn as a child process, and coturn's turnutils_uclient/turnutils_peer
 * (Debian's coturn package) as clients nobody here wrote. Everything on 127.0.0.1/::1, bounded in time.
 */
import { afterAll, expect, test } from "bun:test";
import { join } from "node:path";
import { freePort, isUdpFree, relayRange } from "../ports.ts";

export const ROOT = join(import.meta.dir, "../..");
export const USER = "alice";
export const PASSWORD = "wonderland";
export const REALM = "bunturn.test";

const haveUclient = Bun.which("turnutils_uclient") !== null && Bun.which("turnutils_peer") !== null;
if (!haveUclient && process.env.BUNTURN_REQUIRE_E2E === "1") {
  throw new Error("turnutils_uclient/turnutils_peer not found, and BUNTURN_REQUIRE_E2E=1: apt-get install coturn");
}
if (!haveUclient) console.warn("e2e: turnutils_uclient not installed (apt-get install coturn); skipping end-to-end tests");

/** `test` with an end-to-end time bound, or `test.skip` when coturn's client tools are not installed. */
export function e2eTest(name: string, fn: () => Promise<void>, timeoutMs = 60000): void {
  (haveUclient ? test : test.skip)(name, fn, timeoutMs);
}

export { freePort, relayRange };

export interface Running {
  proc: ReturnType<typeof Bun.spawn>;
  port: number;
  /** bunturn's --min-port/--max-port as startBunturn chose them (args passing their own override them). */
  relayPorts?: [number, number];
  output(): string;
  stop(): Promise<number>;
}

async function collect(stream: ReadableStream<Uint8Array> | undefined, sink: string[]): Promise<void> {
  if (!stream) return;
  const decoder = new TextDecoder();
  for await (const chunk of stream) sink.push(decoder.decode(chunk));
}

/** Spawns a process and resolves once `ready` appears in its output (or rejects when it exits first). */
async function spawnUntil(cmd: string[], ready: RegExp | null, timeoutMs: number, cwd = ROOT): Promise<{ proc: ReturnType<typeof Bun.spawn>; chunks: string[] }> {
  const chunks: string[] = [];
  const proc = Bun.spawn(cmd, { cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, NO_COLOR: "1", CONSOLA_LEVEL: undefined } });
  void collect(proc.stdout as ReadableStream<Uint8Array>, chunks);
  void collect(proc.stderr as ReadableStream<Uint8Array>, chunks);
  if (!ready) return { proc, chunks };
  const deadline = Date.now() + timeoutMs;
  while (!ready.test(chunks.join(""))) {
    if (proc.exitCode !== null) throw new Error(`${cmd[0]} exited with ${proc.exitCode}:\n${chunks.join("")}`);
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`${cmd[0]} not ready within ${timeoutMs} ms:\n${chunks.join("")}`);
    }
    await Bun.sleep(20);
  }
  return { proc, chunks };
}

async function stopProcess(proc: ReturnType<typeof Bun.spawn>, timeoutMs = 5000): Promise<number> {
  if (proc.exitCode !== null) return proc.exitCode;
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const code = await proc.exited;
  clearTimeout(timer);
  return code;
}

export interface BunturnOptions {
  args?: string[];
  /** Run this command instead of `bun src/cli/main.ts` (the compiled binary). */
  command?: string[];
  cwd?: string;
  /** Resolve once this appears in the output instead of the "listening on" line. */
  ready?: RegExp;
  auth?: "users" | "none" | "custom";
  /** Tests relay to 127.0.0.1 peers, which a safe server refuses: allowed unless set to false. */
  allowLoopback?: boolean;
}

/**
 * The line bunturn (src/cli/main.ts) or the test fixture prints once every engine listens. Not a line of
 * the source excerpt Bun prints with an uncaught error ("324 |   ... not listening on ..."), which once
 * passed for it when the server died at start.
 */
const READY = /^(?!\s*\d+ \|).*\b(?:bunturn \S+|fixture) listening on /m;

export async function startBunturn(options: BunturnOptions = {}): Promise<Running> {
  const port = freePort();
  const [min, max] = relayRange();
  const auth = options.auth ?? "users";
  const cmd = [
    ...(options.command ?? ["bun", join(ROOT, "src/cli/main.ts")]),
    "--listening-ip", "127.0.0.1",
    "--listening-port", String(port),
    "--relay-ip", "127.0.0.1",
    "--min-port", String(min),
    "--max-port", String(max),
    "--realm", REALM,
    ...(options.allowLoopback === false ? [] : ["--allow-loopback-peers"]),
    ...(auth === "users" ? ["--lt-cred-mech", "--user", `${USER}:${PASSWORD}`] : auth === "none" ? ["--no-auth"] : []),
    ...(options.args ?? []),
  ];
  const { proc, chunks } = await spawnUntil(cmd, options.ready ?? READY, 15000, options.cwd ?? ROOT);
  return { proc, port, relayPorts: [min, max], output: () => chunks.join(""), stop: () => stopProcess(proc) };
}

/** turnutils_peer: a UDP echo server, the relay's peer. */
export async function startPeer(ip = "127.0.0.1"): Promise<Running> {
  const port = freePort();
  const { proc, chunks } = await spawnUntil(["turnutils_peer", "-L", ip, "-p", String(port)], null, 0);
  const deadline = Date.now() + 5000;
  while (isUdpFree(ip, port)) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`turnutils_peer did not bind ${ip}:${port}: ${chunks.join("")}`);
    await Bun.sleep(10);
  }
  return { proc, port, output: () => chunks.join(""), stop: () => stopProcess(proc) };
}

export interface UclientResult {
  output: string;
  sent: number;
  received: number;
  lost: number;
  errors: string[];
}

/** Runs turnutils_uclient to completion (it exits 0 even on failure, so its summary is parsed). */
export async function runUclient(args: string[], timeoutMs = 30000): Promise<UclientResult> {
  const { proc, chunks } = await spawnUntil(["turnutils_uclient", ...args], null, 0);
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  await proc.exited;
  clearTimeout(timer);
  const output = chunks.join("");
  // Progress lines repeat these counters; the summary at the end has the final values.
  const num = (re: RegExp) => {
    const all = [...output.matchAll(new RegExp(re.source, "g"))];
    return all.length ? Number(all[all.length - 1]![1]) : -1;
  };
  return {
    output,
    sent: num(/tot_send_msgs=(\d+)/),
    received: num(/tot_recv_msgs=(\d+)/),
    lost: num(/Total lost packets (\d+)/),
    errors: output.split("\n").filter((l) => /ERROR/i.test(l)),
  };
}

export { stopProcess, spawnUntil };

/** `bun src/cli/main.ts ...args` to its exit (killed after timeoutMs): its exit code and output. */
export async function runCli(args: string[], timeoutMs = 15000): Promise<{ code: number; output: string }> {
  const { proc, chunks } = await spawnUntil(["bun", join(ROOT, "src/cli/main.ts"), ...args], null, 0);
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const code = await proc.exited;
  clearTimeout(timer);
  await Bun.sleep(20); // let the output readers drain
  return { code, output: chunks.join("") };
}

/** A one-day self-signed P-256 certificate for CN=`commonName`, written to dir/cert.pem and dir/key.pem by openssl. */
export function selfSignedCert(dir: string, commonName = "localhost"): { cert: string; key: string } {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const gen = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
    "-subj", `/CN=${commonName}`, "-keyout", key, "-out", cert], { stdout: "ignore", stderr: "pipe" });
  if (gen.exitCode !== 0) throw new Error(`openssl failed: ${gen.stderr.toString()}`);
  return { cert, key };
}

/** A Prometheus text page as a map from series (name with its labels, as printed) to value. */
export async function scrapeMetrics(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(url, { signal: AbortSignal.timeout(5000) })).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^(\w+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** Polls `f` every 10 ms until it holds or `ms` pass; its last answer. */
export async function pollUntil(f: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!(await f()) && Date.now() < end) await Bun.sleep(10);
  return f();
}

/** Call at a test file's top level: servers pushed to `running` are stopped, and `closers` called, after all its tests. */
export function closeAfterAll(): { running: Running[]; closers: Array<() => void> } {
  const running: Running[] = [];
  const closers: Array<() => void> = [];
  afterAll(async () => {
    closers.forEach((close) => close());
    await Promise.all(running.map((r) => r.stop()));
  });
  return { running, closers };
}

/** startBunturn with --prometheus on a free loopback port, pushed to `running`, once it has said it serves /metrics at `url`. */
export async function startBunturnWithMetrics(running: Running[], options: BunturnOptions, waitMs = 5000): Promise<{ server: Running; url: string }> {
  const metricsPort = freePort();
  const server = await startBunturn({ ...options, args: [...(options.args ?? []), "--prometheus", "--prometheus-address", "127.0.0.1", "--prometheus-port", String(metricsPort)] });
  running.push(server);
  const url = `http://127.0.0.1:${metricsPort}/metrics`;
  expect(await pollUntil(() => server.output().includes(url), waitMs)).toBe(true);
  return { server, url };
}
