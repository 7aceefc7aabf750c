/**
 * TURN over DTLS end to end (--dtls): coturn's turnutils_uclient -S over UDP relays through bunturn with
 * nothing lost; plain STUN and ChannelData share the port; a flood of ClientHellos from sources that never
 * answer the cookie leaves no association; without DTLS a ClientHello gets no answer at all; openssl
 * s_client completes a DTLS 1.2 handshake and sees a reloaded certificate after SIGUSR2.
 */
import { describe, expect } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bindingRequest } from "../binding-request.ts";
import { initialClientHello } from "../ffi/dtls-client.ts";
import {
  PASSWORD, USER, closeAfterAll, e2eTest, freePort, runUclient, scrapeMetrics, pollUntil, selfSignedCert, startBunturn, startBunturnWithMetrics, startPeer,
  type Running, type UclientResult,
} from "./harness.ts";

const { running, closers } = closeAfterAll();
const dir = mkdtempSync(join(tmpdir(), "bunturn-dtls-e2e-"));
closers.push(() => rmSync(dir, { recursive: true, force: true }));

/** Two certificates a reload swaps, told apart by their CN. */
const first = selfSignedCert(mkdtempSync(join(dir, "first-")), "first");
const second = selfSignedCert(mkdtempSync(join(dir, "second-")), "second");
const live = { cert: join(dir, "live.crt"), key: join(dir, "live.key") };
copyFileSync(first.cert, live.cert);
copyFileSync(first.key, live.key);

/** bunturn with DTLS on (the certificate in `live`), its TLS port free too (or `tlsPort`). */
function dtlsArgs(extra: string[] = [], tlsPort = freePort()): string[] {
  return ["--dtls", "--cert", live.cert, "--pkey", live.key, "--tls-listening-port", String(tlsPort), ...extra];
}

async function peer(): Promise<Running> {
  const p = await startPeer();
  running.push(p);
  return p;
}

function expectClean(r: UclientResult, messages: number): void {
  // uclient offers DTLS 1.0 before 1.2; our refusal of it ("alert protocol version") is right.
  const errors = r.errors.filter((line) => !/tlsv1 alert protocol version/.test(line));
  if (r.lost !== 0 || errors.length > 0 || r.received !== r.sent) console.error(r.output.slice(-3000));
  expect(errors).toEqual([]);
  expect(r.sent).toBeGreaterThanOrEqual(messages);
  expect(r.received).toBe(r.sent);
  expect(r.lost).toBe(0);
}

/** What comes back to `datagrams` sent from one fresh UDP socket within `ms`. */
async function exchange(port: number, datagrams: Uint8Array[], ms = 400, address = "127.0.0.1"): Promise<Uint8Array[]> {
  const replies: Uint8Array[] = [];
  // An ICMP port unreachable (nothing listening there) is no answer either.
  const socket = await Bun.udpSocket({ hostname: address, socket: { data: (_s, data) => void replies.push(new Uint8Array(data)), error: () => {} } });
  for (const d of datagrams) socket.send(d, port, "127.0.0.1");
  await Bun.sleep(ms);
  socket.close();
  return replies;
}

/** `openssl s_client -dtls1_2` to the port: its output (the server certificate's subject among it). */
async function sClient(port: number): Promise<string> {
  const proc = Bun.spawn(["openssl", "s_client", "-dtls1_2", "-connect", `127.0.0.1:${port}`], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.stdin.end(), 1500); // after the handshake, end the session
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return out + err;
}

describe("TURN over DTLS", () => {
  for (const recvmmsg of [false, true]) {
    e2eTest(`turnutils_uclient -S over UDP relays with nothing lost (--udp-recvmmsg ${recvmmsg ? "on" : "off"})`, async () => {
      const s = await startBunturn({ args: dtlsArgs(recvmmsg ? ["--udp-recvmmsg"] : []) });
      running.push(s);
      const p = await peer();
      const r = await runUclient(["-S", "-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(s.port), "-n", "50", "-l", "200", "-m", "5", "127.0.0.1"]);
      expectClean(r, 250);
    });
  }

  e2eTest("DTLS on UDP --tls-listening-port too; with --no-udp only there, and plain STUN there is dropped", async () => {
    const tlsPort = freePort();
    const s = await startBunturn({ args: dtlsArgs(["--no-tls"], tlsPort) });
    running.push(s);
    const p = await peer();
    expectClean(await runUclient(["-S", "-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(tlsPort), "-n", "20", "-l", "100", "-m", "1", "127.0.0.1"]), 20);
    expect((await exchange(tlsPort, [bindingRequest()])).length).toBe(1); // UDP is on: plain STUN there too, as coturn
    const tlsPortOnly = freePort();
    const d = await startBunturn({ args: dtlsArgs(["--no-tls", "--no-udp"], tlsPortOnly) });
    running.push(d);
    expect(d.output()).toContain(`127.0.0.1:${tlsPortOnly} (DTLS)`);
    expectClean(await runUclient(["-S", "-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(tlsPortOnly), "-n", "20", "-l", "100", "-m", "1", "127.0.0.1"]), 20);
    expect(await exchange(tlsPortOnly, [bindingRequest()])).toEqual([]);
    expect(await exchange(d.port, [initialClientHello()])).toEqual([]); // nothing on the listening port's UDP
  });

  e2eTest("plain STUN and ChannelData still work on the same port with DTLS on", async () => {
    const s = await startBunturn({ args: dtlsArgs() });
    running.push(s);
    const p = await peer();
    expectClean(await runUclient(["-u", USER, "-w", PASSWORD, "-e", "127.0.0.1", "-r", String(p.port), "-p", String(s.port), "-n", "40", "-l", "100", "-m", "2", "127.0.0.1"]), 80);
    const replies = await exchange(s.port, [bindingRequest()]);
    expect(replies.length).toBe(1);
    expect(replies[0]![0]).toBe(0x01); // a Binding success response
  });

  e2eTest("a flood of ClientHellos from sources that never answer leaves no DTLS association", async () => {
    const { server, url } = await startBunturnWithMetrics(running, { args: dtlsArgs() });
    const hello = initialClientHello();
    const sources = 200;
    const perSource = 5;
    let answered = 0;
    for (let i = 0; i < sources; i += 20) {
      const batch = Array.from({ length: 20 }, (_, k) => exchange(server.port, Array(perSource).fill(hello), 150, `127.0.${1 + ((i + k) >> 8)}.${1 + ((i + k) & 0xff)}`));
      for (const replies of await Promise.all(batch)) {
        answered += replies.length;
        for (const r of replies) expect(r[13]).toBe(3); // HelloVerifyRequest, nothing else
      }
    }
    expect(answered).toBe(sources * perSource);
    const m = await scrapeMetrics(url);
    expect(m.get("bunturn_dtls_hello_verify_requests_total")).toBe(sources * perSource);
    expect(m.get("bunturn_dtls_sessions")).toBe(0);
    expect(m.get("bunturn_dtls_handshakes_total")).toBe(0);
  });

  for (const [name, args] of [["without --dtls", []], ["with --dtls --no-dtls", dtlsArgs(["--no-dtls"])]] as const) {
    e2eTest(`${name}, a ClientHello is dropped without an answer and STUN is served`, async () => {
      const s = await startBunturn({ args: [...args] });
      running.push(s);
      expect(await exchange(s.port, [initialClientHello(), initialClientHello()])).toEqual([]);
      expect((await exchange(s.port, [bindingRequest()])).length).toBe(1);
    });
  }

  e2eTest("openssl s_client completes a DTLS 1.2 handshake; after SIGUSR2 new handshakes get the new certificate", async () => {
    copyFileSync(first.cert, live.cert);
    copyFileSync(first.key, live.key);
    const s = await startBunturn({ args: dtlsArgs() });
    running.push(s);
    const before = await sClient(s.port);
    expect(before).toMatch(/Protocol\s*: DTLSv1\.2/);
    expect(before).toMatch(/subject=CN ?= ?first/);
    copyFileSync(second.cert, live.cert);
    copyFileSync(second.key, live.key);
    s.proc.kill("SIGUSR2");
    // Each engine loads it again at its next turn; the kernel may hand the next client to any of them.
    const engines = Number(/(\d+) engine\(s\)/.exec(s.output())![1]);
    expect(await pollUntil(() => s.output().split("DTLS certificate reloaded").length - 1 === engines, 5000)).toBe(true);
    expect(await sClient(s.port)).toMatch(/subject=CN ?= ?second/);
  });
});
