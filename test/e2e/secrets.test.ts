/**
 * TURN REST API secret rotation end to end, with coturn's turnutils_uclient -W: two --static-auth-secret
 * values both validate; a secret added to the user database's turn_secret table (bunturn admin
 * add-secret) is honoured by the running server, and refused again once deleted.
 */
import { Database } from "bun:sqlite";
import { afterAll, describe, expect } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REALM, e2eTest, runCli, startBunturn, startPeer, type Running, type UclientResult } from "./harness.ts";
import { expectNothingRelayed, expectRelayed, uclientVia } from "./userdb-helpers.ts";

const running: Running[] = [];
const dir = mkdtempSync(join(tmpdir(), "bunturn-secrets-"));
afterAll(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
  rmSync(dir, { recursive: true, force: true });
});

const cli = (args: string[]) => runCli(args);

/** A refused Allocate: uclient gives up ("Cannot complete Allocation") or retries until cut short. */
function expectRefused(r: UclientResult): void {
  expect(r.output).toMatch(/unknown allocate response|Cannot complete Allocation|error 401/);
  expectNothingRelayed(r);
}

describe("TURN REST API secrets (turnutils_uclient -W)", () => {
  e2eTest("old and new --static-auth-secret both work; a database secret is honoured once added and refused once deleted, without restart", async () => {
    const db = join(dir, "turndb");
    // The database exists before the server starts, with one unrelated secret of another realm.
    expect((await cli(["admin", "add-secret", "-b", db, "-s", "other-realm-secret", "-r", "elsewhere.test"])).code).toBe(0);
    const s = await startBunturn({
      auth: "custom",
      args: ["--use-auth-secret", "--static-auth-secret", "old-secret", "--static-auth-secret", "new-secret", "--userdb", db],
    });
    running.push(s);
    expect(s.output()).toContain("2 configured");
    const p = await startPeer();
    running.push(p);
    const uclient = (secret: string, timeoutMs = 20000) => uclientVia(s, p, ["-W", secret, "-u", "rest-user"], timeoutMs);

    expectRelayed(await uclient("old-secret"));
    expectRelayed(await uclient("new-secret"));
    expectRefused(await uclient("db-secret", 3000));
    expectRefused(await uclient("other-realm-secret", 3000)); // secrets are per realm

    expect((await cli(["admin", "add-secret", "--userdb", db, "--secret", "db-secret", "--realm", REALM])).code).toBe(0);
    expectRelayed(await uclient("db-secret"));
    const list = await cli(["admin", "list-secrets", "-b", db]);
    expect(list.output.trim().split("\n")).toEqual([`db-secret[${REALM}]`, "other-realm-secret[elsewhere.test]"]);
    // coturn's schema: turnadmin and coturn read the same rows.
    const raw = new Database(db, { readonly: true });
    expect(raw.query("SELECT realm, value FROM turn_secret WHERE realm = ?").all(REALM)).toEqual([{ realm: REALM, value: "db-secret" }]);
    raw.close();

    expect((await cli(["admin", "delete-secret", "-b", db, "-s", "db-secret", "-r", REALM])).code).toBe(0);
    expectRefused(await uclient("db-secret", 3000));
    expect((await cli(["admin", "delete-secret", "-b", db, "-s", "db-secret", "-r", REALM])).code).toBe(1);
    // The configured secrets are untouched by the database's changes.
    expectRelayed(await uclient("new-secret"));
  }, 90000);
});
