/**
 * RFC 5780 NAT behaviour discovery end to end: bunturn with --rfc5780 on 127.0.0.1 and 127.0.0.2 (both
 * loop back on Linux), asked by coturn's turnutils_natdiscovery and by a UDP socket of the test that
 * checks where each answer really came from. And without --rfc5780: CHANGE-REQUEST gets 420, no
 * OTHER-ADDRESS is sent, and turnutils_natdiscovery finds no RFC 5780 server.
 */
import { describe, expect, test } from "bun:test";
import {
  Attr, StunClass, StunMethod, StunWriter, decodeStun, getAttribute, readErrorCode, readOriginAddress, readUnknownAttributes,
  writeChangeRequest, writeResponsePort, type StunMessage,
} from "../../src/stun/index.ts";
import { formatEndpoint } from "../../src/net/endpoint.ts";
import { closeAfterAll, e2eTest, freePort, runCli, spawnUntil, startBunturn, type Running } from "./harness.ts";

const haveNatDiscovery = Bun.which("turnutils_natdiscovery") !== null;
if (!haveNatDiscovery && process.env.BUNTURN_REQUIRE_E2E === "1") {
  throw new Error("turnutils_natdiscovery not found, and BUNTURN_REQUIRE_E2E=1: apt-get install coturn");
}
const natTest = haveNatDiscovery ? e2eTest : (name: string, fn: () => Promise<void>) => test.skip(name, fn);

const { running, closers } = closeAfterAll();
const A = "127.0.0.1";
const B = "127.0.0.2";

async function server(rfc5780: boolean): Promise<{ s: Running; altPort: number }> {
  const altPort = freePort();
  const args = ["--listening-ip", B, "--relay-threads", "2", "--no-tcp", ...(rfc5780 ? ["--rfc5780", "--alt-listening-port", String(altPort)] : [])];
  const s = await startBunturn({ auth: "none", args });
  running.push(s);
  return { s, altPort };
}

async function natDiscovery(port: number): Promise<string> {
  const { proc, chunks } = await spawnUntil(["turnutils_natdiscovery", "-m", "-f", "-L", A, "-p", String(port), A], null, 0);
  const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
  await proc.exited;
  clearTimeout(timer);
  await Bun.sleep(20);
  return chunks.join("");
}

interface Answer {
  from: string;
  message: StunMessage;
}

/** A UDP socket of the test on 127.0.0.1 that records each datagram with the address it came from. */
async function client() {
  const inbox: Answer[] = [];
  const socket = await Bun.udpSocket({
    hostname: A,
    socket: {
      data(_s, data, port, address) {
        const decoded = decodeStun(new Uint8Array(data));
        if (decoded.ok) inbox.push({ from: `${address}:${port}`, message: decoded.message });
      },
    },
  });
  closers.push(() => socket.close());
  return {
    port: socket.port,
    inbox,
    /** Sends a Binding to ip:port; resolves with the answer, or null when none came within 1 s. */
    async binding(ip: string, port: number, attrs?: (w: StunWriter) => void, from = inbox): Promise<Answer | null> {
      const w = new StunWriter(StunMethod.Binding, StunClass.Request, crypto.getRandomValues(new Uint8Array(12)));
      attrs?.(w);
      const tid = w.finish().subarray(8, 20).join();
      socket.send(w.finish(), port, ip);
      const end = Date.now() + 1000;
      while (Date.now() < end) {
        const i = from.findIndex((a) => a.message.transactionId.join() === tid);
        if (i >= 0) return from.splice(i, 1)[0]!;
        await Bun.sleep(5);
      }
      return null;
    },
  };
}

function address(m: StunMessage, type: number): string | undefined {
  const v = getAttribute(m, type);
  return v === undefined ? undefined : formatEndpoint(readOriginAddress(v, 0, v.length)!);
}

describe("RFC 5780 (--rfc5780, two loopback IPs)", () => {
  natTest("turnutils_natdiscovery: endpoint-independent mapping and filtering, the CHANGE-REQUEST answered from the alternate IP and port", async () => {
    const { s, altPort } = await server(true);
    const out = await natDiscovery(s.port);
    // Four RFC 5780 answers: mapping asks A then B (OTHER-ADDRESS's IP, listening port); filtering asks A, then A with change IP and port.
    expect(out.match(/RFC 5780 response \d/g)?.length).toBe(4);
    const origins = [...out.matchAll(/RFC 5780 response \d[\s\S]*?Response origin: : (\S+)/g)].map((m) => m[1]);
    expect(origins).toEqual([`${A}:${s.port}`, `${B}:${s.port}`, `${A}:${s.port}`, `${B}:${altPort}`]);
    expect(out).toContain(`Other addr: : ${B}:${altPort}`);
    expect(out).toContain("NAT with Endpoint Independent Mapping!");
    // On loopback nothing filters: the answer from the other IP and port arrives.
    expect(out).toContain("NAT with Endpoint Independent Filtering!");
  });

  e2eTest("each CHANGE-REQUEST is answered from the socket it names, which RESPONSE-ORIGIN states; RESPONSE-PORT redirects the answer", async () => {
    const { s, altPort } = await server(true);
    const c = await client();
    const cases: Array<[boolean, boolean, string]> = [
      [false, false, `${A}:${s.port}`],
      [false, true, `${A}:${altPort}`],
      [true, false, `${B}:${s.port}`],
      [true, true, `${B}:${altPort}`],
    ];
    for (const [ip, port, expected] of cases) {
      const answer = await c.binding(A, s.port, (w) => writeChangeRequest(w, ip, port));
      expect(answer?.message.cls).toBe(StunClass.SuccessResponse);
      expect(answer!.from).toBe(expected); // where the datagram really came from
      expect(address(answer!.message, Attr.ResponseOrigin)).toBe(expected);
      expect(address(answer!.message, Attr.OtherAddress)).toBe(`${B}:${altPort}`);
    }
    // Asked on the alternate IP and port, the other address is the primary one.
    const alt = await c.binding(B, altPort);
    expect(address(alt!.message, Attr.OtherAddress)).toBe(`${A}:${s.port}`);
    // RESPONSE-PORT: the answer goes to another socket on the same IP.
    const other = await client();
    const redirected = await c.binding(A, s.port, (w) => writeResponsePort(w, other.port), other.inbox);
    expect(redirected?.message.cls).toBe(StunClass.SuccessResponse);
    expect(c.inbox.length).toBe(0);
  });
});

describe("--rfc5780 at start", () => {
  e2eTest("an alternate port in use is one line and exit 1, before anything listens", async () => {
    const port = freePort();
    const altPort = freePort();
    const holder = await Bun.udpSocket({ hostname: B, port: altPort });
    closers.push(() => holder.close());
    const { code, output } = await runCli(["--rfc5780", "--listening-ip", A, "--listening-ip", B, "--listening-port", String(port), "--alt-listening-port", String(altPort), "--no-auth"]);
    expect(code).toBe(1);
    expect(output).toContain(`cannot listen on ${B}:${altPort} (--alt-listening-port, RFC 5780): address already in use`);
    expect(output).not.toContain("listening on 127");
  });

  e2eTest("without two listening IPs of one family: one line saying what is needed, exit 1", async () => {
    const { code, output } = await runCli(["--rfc5780", "--listening-ip", A, "--listening-port", String(freePort()), "--no-auth"]);
    expect(code).toBe(1);
    expect(output.trim().split("\n").length).toBe(1);
    expect(output).toContain("--rfc5780 needs two listening IPs of one family");
  });
});

describe("without --rfc5780", () => {
  e2eTest("a CHANGE-REQUEST gets 420 from the address it was sent to; no OTHER-ADDRESS or RESPONSE-ORIGIN", async () => {
    const { s } = await server(false);
    const c = await client();
    const refused = await c.binding(A, s.port, (w) => writeChangeRequest(w, true, true));
    expect(refused?.from).toBe(`${A}:${s.port}`);
    const code = getAttribute(refused!.message, Attr.ErrorCode)!;
    expect(readErrorCode(code, 0, code.length)?.code).toBe(420);
    const unknown = getAttribute(refused!.message, Attr.UnknownAttributes)!;
    expect(readUnknownAttributes(unknown, 0, unknown.length)).toEqual([Attr.ChangeRequest]);
    const plain = await c.binding(A, s.port);
    expect(plain?.message.cls).toBe(StunClass.SuccessResponse);
    expect(getAttribute(plain!.message, Attr.OtherAddress)).toBeUndefined();
    expect(getAttribute(plain!.message, Attr.ResponseOrigin)).toBeUndefined();
  });

  natTest("turnutils_natdiscovery finds no RFC 5780 server and gives no mapping or filtering verdict", async () => {
    const { s } = await server(false);
    const out = await natDiscovery(s.port);
    expect(out).toContain("UDP reflexive addr");
    expect(out).not.toContain("RFC 5780 response");
    expect(out).not.toMatch(/NAT with .* (Mapping|Filtering)!/);
  });
});
