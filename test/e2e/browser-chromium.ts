/**
 * Headless Chromium (Debian's `chromium`) for the browser end-to-end test: found or skipped (required under
 * BUNTURN_REQUIRE_E2E=1, as harness.ts does for coturn's clients), launched on one URL with a fresh
 * profile, and killed with every process it forked. Plus a certificate Chromium is told to trust for
 * turns: by its key alone (--ignore-certificate-errors-spki-list), not by ignoring every certificate error.
 */
import { createHash, createPublicKey } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const CHROMIUM = Bun.which("chromium");
if (!CHROMIUM && process.env.BUNTURN_REQUIRE_E2E === "1") {
  throw new Error("chromium not found, and BUNTURN_REQUIRE_E2E=1: apt-get install --no-install-recommends chromium");
}
if (!CHROMIUM) console.warn("e2e: chromium not installed (apt-get install chromium); skipping the browser end-to-end test");

/** A one-day self-signed P-256 certificate for 127.0.0.1 and localhost (subjectAltName: what Chromium checks), with the SHA-256 of its public key, base64. */
export function loopbackCert(dir: string): { cert: string; key: string; spkiSha256: string } {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const gen = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert], { stdout: "ignore", stderr: "pipe" });
  if (gen.exitCode !== 0) throw new Error(`openssl failed: ${gen.stderr.toString()}`);
  const spki = createPublicKey(readFileSync(cert)).export({ type: "spki", format: "der" });
  return { cert, key, spkiSha256: createHash("sha256").update(spki).digest("base64") };
}

export interface Browser {
  /** What Chromium printed so far (for a failure's message). */
  output(): string;
  /** Kills Chromium's whole process group, waits for it, removes its profile. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Chromium opening `url` headless. Root needs --no-sandbox (no user namespace sandbox here); the
 * profile is a new temporary directory (no state between runs, and --ignore-certificate-errors-spki-list
 * is honoured only with an explicit --user-data-dir); background networking is off, so nothing leaves
 * loopback. WebRTC leaves the loopback interface out of its networks unless told: on a host whose only
 * interface is lo (a CI container without a network) it would gather no candidate at all. HOME is the profile too, so its crash handler's database stays out of the real home.
 * Detached into its own process group: /usr/bin/chromium is a shell wrapper that forks the browser, which
 * forks its zygote, renderer and network service, and one kill of the group ends them all; the crash
 * handlers (their own sessions) exit with the browser, and any still alive are killed by pid.
 */
export function launchChromium(url: string, flags: string[] = []): Browser {
  const profile = mkdtempSync(join(tmpdir(), "bunturn-chromium-"));
  const chunks: string[] = [];
  const proc = Bun.spawn([CHROMIUM!, "--headless=new", "--no-sandbox", `--user-data-dir=${profile}`, "--no-first-run",
    "--no-default-browser-check", "--disable-gpu", "--disable-extensions", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--mute-audio", "--allow-loopback-in-peer-connection", ...flags, url],
  { stdin: "ignore", stdout: "pipe", stderr: "pipe", detached: true, env: { ...process.env, HOME: profile, XDG_CONFIG_HOME: profile, XDG_CACHE_HOME: profile } });
  const decoder = new TextDecoder();
  const collect = async (stream: ReadableStream<Uint8Array>) => { for await (const chunk of stream) chunks.push(decoder.decode(chunk)); };
  void collect(proc.stdout).catch(() => {});
  void collect(proc.stderr).catch(() => {});
  let stopped: Promise<void> | undefined;
  return {
    output: () => chunks.join(""),
    stop: () => stopped ??= (async () => {
      try { process.kill(-proc.pid, "SIGKILL"); } catch { /* the group is gone already */ }
      await proc.exited;
      for (const pid of processesMentioning(profile)) {
        try { process.kill(pid, "SIGKILL"); } catch { /* exited meanwhile */ }
      }
      rmSync(profile, { recursive: true, force: true });
    })(),
  };
}

/** Live processes whose command line names `path` (this launch's profile: only its own processes do). */
function processesMentioning(path: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(path)) found.push(Number(entry));
    } catch { /* gone, or not ours to read */ }
  }
  return found;
}
