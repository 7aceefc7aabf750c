/**
 * The server as an operator meets it: start-up errors, the recvmmsg stats line, clean shutdown, and the
 * single binary. Uses coturn's clients where traffic is needed.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PASSWORD, ROOT, USER, e2eTest, relayRange, runUclient, spawnUntil, startBunturn, startPeer, stopProcess, type Running } from "./harness.ts";

const running: Running[] = [];
afterAll(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});

async function runCli(args: string[]): Promise<{ code: number; output: string }> {
  const { proc, chunks } = await spawnUntil(["bun", join(ROOT, "src/cli/main.ts"), ...args], null, 0);
  const timer = setTimeout(() => proc.kill("SIGKILL"), 15000);
  const code = await proc.exited;
  clearTimeout(timer);
  return { code, output: chunks.join("") };
}

describe("start-up errors: one clear line, exit 1", () => {
  test("an unknown flag", async () => {
    const r = await runCli(["--listening-port", "3478", "--bogus-flag"]);
    expect(r.code).toBe(1);
    expect(r.output).toContain("unknown option '--bogus-flag'");
    expect(r.output.trim().split("\n").length).toBe(1);
  });

  test("a port already in use", async () => {
    const first = await startBunturn({});
    running.push(first);
    const [min, max] = relayRange(10);
    const r = await runCli(["--listening-ip", "127.0.0.1", "-p", String(first.port), "--relay-ip", "127.0.0.1", "--min-port", String(min), "--max-port", String(max), "--user", "a:b"]);
    expect(r.code).toBe(1);
    expect(r.output).toContain(`cannot listen on 127.0.0.1:${first.port}: address already in use`);
    expect(r.output.trim().split("\n").length).toBe(1);
  });
});

describe("lifecycle", () => {
  test("SIGTERM stops every engine and the process exits 0", async () => {
    const s = await startBunturn({ args: ["--relay-threads", "2"] });
    expect(s.output()).toContain("2 engine(s)");
    expect(await s.stop()).toBe(0);
    expect(s.output()).toContain("SIGTERM: stopping");
  });
});

describe("--udp-recvmmsg-log", () => {
  e2eTest("prints coturn's stats line with plausible numbers, summed over engines", async () => {
    const s = await startBunturn({ args: ["--udp-recvmmsg", "--udp-recvmmsg-log", "--log-stats-interval", "1", "--relay-threads", "2"] });
    running.push(s);
    const p = await startPeer();
    running.push(p);
    const r = await runUclient(["-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(s.port), "-n", "50", "-m", "2", "127.0.0.1"]);
    expect(r.lost).toBe(0);
    // Lines come every second while calls change: the first one after the run has ended counts
    // everything. Waited for rather than slept for: on a loaded machine the timer can fire late.
    const statsLines = () => s.output().split("\n").filter((l) => l.includes("udp-recvmmsg stats:"));
    const packetsOf = (line: string | undefined) => Number(/packets=(\d+)/.exec(line ?? "")?.[1] ?? 0);
    const deadline = Date.now() + 10_000;
    while (packetsOf(statsLines().at(-1)) < 2 * r.sent && Date.now() < deadline) await Bun.sleep(50);
    const lines = statsLines();
    expect(lines.length).toBeGreaterThan(0);
    const last = lines[lines.length - 1]!;
    const field = (name: string) => Number(new RegExp(`${name}=([\\d.]+)`).exec(last)?.[1] ?? NaN);
    expect(last).toMatch(/calls=\d+ packets=\d+ avg_batch=[\d.]+ wouldblock=\d+ unavailable=\d+ no_buffer=\d+ hist_1=\d+ hist_2=\d+ hist_3_4=\d+ hist_5_8=\d+ hist_9_16=\d+/);
    // Every relayed message crosses a recvmmsg twice (client->relay, peer->relay), plus STUN control traffic.
    expect(field("packets")).toBeGreaterThanOrEqual(2 * r.sent);
    expect(field("calls")).toBeGreaterThan(0);
    expect(field("avg_batch")).toBeCloseTo(field("packets") / field("calls"), 1);
    expect(field("hist_1") + field("hist_2") + field("hist_3_4") + field("hist_5_8") + field("hist_9_16") + field("wouldblock")).toBe(field("calls"));
    expect(field("unavailable")).toBe(0);
    // The line repeats only when calls changed: idle now, so at most one more line in 2.5 s.
    const before = s.output().split("udp-recvmmsg stats:").length;
    await Bun.sleep(2500);
    expect(s.output().split("udp-recvmmsg stats:").length - before).toBeLessThanOrEqual(1);
  });
});

describe("single binary", () => {
  e2eTest("bun build --compile makes a binary that runs from another directory and relays", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bunturn-bin-"));
    try {
      const out = join(dir, "bunturn");
      const build = Bun.spawnSync(["bun", "build", "--compile", "--target=bun-linux-x64", join(ROOT, "src/cli/main.ts"), join(ROOT, "src/engine/worker.ts"), "--outfile", out], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
      if (build.exitCode !== 0) throw new Error(build.stderr.toString() + build.stdout.toString());
      const elsewhere = mkdtempSync(join(tmpdir(), "bunturn-cwd-"));
      const s = await startBunturn({ command: [out], cwd: elsewhere });
      running.push(s);
      const p = await startPeer();
      running.push(p);
      const r = await runUclient(["-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(s.port), "-n", "20", "-m", "1", "127.0.0.1"]);
      expect(r.errors).toEqual([]);
      expect(r.sent).toBeGreaterThanOrEqual(20);
      expect(r.received).toBe(r.sent);
      expect(r.lost).toBe(0);
      expect(await stopProcess(s.proc)).toBe(0);
      rmSync(elsewhere, { recursive: true, force: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120000);
});

