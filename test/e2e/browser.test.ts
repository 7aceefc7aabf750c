/**
 * A browser through bunturn: headless Chromium opens browser-page.html, where two RTCPeerConnections
 * restricted to relayed candidates (iceTransportPolicy "relay") exchange data-channel messages both ways,
 * once each over turn: UDP, turn: TCP and turns: (TLS). The page posts what arrived and the selected
 * candidate pair from getStats() back to the test's own server; the test checks both ends were relayed
 * over the transport asked for, and that the relay's sessions (its control socket) list those
 * allocations, with that transport and traffic both ways, at the relayed addresses the browser used.
 * Everything on 127.0.0.1 (http://127.0.0.1 is a secure context), each case bounded in time.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CHROMIUM, launchChromium, loopbackCert, type Browser } from "./browser-chromium.ts";
import { freePort, startBunturn, type Running } from "./harness.ts";

const PASSWORD = "through-the-browser";
/** One user per case: a case's sessions are told from those a previous case left (UDP ones outlive the browser). */
const CASES = [
  { name: "turn: over UDP", user: "browser-udp", transport: "udp", url: (p: Ports) => `turn:127.0.0.1:${p.turn}?transport=udp` },
  { name: "turn: over TCP", user: "browser-tcp", transport: "tcp", url: (p: Ports) => `turn:127.0.0.1:${p.turn}?transport=tcp` },
  { name: "turns: (TLS over TCP)", user: "browser-tls", transport: "tls", url: (p: Ports) => `turns:127.0.0.1:${p.turns}?transport=tcp` },
] as const;
interface Ports { turn: number; turns: number }

interface Candidates { state: string; local: { type: string; relayProtocol?: string; address: string; port: number }; remote: { type: string } }
interface Outcome { error?: string; events: string[]; calleeGot?: string[]; callerGot?: string[]; caller?: Candidates | null; callee?: Candidates | null }
interface Session { user: string; transport: string; relays: string[]; packetsToPeer: number; packetsToClient: number }

const CASE_MS = 20000;
const RESULT_MS = 15000;
const dir = mkdtempSync(join(tmpdir(), "bunturn-browser-"));
const controlSocket = join(dir, "control.sock");
let relay: Running | undefined;
let ports: Ports;
let spkiSha256: string;
let pages: ReturnType<typeof Bun.serve> | undefined;
const browsers: Browser[] = [];
const waiting = new Map<string, (outcome: Outcome) => void>();

beforeAll(async () => {
  if (!CHROMIUM) return;
  const cert = loopbackCert(dir);
  spkiSha256 = cert.spkiSha256;
  const turns = freePort();
  relay = await startBunturn({
    args: ["--tls-listening-port", String(turns), "--cert", cert.cert, "--pkey", cert.key, "--control-socket", controlSocket,
      ...CASES.flatMap((c) => ["--user", `${c.user}:${PASSWORD}`])],
  });
  ports = { turn: relay.port, turns };
  const page = Bun.file(join(import.meta.dir, "browser-page.html"));
  pages = Bun.serve({
    hostname: "127.0.0.1",
    port: freePort(),
    async fetch(request) {
      const path = new URL(request.url).pathname;
      if (path === "/") return new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } });
      if (path === "/result" && request.method === "POST") {
        const outcome = (await request.json()) as Outcome & { case: string };
        waiting.get(outcome.case)?.(outcome);
        return new Response("ok");
      }
      return new Response("not found", { status: 404 });
    },
  });
}, 20000);

afterAll(async () => {
  await Promise.all(browsers.map((b) => b.stop()));
  pages?.stop(true);
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The relay's live allocations, from its control socket (what `bunturn admin sessions --json` prints). */
async function sessions(): Promise<Session[]> {
  const response = await fetch("http://localhost/sessions", { unix: controlSocket, signal: AbortSignal.timeout(5000) } as RequestInit);
  return (await response.json()) as Session[];
}

/** Opens the page in a new Chromium for one case and waits for what it posts back (or fails with both sides' output). */
async function runPage(name: string, user: string, url: string): Promise<{ outcome: Outcome; browser: Browser }> {
  const arrived = new Promise<Outcome>((resolve) => waiting.set(name, resolve));
  const query = new URLSearchParams({ case: name, url, username: user, credential: PASSWORD });
  // Trust the relay's self-signed certificate by its key only (what turns: checks), nothing wider.
  const browser = launchChromium(`http://127.0.0.1:${pages!.port}/?${query}`, [`--ignore-certificate-errors-spki-list=${spkiSha256}`]);
  browsers.push(browser);
  const outcome = await Promise.race([arrived, Bun.sleep(RESULT_MS).then(() => undefined)]);
  if (!outcome) throw new Error(`no result from the page within ${RESULT_MS} ms\n--- chromium:\n${browser.output()}\n--- bunturn:\n${relay!.output()}`);
  return { outcome, browser };
}

for (const c of CASES) {
  (CHROMIUM ? test : test.skip)(`Chromium: two peer connections relayed through bunturn, ${c.name}`, async () => {
    const url = c.url(ports);
    const { outcome, browser } = await runPage(c.name, c.user, url);
    try {
      expect(outcome.error, `${outcome.error}\n${outcome.events.join("\n")}\n--- chromium:\n${browser.output()}`).toBeUndefined();
      const messages = (to: string) => [0, 1, 2, 3, 4].map((i) => `to ${to} ${i}`);
      expect(outcome.calleeGot).toEqual(messages("callee"));
      expect(outcome.callerGot).toEqual(messages("caller"));
      // RTCIceCandidateStats.relayProtocol: how the browser reached the TURN server ("udp", "tcp" or "tls").
      for (const side of [outcome.caller!, outcome.callee!]) {
        expect(side).toMatchObject({ local: { type: "relay", relayProtocol: c.transport }, remote: { type: "relay" } });
      }

      // bunturn's side: this case's user holds allocations over that transport only, each with traffic
      // both ways, and among them the two relayed addresses the browser's selected pair used.
      const mine = (await sessions()).filter((s) => s.user === c.user);
      expect(mine.length).toBeGreaterThanOrEqual(2);
      expect(new Set(mine.map((s) => s.transport))).toEqual(new Set([c.transport]));
      const relayed = mine.flatMap((s) => s.relays);
      for (const side of [outcome.caller!, outcome.callee!]) {
        const used = mine.find((s) => s.relays.includes(`${side.local.address}:${side.local.port}`));
        expect(used, `relayed address ${side.local.address}:${side.local.port} not among ${relayed.join(", ")}`).toBeDefined();
        expect(used!.packetsToPeer).toBeGreaterThan(0);
        expect(used!.packetsToClient).toBeGreaterThan(0);
      }
    } finally {
      await browser.stop();
    }
  }, CASE_MS);
}
