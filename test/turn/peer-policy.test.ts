/** The peer policy table (docs/peer-policy.md), row by row, and how the core applies it (RFC 8656 §10.2, §11.2, §12.2). */
import { describe, expect, test } from "bun:test";
import { parseEndpoint, type Endpoint } from "../../src/net/endpoint.ts";
import { parseIp } from "../../src/net/endpoint.ts";
import { Attr, StunClass, StunMethod, StunWriter, writeChannelNumber, writeXorAddress } from "../../src/stun/index.ts";
import { PeerPolicy, parsePeerRange, type PeerPolicyOptions } from "../../src/turn/peer-policy.ts";
import { harness, randomTid, type TestClient } from "./harness.ts";

const at = (p: PeerPolicy, ip: string, port = 1234) => p.isAllowed(parseEndpoint(ip, port));
const host = (p: PeerPolicy, ip: string) => p.allowsHost(parseIp(ip)!);

/** [address, why it is refused] */
const REFUSED_BY_DEFAULT: Array<[string, string]> = [
  ["0.0.0.0", "this host"], ["0.1.2.3", "0/8"], ["10.1.2.3", "private"], ["100.64.0.1", "CGN"], ["100.127.255.255", "CGN"],
  ["127.0.0.1", "loopback"], ["127.255.0.9", "loopback"], ["169.254.169.254", "link-local, cloud metadata"],
  ["172.16.0.1", "private"], ["172.31.255.255", "private"], ["192.0.0.9", "IETF protocol assignments"],
  ["192.0.2.1", "TEST-NET-1"], ["192.88.99.1", "6to4 relay anycast"], ["192.168.1.1", "private"],
  ["198.18.0.1", "benchmarking"], ["198.19.255.255", "benchmarking"], ["198.51.100.1", "TEST-NET-2"],
  ["203.0.113.9", "TEST-NET-3"], ["224.0.0.1", "multicast"], ["239.255.255.250", "multicast"],
  ["240.0.0.1", "240/4 reserved"], ["254.1.2.3", "240/4 reserved"], ["255.255.255.255", "broadcast"],
  ["::", "unspecified"], ["::1", "loopback"], ["fe80::1", "link-local"], ["febf::1", "link-local"],
  ["fec0::1", "site-local"], ["feff::1", "site-local"], ["fc00::1", "ULA"], ["fdff::1", "ULA"], ["ff02::1", "multicast"],
  ["ff0e::1", "multicast"], ["2001:db8::1", "documentation"], ["2001:2::1", "benchmarking"], ["2001:10::1", "ORCHID"],
  ["2001:5::1", "IETF unassigned"], ["100::1", "discard"], ["3fff::1", "documentation"], ["3fff:fff::1", "documentation"],
  ["5f00::1", "SRv6, outside 2000::/3"], ["4000::1", "unassigned, outside 2000::/3"], ["::2", "IPv4-compatible 0.0.0.2"],
  // IPv6 addresses that hand their packets to a refused IPv4 address
  ["::ffff:127.0.0.1", "mapped loopback"], ["::ffff:10.0.0.1", "mapped private"], ["::ffff:0:7f00:1", "SIIT loopback"],
  ["::127.0.0.1", "compatible loopback"], ["::169.254.169.254", "compatible link-local"],
  ["64:ff9b::127.0.0.1", "NAT64 loopback"], ["64:ff9b::10.0.0.1", "NAT64 private"],
  ["64:ff9b:1:7f00:1::", "local NAT64 /48 loopback"], ["64:ff9b:1:a9fe:a9:fe00::", "local NAT64 /48 169.254.169.254"],
  ["2002:7f00:1::", "6to4 around 127.0.0.1"], ["2002:a00:1::1", "6to4 around 10.0.0.1"],
  ["2001:0:7f00:1::", "Teredo server 127.0.0.1"], ["2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo client ~127.0.0.1"],
];

const ALLOWED_BY_DEFAULT = [
  "8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.0", "100.63.255.255", "100.128.0.0", "192.0.3.1", "198.17.255.255",
  "198.20.0.0", "223.255.255.255", "2606:4700::1111", "2a00:1450::1", "2001:1::2", "2001:3::1", "2001:20::1",
  "::ffff:8.8.8.8", "::8.8.8.8", "64:ff9b::8.8.8.8", "64:ff9b:1:808:8:800::", "2002:808:808::1",
  "2001:0:4136:e378:8000:63bf:f7f7:f7f7", // Teredo: server 65.54.227.120, client ~f7f7f7f7 = 8.8.8.8
];

describe("PeerPolicy defaults (no options)", () => {
  const p = new PeerPolicy({});
  test.each(REFUSED_BY_DEFAULT)("refuses %s (%s)", (ip) => {
    expect(at(p, ip)).toBe(false);
    expect(host(p, ip)).toBe(false);
  });
  test.each(ALLOWED_BY_DEFAULT)("allows %s", (ip) => expect(at(p, ip)).toBe(true));
  test("port 0 is refused for an address and port, not for an address alone (CreatePermission ignores the port)", () => {
    expect(at(p, "8.8.8.8", 0)).toBe(false);
    expect(at(p, "2606:4700::1111", 0)).toBe(false);
    expect(host(p, "8.8.8.8")).toBe(true);
  });
});

describe("operator ranges: one family each, allowed before denied", () => {
  test("--allowed-peer-ip 64:ff9b::/96 admits no IPv4 address (it used to become 0.0.0.0/0)", () => {
    const p = new PeerPolicy({ allowed: ["64:ff9b::/96"] });
    for (const ip of ["127.0.0.1", "169.254.169.254", "10.0.0.1", "64:ff9b::127.0.0.1", "64:ff9b::10.0.0.1"]) expect(at(p, ip)).toBe(false);
    expect(at(p, "64:ff9b::8.8.8.8")).toBe(true);
  });

  test("--denied-peer-ip ::/0 refuses every IPv6 form, ::ffff:8.8.8.8 included, and no IPv4 address", () => {
    const p = new PeerPolicy({ denied: ["::/0"] });
    for (const ip of ["::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1", "2606:4700::1111"]) expect(at(p, ip)).toBe(false);
    expect(at(p, "8.8.8.8")).toBe(true);
  });

  test("--allowed-peer-ip 0.0.0.0/0 admits private and reserved IPv4, never 0.0.0.0, broadcast or multicast", () => {
    const p = new PeerPolicy({ allowed: ["0.0.0.0/0"] });
    for (const ip of ["0.0.0.0", "0.1.2.3", "255.255.255.255", "224.0.0.1", "::ffff:0.0.0.0"]) expect(at(p, ip)).toBe(false);
    for (const ip of ["10.0.0.1", "127.0.0.1", "240.0.0.1", "::ffff:10.0.0.1"]) expect(at(p, ip)).toBe(true);
  });

  test("an IPv6 allow never admits an address that embeds a refused IPv4 address", () => {
    const p = new PeerPolicy({ allowed: ["::/0"] });
    for (const ip of ["::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::127.0.0.1", "2002:7f00:1::", "2001:0:7f00:1::", "::ffff:0:7f00:1", "::", "ff02::1"]) {
      expect(at(p, ip)).toBe(false);
    }
    for (const ip of ["fc00::1", "fec0::1", "2001:db8::1", "::1"]) expect(at(p, ip)).toBe(true);
  });

  test("allowed wins over denied (coturn); IPv4 ranges also judge the IPv4 inside IPv6", () => {
    const p = new PeerPolicy({ allowed: ["10.0.0.5", "192.168.0.0/16", "172.16.0.1-172.16.0.9", "fc00::/7"], denied: ["192.168.1.1", "10.0.0.0/8", "8.8.8.0/24"] });
    expect(at(p, "10.0.0.5")).toBe(true);
    expect(at(p, "10.0.0.6")).toBe(false);
    expect(at(p, "192.168.1.1")).toBe(true);
    expect(at(p, "172.16.0.9")).toBe(true);
    expect(at(p, "172.16.0.10")).toBe(false);
    expect(at(p, "fd12::1")).toBe(true);
    expect(at(p, "::ffff:10.0.0.5")).toBe(true);
    expect(at(p, "2002:a00:5::")).toBe(true);
    expect(at(p, "8.8.8.8")).toBe(false);
    expect(at(p, "::ffff:8.8.8.8")).toBe(false);
    expect(at(p, "64:ff9b::8.8.8.8")).toBe(false);
  });

  test("--allow-loopback-peers admits 127/8 and ::1 only (also this host's loopback at any port)", () => {
    const p = new PeerPolicy({ allowLoopback: true, hostAddresses: ["127.0.0.1", "::1"] });
    for (const ip of ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"]) expect(at(p, ip, 53)).toBe(true);
    for (const ip of ["0.0.0.0", "::", "10.0.0.1", "169.254.0.1", "fe80::1"]) expect(at(p, ip)).toBe(false);
  });

  test("bad, reversed, mixed and IPv4-mapped ranges are refused with a line naming the entry", () => {
    expect(() => parsePeerRange("not-an-ip")).toThrow("'not-an-ip': not an IP address");
    expect(() => parsePeerRange("10.0.0.0/33")).toThrow("bad prefix length");
    expect(() => parsePeerRange("10.0.0.0/")).toThrow("bad prefix length");
    expect(() => parsePeerRange("10.0.0.1-::1")).toThrow("different families");
    expect(() => parsePeerRange("10.0.0.5-10.0.0.1")).toThrow("'10.0.0.5-10.0.0.1': the range is reversed");
    expect(() => parsePeerRange("::ffff:10.9.9.9")).toThrow("write it as IPv4");
    expect(() => new PeerPolicy({ denied: ["fd00::9-fd00::1"] })).toThrow(RangeError);
    expect(parsePeerRange("10.0.0.5/8")).toEqual({ family: 4, lo: new Uint8Array([10, 0, 0, 0]), hi: new Uint8Array([10, 255, 255, 255]) });
  });
});

describe("this host's own addresses", () => {
  // Public-looking addresses, so that only "it is this host" can refuse them.
  const OWN: PeerPolicyOptions = {
    hostAddresses: ["5.6.7.8", "2606:4700::8", "1.2.3.4"],
    relayAddresses: ["1.2.3.4", "2606:4700::4"],
    relayPorts: { min: 50000, max: 50100 },
  };
  const p = new PeerPolicy(OWN);

  test("an interface address is refused at every port, in every IPv6 disguise", () => {
    for (const ip of ["5.6.7.8", "::ffff:5.6.7.8", "::5.6.7.8", "64:ff9b::5.6.7.8", "2002:506:708::", "2606:4700::8"]) {
      expect(at(p, ip, 50000)).toBe(false);
      expect(host(p, ip)).toBe(false);
    }
    expect(at(p, "5.6.7.9")).toBe(true);
  });

  test("a relay address is a peer inside the relay port range only (client to client through this server)", () => {
    for (const ip of ["1.2.3.4", "2606:4700::4"]) {
      expect(at(p, ip, 50000)).toBe(true);
      expect(at(p, ip, 50100)).toBe(true);
      expect(at(p, ip, 49999)).toBe(false);
      expect(at(p, ip, 50101)).toBe(false);
      expect(at(p, ip, 53)).toBe(false);
      expect(host(p, ip)).toBe(true); // CreatePermission: the port is not the address's
    }
    // Clients are given the relayed address in its plain form: a disguise of it is only this host.
    for (const ip of ["::ffff:1.2.3.4", "2002:102:304::", "64:ff9b::1.2.3.4"]) {
      expect(at(p, ip, 50000)).toBe(false);
      expect(host(p, ip)).toBe(false);
    }
  });

  test("with --relay-ip 127.0.0.1 and no allow flag the relay range is reachable and nothing else on loopback", () => {
    const q = new PeerPolicy({ hostAddresses: ["127.0.0.1", "::1"], relayAddresses: ["127.0.0.1"], relayPorts: { min: 50000, max: 50100 } });
    expect(at(q, "127.0.0.1", 50050)).toBe(true);
    expect(at(q, "127.0.0.1", 3478)).toBe(false);
    expect(at(q, "127.0.0.2", 50050)).toBe(false);
    expect(at(q, "::1", 50050)).toBe(false);
  });

  test("an explicit allow admits an own address at any port; an explicit deny refuses even the relay range", () => {
    expect(at(new PeerPolicy({ ...OWN, allowed: ["5.6.7.8"] }), "5.6.7.8", 53)).toBe(true);
    expect(at(new PeerPolicy({ ...OWN, denied: ["1.2.3.0/24"] }), "1.2.3.4", 50000)).toBe(false);
  });
});

describe("in the core (RFC 8656 §10.2, §11.2, §12.2)", () => {
  const RELAY_PEER = parseEndpoint("203.0.113.10", 50001); // the harness's relay address and a port it hands out
  const policy = () =>
    new PeerPolicy({ allowed: ["198.51.100.0/24"], hostAddresses: ["203.0.113.10"], relayAddresses: ["203.0.113.10"], relayPorts: { min: 50000, max: 50999 } });

  function allocated(): { c: TestClient; sink: ReturnType<typeof harness>["sink"] } {
    const h = harness({ peerPolicy: policy() });
    const c = h.client("192.0.2.50", 40000);
    expect(c.allocate().ok).toBe(true);
    return { c, sink: h.sink };
  }
  const permit = (c: TestClient, peer: Endpoint) => c.request(StunMethod.CreatePermission, (w) => writeXorAddress(w, Attr.XorPeerAddress, peer));
  const bind = (c: TestClient, peer: Endpoint) =>
    c.request(StunMethod.ChannelBind, (w) => {
      writeChannelNumber(w, 0x4001);
      writeXorAddress(w, Attr.XorPeerAddress, peer);
    });
  const send = (c: TestClient, peer: Endpoint) => {
    const w = new StunWriter(StunMethod.Send, StunClass.Indication, randomTid());
    writeXorAddress(w, Attr.XorPeerAddress, peer);
    w.addBytes(Attr.Data, new Uint8Array([1, 2, 3]));
    return c.sendRaw(w.finish()).filter((s) => s.kind === "toPeer");
  };

  test("port 0: CreatePermission succeeds (the port is ignored), ChannelBind gets 403, a Send indication is dropped", () => {
    const { c } = allocated();
    const zero = parseEndpoint("198.51.100.20", 0);
    expect(permit(c, zero).ok).toBe(true);
    expect(bind(c, zero).errorCode).toBe(403);
    expect(send(c, zero)).toEqual([]);
    expect(send(c, parseEndpoint("198.51.100.20", 7000)).length).toBe(1);
    const zero6 = parseEndpoint("2001:db8::5", 0);
    expect(send(c, zero6)).toEqual([]);
  });

  test("the relay's own address: relayed inside the relay range, 403 or dropped outside it", () => {
    const { c } = allocated();
    expect(permit(c, parseEndpoint("203.0.113.10", 53)).ok).toBe(true); // the address: some port of it is a peer
    expect(send(c, RELAY_PEER).length).toBe(1);
    expect(send(c, parseEndpoint("203.0.113.10", 53))).toEqual([]);
    expect(bind(c, parseEndpoint("203.0.113.10", 53)).errorCode).toBe(403);
    expect(bind(c, RELAY_PEER).ok).toBe(true);
    expect(permit(c, parseEndpoint("203.0.113.11", 50001)).errorCode).toBe(403);
  });
});
