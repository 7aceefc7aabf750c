import { describe, expect, test } from "bun:test";
import {
  Attr, ErrorCode, PasswordAlgorithm, StunMethod, readPasswordAlgorithms, verifyMessageIntegrity,
  writeLifetime, writePasswordAlgorithm, writePasswordAlgorithms, writeRequestedTransport, writeText, writeMessageIntegrity,
  StunWriter, StunClass,
} from "../../src/stun/index.ts";
import { RestSecretCredentials, TurnServer, PeerPolicy } from "../../src/turn/server.ts";
import { harness, randomTid, REALM, Response, T0 } from "./harness.ts";
import { sha256Key } from "../../src/turn/credentials.ts";
import { StunDecoder } from "../../src/stun/index.ts";

const transport = (w: StunWriter) => writeRequestedTransport(w, 17);

describe("401 challenge (RFC 8489 §9.2.4 first check)", () => {
  test("carries only ERROR-CODE, REALM, NONCE, PASSWORD-ALGORITHMS: no SOFTWARE, no integrity", () => {
    const h = harness();
    const r = h.client().learnNonce();
    expect(r.message.attributes.map((a) => a.type)).toEqual([Attr.ErrorCode, Attr.Realm, Attr.Nonce, Attr.PasswordAlgorithms]);
    expect(r.text(Attr.Nonce).startsWith("obMatJos2")).toBe(true);
    const pa = r.attr(Attr.PasswordAlgorithms)!;
    expect(readPasswordAlgorithms(pa, 0, pa.length)!.map((e) => e.algorithm)).toEqual([PasswordAlgorithm.SHA256, PasswordAlgorithm.MD5]);
    expect(h.server.counters.unauthorized).toBe(1);
  });

  test("is small: at most the request plus ERROR-CODE, REALM, NONCE and PASSWORD-ALGORITHMS", () => {
    const h = harness();
    const c = h.client();
    const request = c.build(StunMethod.Allocate, transport, { auth: false, fingerprint: true });
    const reply = c.sendRaw(request)[0]!.data;
    const r = new Response(reply);
    const attrSize = (t: number) => 4 + ((r.attr(t)!.length + 3) & ~3);
    const bound = request.length + attrSize(Attr.ErrorCode) + attrSize(Attr.Realm) + attrSize(Attr.Nonce) + attrSize(Attr.PasswordAlgorithms);
    expect(reply.length).toBeLessThanOrEqual(bound);
    expect(reply.length).toBeLessThan(130);
    expect(r.has(Attr.Fingerprint)).toBe(true);
  });

  test("nonces are per source (address and port) and stateless: another engine with the same secret accepts them", () => {
    const h = harness();
    const a = h.client("192.0.2.1", 1000);
    const b = h.client("192.0.2.1", 1001);
    a.learnNonce();
    b.learnNonce();
    expect(a.nonce).not.toBe(b.nonce);
    // A second server instance (another engine) knows nothing of the first, only the shared secret.
    const h2 = harness();
    const a2 = h2.client("192.0.2.1", 1000);
    a2.nonce = a.nonce;
    a2.realm = REALM;
    expect(a2.allocate().ok).toBe(true);
  });

  test("a flood of unauthenticated requests from spoofed sources creates nothing", () => {
    const h = harness();
    for (let i = 0; i < 2000; i++) {
      const c = h.client(`10.${(i >> 8) & 255}.${i & 255}.1`, 1024 + i);
      expect(c.request(StunMethod.Allocate, transport, { auth: false }).errorCode).toBe(401);
    }
    expect(h.server.allocationCount).toBe(0);
    expect(h.server.pollTimeout()).toBeUndefined();
    expect(h.relays.opened.length).toBe(0);
  });
});

describe("credential checks (RFC 8489 §9.2.4)", () => {
  test("MESSAGE-INTEGRITY without USERNAME, REALM or NONCE → 400 without REALM/NONCE", () => {
    const h = harness();
    const c = h.client();
    c.learnNonce();
    const key = c.key();
    const variants: [string, boolean, boolean, boolean][] = [
      ["no username", false, true, true],
      ["no realm", true, false, true],
      ["no nonce", true, true, false],
    ];
    for (const [, withUser, withRealm, withNonce] of variants) {
      const w = new StunWriter(StunMethod.Allocate, StunClass.Request, randomTid());
      transport(w);
      if (withUser) writeText(w, Attr.Username, "alice");
      if (withRealm) writeText(w, Attr.Realm, REALM);
      if (withNonce) writeText(w, Attr.Nonce, c.nonce!);
      writeMessageIntegrity(w, key);
      const r = new Response(c.sendRaw(w.finish())[0]!.data);
      expect(r.errorCode).toBe(400);
      expect(r.has(Attr.Realm) || r.has(Attr.Nonce) || r.has(Attr.MessageIntegrity)).toBe(false);
    }
    expect(h.server.allocationCount).toBe(0);
  });

  test("wrong password → 401; unknown user → 401; wrong realm → 401", () => {
    const h = harness();
    const c = h.client();
    c.learnNonce();
    expect(c.allocate(undefined, { password: "nope" }).errorCode).toBe(401);
    expect(c.allocate(undefined, { username: "mallory" }).errorCode).toBe(401);
    expect(c.allocate(undefined, { realm: "elsewhere" }).errorCode).toBe(401);
    const r = c.allocate(undefined, { password: "nope" });
    expect(r.has(Attr.Nonce) && r.has(Attr.Realm)).toBe(true);
    expect(h.server.allocationCount).toBe(0);
    expect(c.allocate().ok).toBe(true);
  });

  test("a tampered message fails integrity → 401", () => {
    const h = harness();
    const c = h.client();
    c.learnNonce();
    const request = c.build(StunMethod.Allocate, (w) => { transport(w); writeLifetime(w, 900); });
    request[request.indexOf(0x84, 20)] ^= 0x01; // lifetime 900 = 0x384: flip a bit of it
    expect(new Response(c.sendRaw(request)[0]!.data).errorCode).toBe(401);
    expect(h.server.allocationCount).toBe(0);
  });

  test("nonce expiry → 438 with a fresh nonce, which then works", () => {
    const h = harness({ nonceLifetimeSeconds: 600 });
    const c = h.client();
    expect(c.allocate().ok).toBe(true);
    h.now += 601_000;
    const stale = c.request(StunMethod.Refresh, (w) => writeLifetime(w, 600), { retryStale: false });
    expect(stale.errorCode).toBe(ErrorCode.StaleNonce);
    expect(stale.has(Attr.Realm)).toBe(true);
    const fresh = stale.text(Attr.Nonce);
    expect(fresh).not.toBe(c.nonce);
    c.nonce = fresh;
    expect(c.request(StunMethod.Refresh, (w) => writeLifetime(w, 600)).ok).toBe(true);
  });

  test("a nonce that is not ours, or issued to another source, → 438", () => {
    const h = harness();
    const c = h.client("192.0.2.1", 1000);
    c.learnNonce();
    const other = h.client("192.0.2.2", 1000);
    other.nonce = c.nonce;
    other.realm = REALM;
    expect(other.allocate(undefined, { retryStale: false }).errorCode).toBe(438);
    other.nonce = "obMatJos2gAABforgedforgedforge";
    expect(other.allocate(undefined, { retryStale: false }).errorCode).toBe(438);
    other.nonce = "x";
    expect(other.allocate(undefined, { retryStale: false }).errorCode).toBe(438);
    expect(h.server.allocationCount).toBe(0);
  });

  test("a different username on an existing allocation → 441", () => {
    const h = harness();
    const c = h.client();
    expect(c.allocate().ok).toBe(true);
    const r = c.request(StunMethod.Refresh, undefined, { username: "bob", password: "hunter2" });
    expect(r.errorCode).toBe(441);
    expect(c.request(StunMethod.Refresh).ok).toBe(true);
  });
});

describe("password algorithms (RFC 8489 §9.2.1, §9.2.4)", () => {
  const sha256KeyOf = (user: string, pass: string) => sha256Key(user, REALM, pass);
  const advertised = (w: StunWriter) => writePasswordAlgorithms(w, [PasswordAlgorithm.SHA256, PasswordAlgorithm.MD5]);

  test("SHA-256 with MESSAGE-INTEGRITY-SHA256: accepted, answered with MESSAGE-INTEGRITY-SHA256", () => {
    const h = harness();
    const c = h.client();
    c.learnNonce();
    const key = sha256KeyOf("alice", "secret");
    const r = c.allocate((w) => { advertised(w); writePasswordAlgorithm(w, PasswordAlgorithm.SHA256); }, { sha256: true, key });
    expect(r.ok).toBe(true);
    expect(r.has(Attr.MessageIntegrity)).toBe(false);
    const m = r.message;
    expect(verifyMessageIntegrity(m.raw, m.integritySha256Offset + 4, 32, key, true)).toBe(true);
  });

  test("MD5 key with MESSAGE-INTEGRITY-SHA256 (no algorithm attributes) is accepted", () => {
    const h = harness();
    const c = h.client();
    c.learnNonce();
    expect(c.allocate(undefined, { sha256: true }).ok).toBe(true);
  });

  test("PASSWORD-ALGORITHM without PASSWORD-ALGORITHMS, a doctored list, or an unoffered algorithm → 400", () => {
    const h = harness();
    const c = h.client();
    c.learnNonce();
    const key = sha256KeyOf("alice", "secret");
    expect(c.allocate((w) => writePasswordAlgorithm(w, PasswordAlgorithm.SHA256), { sha256: true, key }).errorCode).toBe(400);
    // A man in the middle dropping SHA-256 from the offer is caught by the echoed list.
    expect(c.allocate((w) => { writePasswordAlgorithms(w, [PasswordAlgorithm.MD5]); writePasswordAlgorithm(w, PasswordAlgorithm.MD5); }, { sha256: true }).errorCode).toBe(400);
    expect(c.allocate((w) => { advertised(w); writePasswordAlgorithm(w, 0x0003); }, { sha256: true }).errorCode).toBe(400);
    expect(h.server.allocationCount).toBe(0);
  });

  test("with passwordAlgorithms: false the nonce has no cookie and no PASSWORD-ALGORITHMS is sent", () => {
    const h = harness({ passwordAlgorithms: false });
    const r = h.client().learnNonce();
    expect(r.has(Attr.PasswordAlgorithms)).toBe(false);
    expect(r.text(Attr.Nonce).startsWith("obMatJos2")).toBe(false);
    expect(h.client().allocate().ok).toBe(true);
  });

  test("USERHASH instead of USERNAME works for stores that can resolve it", async () => {
    const { computeUserhash, writeMessageIntegrity: mi } = await import("../../src/stun/index.ts");
    const h = harness();
    const c = h.client();
    c.learnNonce();
    const w = new StunWriter(StunMethod.Allocate, StunClass.Request, randomTid());
    transport(w);
    w.addBytes(Attr.Userhash, computeUserhash("alice", REALM));
    writeText(w, Attr.Realm, REALM);
    writeText(w, Attr.Nonce, c.nonce!);
    mi(w, c.key());
    expect(new Response(c.sendRaw(w.finish())[0]!.data).ok).toBe(true);
  });
});

describe("no authentication (credentials: null)", () => {
  test("Allocate succeeds without a challenge and responses carry no integrity", () => {
    const h = harness({ credentials: null });
    const c = h.client();
    const r = c.request(StunMethod.Allocate, transport, { auth: false });
    expect(r.ok).toBe(true);
    expect(r.has(Attr.MessageIntegrity)).toBe(false);
    expect(c.request(StunMethod.Refresh, undefined, { auth: false }).ok).toBe(true);
  });
});

describe("TURN REST credentials (coturn --use-auth-secret)", () => {
  const secret = "north-wind";
  const rest = () => harness({ credentials: new RestSecretCredentials(secret) });

  test("expiry:user with base64(HMAC-SHA1(secret, username)) is accepted while not expired", () => {
    const h = rest();
    const username = `${T0 / 1000 + 3600}:alice`;
    const c = h.client(undefined, undefined, { username, password: RestSecretCredentials.password(secret, username) });
    expect(c.allocate().ok).toBe(true);
  });

  test("a bare timestamp username works too", () => {
    const h = rest();
    const username = `${T0 / 1000 + 60}`;
    const c = h.client(undefined, undefined, { username, password: RestSecretCredentials.password(secret, username) });
    expect(c.allocate().ok).toBe(true);
  });

  test("an expired username, or a wrong secret, → 401", () => {
    const h = rest();
    const expired = `${T0 / 1000 - 1}:alice`;
    const c = h.client(undefined, undefined, { username: expired, password: RestSecretCredentials.password(secret, expired) });
    expect(c.allocate().errorCode).toBe(401);
    const valid = `${T0 / 1000 + 3600}:alice`;
    const d = h.client("192.0.2.3", 3, { username: valid, password: RestSecretCredentials.password("other", valid) });
    expect(d.allocate().errorCode).toBe(401);
    expect(h.server.allocationCount).toBe(0);
  });

  test("expiry is judged at request time: a username valid at allocation expires later", () => {
    const h = rest();
    const username = `${T0 / 1000 + 100}:alice`;
    const c = h.client(undefined, undefined, { username, password: RestSecretCredentials.password(secret, username) });
    expect(c.allocate().ok).toBe(true);
    h.now += 101_000;
    expect(c.request(StunMethod.Refresh).errorCode).toBe(401);
  });
});

describe("TURN REST secret rotation (repeated --static-auth-secret, turn_secret rows)", () => {
  const username = `${T0 / 1000 + 3600}:alice`;

  test("while two secrets are configured, credentials made with either are accepted, and responses are signed with the key that matched", () => {
    const h = harness({ credentials: new RestSecretCredentials(["old-secret", "new-secret"]) });
    for (const [i, secret] of ["old-secret", "new-secret"].entries()) {
      const c = h.client("192.0.2.10", 4000 + i, { username, password: RestSecretCredentials.password(secret, username) });
      const r = c.allocate();
      expect(r.ok).toBe(true);
      const d = new StunDecoder();
      d.decode(r.raw);
      expect(verifyMessageIntegrity(r.raw, d.offsets[d.integrity]!, d.lengths[d.integrity]!, c.key(), false)).toBe(true);
    }
    const stranger = h.client("192.0.2.10", 4009, { username, password: RestSecretCredentials.password("third", username) });
    expect(stranger.allocate().errorCode).toBe(401);
  });

  test("the secrets are read on every request: one removed is refused from the next request on", () => {
    let live = ["old-secret", "new-secret"].map((s) => new TextEncoder().encode(s));
    const h = harness({ credentials: new RestSecretCredentials(() => live) });
    const old = h.client("192.0.2.11", 4000, { username, password: RestSecretCredentials.password("old-secret", username) });
    expect(old.allocate().ok).toBe(true);
    live = live.slice(1);
    expect(old.request(StunMethod.Refresh).errorCode).toBe(401);
    const fresh = h.client("192.0.2.11", 4001, { username, password: RestSecretCredentials.password("new-secret", username) });
    expect(fresh.allocate().ok).toBe(true);
  });

  test("--rest-api-separator: the expiry is found at the configured character", () => {
    const h = harness({ credentials: new RestSecretCredentials("s", "_") });
    const ok = `${T0 / 1000 + 60}_alice`;
    expect(h.client("192.0.2.12", 1, { username: ok, password: RestSecretCredentials.password("s", ok) }).allocate().ok).toBe(true);
    const colon = `${T0 / 1000 + 60}:alice`; // no '_': no timestamp, so never valid
    expect(h.client("192.0.2.12", 2, { username: colon, password: RestSecretCredentials.password("s", colon) }).allocate().errorCode).toBe(401);
  });
});

test("TurnServer is constructible from the public API alone", () => {
  const server = new TurnServer({
    realm: "r", credentials: null, nonceSecret: new Uint8Array(16), peerPolicy: new PeerPolicy({}),
    relays: { open: () => ({ ok: false, code: 508 }), close: () => {} },
    sink: { reply() {}, relayToClient() {}, relayToPeer() {} },
  });
  expect(server.allocationCount).toBe(0);
  expect(server.pollTimeout()).toBeUndefined();
});
