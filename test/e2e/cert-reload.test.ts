/**
 * TLS certificate reload (coturn's SIGUSR2, and a change of the files) end to end: a TURN client over
 * TLS that allocated before the reload keeps its session and its allocation after it, a new connection
 * sees the new certificate (fingerprints compared), and a corrupt file or a key that does not match
 * keeps the old certificate with one line saying why. Everything on 127.0.0.1.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, type TLSSocket } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Attr, StunClass, StunMethod, StunWriter, writeLifetime, writeMessageIntegrity, writeRequestedTransport, writeText } from "../../src/stun/index.ts";
import { md5Key } from "../../src/turn/credentials.ts";
import { Response } from "../turn/harness.ts";
import { PASSWORD, REALM, USER, freePort, startBunturn, type Running } from "./harness.ts";

const dir = mkdtempSync(join(tmpdir(), "bunturn-cert-reload-"));
const running: Running[] = [];
const sockets: TLSSocket[] = [];
afterAll(async () => {
  sockets.forEach((s) => s.destroy());
  await Promise.all(running.splice(0).map((r) => r.stop()));
  rmSync(dir, { recursive: true, force: true });
});

function makePair(name: string): { cert: string; key: string; fingerprint: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const gen = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", `/CN=${name}`, "-keyout", key, "-out", cert], { stdout: "ignore", stderr: "pipe" });
  if (gen.exitCode !== 0) throw new Error(`openssl failed: ${gen.stderr.toString()}`);
  return { cert, key, fingerprint: new X509Certificate(readFileSync(cert)).fingerprint256 };
}

async function until(what: string, f: () => boolean, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

/** A TURN client over one TLS connection: STUN messages framed by their length (RFC 8656 §3.1). */
class TlsTurnClient {
  private buffer = Buffer.alloc(0);
  private waiting: ((r: Response) => void) | undefined;
  private nonce = "";

  private constructor(readonly socket: TLSSocket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      while (this.buffer.length >= 20) {
        const length = 20 + this.buffer.readUInt16BE(2);
        if (this.buffer.length < length) break;
        const message = new Uint8Array(this.buffer.subarray(0, length));
        this.buffer = this.buffer.subarray(length);
        this.waiting?.(new Response(message));
      }
    });
  }

  static open(port: number): Promise<TlsTurnClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => resolve(new TlsTurnClient(socket)));
      sockets.push(socket);
      socket.once("error", reject);
    });
  }

  get fingerprint(): string {
    return this.socket.getPeerCertificate().fingerprint256;
  }

  async request(method: number, attrs: (w: StunWriter) => void, signed = this.nonce !== ""): Promise<Response> {
    const w = new StunWriter(method, StunClass.Request, crypto.getRandomValues(new Uint8Array(12)));
    attrs(w);
    if (signed) {
      writeText(w, Attr.Username, USER);
      writeText(w, Attr.Realm, REALM);
      writeText(w, Attr.Nonce, this.nonce);
      writeMessageIntegrity(w, md5Key(USER, REALM, PASSWORD));
    }
    const response = new Promise<Response>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no response over TLS")), 5000);
      this.waiting = (r) => {
        clearTimeout(timer);
        resolve(r);
      };
    });
    this.socket.write(w.finish());
    const r = await response;
    if (r.errorCode === 401 && !signed) {
      this.nonce = r.text(Attr.Nonce);
      return this.request(method, attrs, true);
    }
    return r;
  }

  allocate(): Promise<Response> {
    return this.request(StunMethod.Allocate, (w) => writeRequestedTransport(w, 17));
  }

  refresh(lifetime: number): Promise<Response> {
    return this.request(StunMethod.Refresh, (w) => writeLifetime(w, lifetime));
  }
}

describe("TLS certificate reload", () => {
  test("SIGUSR2 and a change of the files load the new certificate for new connections; an open TLS session keeps working; a corrupt file or a mismatched key keeps the old one", async () => {
    const a = makePair("cert-a");
    const b = makePair("cert-b");
    const cert = join(dir, "live.crt");
    const key = join(dir, "live.key");
    copyFileSync(a.cert, cert);
    copyFileSync(a.key, key);
    const tlsPort = freePort();
    const s = await startBunturn({ args: ["--tls-listening-port", String(tlsPort), "--cert", cert, "--pkey", key] });
    running.push(s);
    const lines = (text: string) => s.output().split(text).length - 1;

    const early = await TlsTurnClient.open(tlsPort);
    expect(early.fingerprint).toBe(a.fingerprint);
    expect((await early.allocate()).ok).toBe(true);

    // Renewed pair, then SIGUSR2.
    copyFileSync(b.cert, cert);
    copyFileSync(b.key, key);
    s.proc.kill("SIGUSR2");
    await until("the reload line", () => lines("SIGUSR2: TLS certificate reloaded") === 1);
    expect(s.output()).toContain(b.fingerprint);
    const late = await TlsTurnClient.open(tlsPort);
    expect(late.fingerprint).toBe(b.fingerprint);
    expect((await late.allocate()).ok).toBe(true);
    // The session opened before the reload: same TLS connection, same allocation, still answered.
    expect(early.socket.destroyed).toBe(false);
    expect(early.fingerprint).toBe(a.fingerprint);
    expect((await early.refresh(600)).ok).toBe(true);

    // A corrupt certificate: refused with the reason, the previous one stays.
    writeFileSync(cert, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
    s.proc.kill("SIGUSR2");
    await until("the refusal line", () => lines("SIGUSR2: TLS certificate NOT reloaded") === 1);
    expect((await TlsTurnClient.open(tlsPort)).fingerprint).toBe(b.fingerprint);

    // A certificate whose key is not the one in the key file: refused too.
    copyFileSync(a.cert, cert);
    s.proc.kill("SIGUSR2");
    await until("the second refusal line", () => lines("SIGUSR2: TLS certificate NOT reloaded") === 2);
    expect(s.output()).toMatch(/KEY_VALUES_MISMATCH|key values mismatch/i);
    expect((await TlsTurnClient.open(tlsPort)).fingerprint).toBe(b.fingerprint);

    // No signal: the files change (a renewal tool) and the poll reloads them within a few seconds.
    // (An earlier poll may have reloaded B's files before SIGUSR2 did: count from here.)
    const reloadsBefore = lines("certificate files changed: TLS certificate reloaded");
    copyFileSync(a.key, key);
    await until("the reload after the files changed", () => lines("certificate files changed: TLS certificate reloaded") > reloadsBefore);
    expect((await TlsTurnClient.open(tlsPort)).fingerprint).toBe(a.fingerprint);
    expect((await early.refresh(600)).ok).toBe(true);
    expect((await late.refresh(600)).ok).toBe(true);
    expect(s.proc.exitCode).toBeNull();
  }, 60000);
});
