/**
 * coturn's dynamic peer lists read from the user database file (src/userdb/peer-tables.ts): rows of the
 * realm and of realm '' add to the configured ranges, a change is seen at the next check (at most a
 * second later), a bad row is skipped and told once, a file without the tables adds nothing.
 */
import { Database } from "bun:sqlite";
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseIp } from "../../src/net/endpoint.ts";
import { LivePeerPolicy } from "../../src/userdb/peer-tables.ts";
import { PEER_SCHEMA, UserDb } from "../../src/userdb/sqlite.ts";

const dir = mkdtempSync(join(tmpdir(), "bunturn-peer-tables-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const host = (ip: string) => parseIp(ip)!;

test("denied and allowed rows apply within a check interval; other realms' rows do not; a bad row is skipped once", () => {
  const path = join(dir, "turndb");
  UserDb.open(path, { create: true }).close();
  const writer = new Database(path);
  writer.exec(PEER_SCHEMA("allowed"));
  writer.exec(PEER_SCHEMA("denied"));
  let now = 0;
  const warnings: string[] = [];
  const policy = new LivePeerPolicy({ allowed: [], denied: [] }, path, "example.org", () => now);
  policy.onWarning = (m) => warnings.push(m);
  expect(policy.allowsHost(host("8.8.8.8"))).toBe(true);
  expect(policy.allowsHost(host("10.1.2.3"))).toBe(false); // private: refused by default

  writer.query("INSERT INTO denied_peer_ip (realm, ip_range) VALUES (?, ?), (?, ?), (?, ?)").run("example.org", "8.8.8.0/24", "", "9.9.9.9", "elsewhere", "1.1.1.1");
  writer.query("INSERT INTO allowed_peer_ip (realm, ip_range) VALUES (?, ?), (?, ?)").run("example.org", "10.1.0.0-10.1.255.255", "example.org", "not-a-range");
  expect(policy.allowsHost(host("8.8.8.8"))).toBe(true); // not checked again within the second
  now += 1000;
  expect(policy.allowsHost(host("8.8.8.8"))).toBe(false);
  expect(policy.allowsHost(host("9.9.9.9"))).toBe(false); // realm '' applies to every realm
  expect(policy.allowsHost(host("1.1.1.1"))).toBe(true); // another realm's row does not
  expect(policy.allowsHost(host("10.1.2.3"))).toBe(true);
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toContain("allowed_peer_ip row 'not-a-range' skipped");

  writer.exec("DELETE FROM denied_peer_ip");
  now += 1000;
  expect(policy.allowsHost(host("8.8.8.8"))).toBe(true);
  expect(warnings).toHaveLength(1);
  policy.close();
  writer.close();
});

test("a database without coturn's peer tables adds no ranges", () => {
  const path = join(dir, "users-only");
  UserDb.open(path, { create: true }).close();
  const policy = new LivePeerPolicy({ denied: ["8.8.8.0/24"] }, path, "example.org", () => 5000);
  expect(policy.allowsHost(host("8.8.8.8"))).toBe(false);
  expect(policy.allowsHost(host("9.9.9.9"))).toBe(true);
  policy.close();
});
