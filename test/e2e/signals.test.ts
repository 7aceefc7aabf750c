/**
 * SIGHUP and SIGUSR2 never kill the relay (systemctl reload sends SIGHUP): each is logged, and the relay
 * answers Binding requests on every engine after each, with and without --log-file. SIGHUP reopens the
 * log file when there is one. SIGTERM during start-up stops the relay cleanly (exit 0), as after it.
 * (SIGUSR1 drains: test/e2e/drain.test.ts.)
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StunMethod } from "../../src/stun/index.ts";
import { TurnClient } from "../fuzz/turn-client.ts";
import { startBunturn, type Running } from "./harness.ts";

const dir = mkdtempSync(join(tmpdir(), "bunturn-signals-"));
const running: Running[] = [];
afterAll(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
  rmSync(dir, { recursive: true, force: true });
});

async function until(what: string, f: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

/** Bindings from 8 source ports: with 2 engines, the kernel's SO_REUSEPORT hash reaches both. */
async function bindingsAnswered(port: number): Promise<number> {
  const clients = await Promise.all(Array.from({ length: 8 }, () => TurnClient.open({ server: { host: "127.0.0.1", port }, attempts: 4 })));
  try {
    const answers = await Promise.all(clients.map((c) => c.request(StunMethod.Binding, () => {}, false).then((r) => r.ok, () => false)));
    return answers.filter(Boolean).length;
  } finally {
    clients.forEach((c) => c.close());
  }
}

for (const withLogFile of [false, true]) {
  test(`SIGHUP, SIGUSR2 leave the relay serving (${withLogFile ? "with" : "without"} --log-file)`, async () => {
    const log = join(dir, `relay-${withLogFile}.log`);
    const relay = await startBunturn({ args: ["--relay-threads", "2", ...(withLogFile ? ["--log-file", log] : [])] });
    running.push(relay);
    expect(await bindingsAnswered(relay.port)).toBe(8);
    if (withLogFile) renameSync(log, `${log}.1`);
    for (const signal of ["SIGHUP", "SIGUSR2", "SIGHUP"] as const) {
      const before = relay.output().split(signal).length;
      relay.proc.kill(signal);
      await until(`the ${signal} line`, () => relay.output().split(signal).length > before);
      expect(relay.proc.exitCode).toBeNull();
      expect(await bindingsAnswered(relay.port)).toBe(8);
    }
    expect(relay.output()).toContain(withLogFile ? `SIGHUP: log file ${log} reopened` : "SIGHUP: no log file to reopen");
    expect(relay.output()).toContain("SIGUSR2:");
    if (withLogFile) {
      // The file logrotate moved keeps the old lines; the reopened one gets the new ones.
      expect(existsSync(log)).toBe(true);
      expect(readFileSync(log, "utf8")).toContain("SIGUSR2:");
      expect(readFileSync(`${log}.1`, "utf8")).toContain("listening on");
    }
    expect(await relay.stop()).toBe(0);
  }, 30000);
}

test("SIGTERM while the engines are still starting: a clean stop (exit 0), not the kernel's default (143)", async () => {
  // At -v the connection limits are said before the engines start; their warm-up then takes 400 ms more
  // before the listeners open and "listening on" is printed.
  const relay = await startBunturn({ args: ["-v", "--relay-threads", "2"], ready: /TCP\/TLS clients: at most/ });
  running.push(relay);
  relay.proc.kill("SIGTERM");
  expect(await relay.proc.exited).toBe(0);
  expect(relay.output()).toContain("SIGTERM: stopping");
});
