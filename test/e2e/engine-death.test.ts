/**
 * An engine that dies never leaves a half-served port: its sockets stay in the SO_REUSEPORT groups and
 * its sessions are gone with its heap, so the relay logs one line, closes everything, removes its pidfile
 * and exits 1 for the service manager to restart it (docs/systemd.md: Restart=on-failure). The engines
 * here are the real Engine, dying on a magic datagram (test/engine/dying-worker.ts), behind the real CLI.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, freePort, relayRange, spawnUntil } from "./harness.ts";

const dir = mkdtempSync(join(tmpdir(), "bunturn-death-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

for (const how of ["die:throw", "die:exit"]) {
  test(`an engine that dies (${how === "die:throw" ? "uncaught exception" : "Worker exit"}) makes the relay exit 1 with one line`, async () => {
    const port = freePort();
    const [min, max] = relayRange(10);
    const pidfile = join(dir, `${how.slice(4)}.pid`);
    const { proc, chunks } = await spawnUntil([
      "bun", join(ROOT, "test/engine/dying-relay.ts"), "-L", "127.0.0.1", "-p", String(port), "-E", "127.0.0.1",
      "--min-port", String(min), "--max-port", String(max), "--no-auth", "--relay-threads", "2", "--pidfile", pidfile,
    ], /listening on/, 15000);
    const kill = setTimeout(() => proc.kill("SIGKILL"), 15000);
    try {
      expect(existsSync(pidfile)).toBe(true);
      const socket = await Bun.udpSocket({ hostname: "127.0.0.1" });
      socket.send(how, port, "127.0.0.1");
      const code = await proc.exited;
      socket.close();
      await Bun.sleep(50); // let the output readers drain
      expect(code).toBe(1);
      const output = chunks.join("");
      const deathLines = output.split("\n").filter((line) => /died|error|Error/.test(line));
      expect(deathLines.length).toBe(1);
      expect(deathLines[0]).toMatch(
        how === "die:throw"
          ? /engine [01] died \(injected engine death\); exiting so that the service manager restarts the relay/
          : /engine [01] died \(exit code 70\); exiting so that the service manager restarts the relay/,
      );
      expect(existsSync(pidfile)).toBe(false);
    } finally {
      clearTimeout(kill);
      if (proc.exitCode === null) proc.kill("SIGKILL");
    }
  }, 30000);
}
