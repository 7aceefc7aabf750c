/**
 * --user-quota with TURN REST credentials (--use-auth-secret): the quota keys the user inside the
 * username, not the credential, in both orders a REST backend mints (`expiry:user`, coturn's default, and
 * `user:expiry`). Each Allocate uses a fresh credential, as a client that fetched several would.
 */
import { describe, expect, test } from "bun:test";
import { RestSecretCredentials, restUserOf } from "../../src/turn/credentials.ts";
import { SharedQuota, createQuotaShared } from "../../src/engine/quota.ts";
import { T0, harness } from "./harness.ts";

const SECRET = "north-secret";
const EXPIRY = T0 / 1000 + 3600;

function restServer(userQuota: number) {
  const quota = new SharedQuota(createQuotaShared(), { userQuota, totalQuota: 0, bpsCapacity: 0, restUsernames: true });
  return harness({ credentials: new RestSecretCredentials(SECRET), quota });
}

/** Four Allocates, each from its own 5-tuple with its own credential for `name(i)`; their result codes. */
function allocateFour(userQuota: number, name: (i: number) => string): number[] {
  const h = restServer(userQuota);
  return [0, 1, 2, 3].map((i) => {
    const username = name(i);
    const c = h.client("192.0.2.7", 41000 + i, { username, password: RestSecretCredentials.password(SECRET, username) });
    return c.allocate().errorCode ?? 200;
  });
}

describe("--user-quota keys the REST user, not the credential (RFC 8656 §7.2 step 8)", () => {
  test("`expiry:alice` with --user-quota 2: two allocations, then 486", () => {
    expect(allocateFour(2, (i) => `${EXPIRY + i}:alice`)).toEqual([200, 200, 486, 486]);
  });

  test("`alice:expiry` with --user-quota 2: two allocations, then 486", () => {
    expect(allocateFour(2, (i) => `alice:${EXPIRY + i}`)).toEqual([200, 200, 486, 486]);
  });

  test("both orders name the same user: they share one quota", () => {
    expect(allocateFour(2, (i) => (i % 2 === 0 ? `${EXPIRY + i}:alice` : `alice:${EXPIRY + i}`))).toEqual([200, 200, 486, 486]);
  });

  test("another user is counted on its own", () => {
    expect(allocateFour(2, (i) => (i < 2 ? `alice:${EXPIRY + i}` : `${EXPIRY + i}:bob`))).toEqual([200, 200, 200, 200]);
  });

  test("the user part is what is left without the timestamp field", () => {
    expect(restUserOf("1700000000:alice")).toBe("alice");
    expect(restUserOf("alice:1700000000")).toBe("alice");
    expect(restUserOf("1700000000:team:alice")).toBe("team:alice");
    expect(restUserOf("team:alice:1700000000")).toBe("team:alice");
    expect(restUserOf("1700000000")).toBe("1700000000"); // a timestamp alone names no user
    expect(restUserOf("alice")).toBe("alice");
    // --rest-api-separator: the same rule at another character.
    expect(restUserOf("1700000000_alice", "_")).toBe("alice");
    expect(restUserOf("alice_1700000000", "_")).toBe("alice");
    expect(restUserOf("1700000000:alice", "_")).toBe("1700000000:alice");
  });
});
