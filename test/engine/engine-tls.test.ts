/**
 * The engine's TLS settings: the kTLS probe and its fallback, and coturn's options as OpenSSL settings.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TLS1_2_VERSION, TLS1_3_VERSION } from "../../ffi/libssl.ts";
import { AVAILABLE_ULP, kernelTlsAvailable, tlsContextOptions } from "../../src/engine/engine-tls.ts";

describe("kernelTlsAvailable", () => {
  const dir = mkdtempSync(join(tmpdir(), "bunturn-ulp-"));
  const probe = (contents: string) => {
    const path = join(dir, "tcp_available_ulp");
    writeFileSync(path, contents);
    return kernelTlsAvailable(path);
  };

  test("tls among the kernel's upper-layer protocols", () => {
    expect(probe("espintcp mptcp tls\n")).toBe(true);
    expect(probe("tls\n")).toBe(true);
  });

  test("falls back (user-space TLS) when tls is absent or the file cannot be read", () => {
    expect(probe("mptcp\n")).toBe(false);
    expect(probe("mptcp tlsx\n")).toBe(false);
    expect(probe("")).toBe(false);
    expect(kernelTlsAvailable(join(dir, "absent"))).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });

  test("this machine's answer is what its kernel lists", () => {
    let listed = false;
    try {
      listed = readFileSync(AVAILABLE_ULP, "utf8").split(/\s+/).includes("tls");
    } catch {}
    expect(kernelTlsAvailable()).toBe(listed);
  });
});

describe("tlsContextOptions (coturn's options)", () => {
  const base = { port: 5349, cert: "/c.pem", key: "/k.pem", tls13Only: false };

  test("TLS 1.2 is the minimum; --no-tlsv1_2 makes it 1.3", () => {
    expect(tlsContextOptions(base, false).minVersion).toBe(TLS1_2_VERSION);
    expect(tlsContextOptions({ ...base, tls13Only: true }, false).minVersion).toBe(TLS1_3_VERSION);
  });

  test("--cipher-list, --pkey-pwd, --CA-file and kTLS pass through", () => {
    const o = tlsContextOptions({ ...base, ciphers: "ECDHE-RSA-AES128-GCM-SHA256", passphrase: "p", caFile: "/ca.pem" }, true);
    expect(o).toMatchObject({ cipherList: "ECDHE-RSA-AES128-GCM-SHA256", keyPassphrase: "p", caFile: "/ca.pem", ktls: true });
  });
});
