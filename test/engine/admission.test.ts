/** The engine's AllocateAdmission: the list by client transport, round robin within the client's family, the drain cell. */
import { describe, expect, test } from "bun:test";
import { resolveAlternates } from "../../src/config/alternates.ts";
import { CONTROL_CELLS, CONTROL_DRAIN, EngineAdmission } from "../../src/engine/admission.ts";
import { formatEndpoint, parseEndpoint, type Endpoint } from "../../src/net/endpoint.ts";
import { FIRST_CONNECTION_ID, connectionId, listenerId } from "../../src/turn/api.ts";

const base = { any: [] as string[], udp: [] as string[], tcp: [] as string[], tls: [] as string[], listeningIps: ["127.0.0.1"], listeningPort: 3478, tlsPort: 5349, externalIps: [], hostAddresses: ["127.0.0.1"] };
const v4 = parseEndpoint("192.0.2.50", 40000);
const v6 = parseEndpoint("2001:db8::50", 40000);
const udp = listenerId(0);
const tcp = connectionId(FIRST_CONNECTION_ID);
const tls = connectionId(FIRST_CONNECTION_ID + 1);
const name = (e: Endpoint | "refuse" | undefined) => (e === undefined || e === "refuse" ? e : formatEndpoint(e));

describe("EngineAdmission", () => {
  test("each transport its list (TLS told apart by the transport), round robin over the servers of the client's family", () => {
    const control = new Int32Array(CONTROL_CELLS);
    const a = new EngineAdmission(
      resolveAlternates({ ...base, any: ["192.0.2.1", "[2001:db8::1]:3478", "192.0.2.2"], tls: ["192.0.2.9"] }),
      control, (id) => id === tls,
    );
    expect([a.admit(udp, v4), a.admit(udp, v4), a.admit(udp, v4)].map(name)).toEqual(["192.0.2.1:3478", "192.0.2.2:3478", "192.0.2.1:3478"]);
    expect(name(a.admit(udp, v6))).toBe("[2001:db8::1]:3478");
    expect(name(a.admit(tcp, v4))).toBe("192.0.2.1:3478");
    expect(name(a.admit(tls, v4))).toBe("192.0.2.9:5349");
    expect(a.admit(tls, v6)).toBeUndefined(); // no IPv6 server in the TLS list: served here
  });

  test("no alternates: served here until the drain cell is set, then refused; a list naming this server redirects only then", () => {
    const control = new Int32Array(CONTROL_CELLS);
    const none = new EngineAdmission(resolveAlternates(base), control, () => false);
    const pool = new EngineAdmission(resolveAlternates({ ...base, any: ["127.0.0.1:3478", "192.0.2.1"] }), control, () => false);
    expect(none.admit(udp, v4)).toBeUndefined();
    expect(pool.admit(udp, v4)).toBeUndefined();
    Atomics.store(control, CONTROL_DRAIN, 1);
    expect(none.admit(udp, v4)).toBe("refuse");
    expect(name(pool.admit(udp, v4))).toBe("192.0.2.1:3478");
    expect(pool.admit(udp, v6)).toBe("refuse"); // draining, and no server of the client's family
  });
});
