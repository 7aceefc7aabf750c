#!/usr/bin/env bun
/**
 * The peer-policy rows of issue 12, judged by a checkout's PeerPolicy: `bun bench/peer-verdicts.ts [--root DIR]`.
 * DIR (default: this checkout) may be an older worktree, for before/after figures (docs/hostile-input.md).
 * The relay host is modelled as relay address 192.0.2.2 (an interface address) with relay ports
 * 49152-65535; an older PeerPolicy ignores the options it does not know. Prints one line per case, the
 * verdict and whether it is the safe one, and a count; exits 0 either way (it measures, it does not test).
 */
import { resolve } from "node:path";

const i = process.argv.indexOf("--root");
const root = resolve(i >= 0 ? process.argv[i + 1]! : resolve(import.meta.dir, ".."));
const { PeerPolicy } = (await import(`${root}/src/turn/peer-policy.ts`)) as typeof import("../src/turn/peer-policy.ts");
const { parseEndpoint } = (await import(`${root}/src/net/endpoint.ts`)) as typeof import("../src/net/endpoint.ts");

const HOST = { hostAddresses: ["192.0.2.2", "127.0.0.1", "::1"], relayAddresses: ["192.0.2.2"], relayPorts: { min: 49152, max: 65535 } };

/** [options, peer, port, safe verdict] */
const CASES: Array<[string, Record<string, unknown>, string, number, boolean]> = [
  ["default: the relay's own address, port 5353", {}, "192.0.2.2", 5353, false],
  ["default: the relay's own address, relay port 50000", {}, "192.0.2.2", 50000, true],
  ["--relay-ip 127.0.0.1, no allow: own relay port 50000", { relay127: true }, "127.0.0.1", 50000, true],
  ["--allowed-peer-ip 64:ff9b::/96", { allowed: ["64:ff9b::/96"] }, "127.0.0.1", 9, false],
  ["--allowed-peer-ip 64:ff9b::/96", { allowed: ["64:ff9b::/96"] }, "169.254.169.254", 80, false],
  ["--allowed-peer-ip 64:ff9b::/96", { allowed: ["64:ff9b::/96"] }, "10.0.0.1", 9, false],
  ["default", {}, "64:ff9b:1:7f00:1::", 9, false],
  ["default", {}, "2002:7f00:1::", 9, false],
  ["default", {}, "2001:0:7f00:1::", 9, false],
  ["default", {}, "2001:0:4136:e378:8000:63bf:80ff:fffe", 9, false],
  ["default", {}, "fec0::1", 9, false],
  ["default", {}, "240.0.0.1", 9, false],
  ["default", {}, "::ffff:0:7f00:1", 9, false],
  ["default", {}, "198.51.100.8", 9, false],
  ["default", {}, "2001:db8::8", 9, false],
  ["--denied-peer-ip ::/0", { denied: ["::/0"] }, "::ffff:8.8.8.8", 9, false],
  ["--allowed-peer-ip 0.0.0.0/0", { allowed: ["0.0.0.0/0"] }, "0.0.0.0", 9, false],
  ["--allowed-peer-ip 0.0.0.0/0", { allowed: ["0.0.0.0/0"] }, "255.255.255.255", 9, false],
  ["default: port 0", {}, "8.8.8.8", 0, false],
  ["default: a public peer", {}, "8.8.8.8", 3478, true],
  ["default: a public IPv6 peer", {}, "2606:4700::1111", 3478, true],
];

let safe = 0;
for (const [label, opts, ip, port, want] of CASES) {
  const host = opts.relay127 ? { hostAddresses: ["127.0.0.1", "::1"], relayAddresses: ["127.0.0.1"], relayPorts: HOST.relayPorts } : HOST;
  const policy = new PeerPolicy({ ...host, ...opts });
  const got = policy.isAllowed(parseEndpoint(ip, port));
  if (got === want) safe++;
  console.log(`${got === want ? "ok   " : "WRONG"} ${got ? "allowed" : "refused"}  ${ip} port ${port}  (${label})`);
}
console.log(`${safe} of ${CASES.length} verdicts as they should be (${root})`);
