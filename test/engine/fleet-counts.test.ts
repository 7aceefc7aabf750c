/**
 * The other relays' counts in shared memory (src/engine/fleet-counts.ts) as SharedQuota reads them: a
 * user's allocations elsewhere use up their --user-quota here, the others' total uses up --total-quota,
 * and a new snapshot replaces the old one whole.
 */
import { expect, test } from "bun:test";
import { SharedQuota, createQuotaShared } from "../../src/engine/quota.ts";
import { othersOfUser, othersTotal, publishOthers } from "../../src/engine/fleet-counts.ts";
import { userHash } from "../../src/engine/user-table.ts";
import { parseEndpoint } from "../../src/net/endpoint.ts";

const client = parseEndpoint("127.0.0.1", 5000);

test("another relay's allocations of a user count against --user-quota here", () => {
  const shared = createQuotaShared();
  const quota = new SharedQuota(shared, { userQuota: 2, totalQuota: 0, bpsCapacity: 0, restUsernames: false });
  publishOthers(shared.fleet, 1, [[userHash("alice"), 1]]);
  expect(othersOfUser(shared.fleet, userHash("alice"))).toBe(1);
  expect(quota.acquire("alice", client)).toBe(true);
  expect(quota.acquire("alice", client)).toBe(false);
  expect(quota.acquire("bob", client)).toBe(true);
  // The other relay released it: the next snapshot has no alice.
  publishOthers(shared.fleet, 0, []);
  expect(othersOfUser(shared.fleet, userHash("alice"))).toBe(0);
  expect(quota.acquire("alice", client)).toBe(true);
  expect(quota.acquire("alice", client)).toBe(false);
});

test("the other relays' total counts against --total-quota here", () => {
  const shared = createQuotaShared();
  const quota = new SharedQuota(shared, { userQuota: 0, totalQuota: 3, bpsCapacity: 0, restUsernames: false });
  publishOthers(shared.fleet, 2, []);
  expect(othersTotal(shared.fleet)).toBe(2);
  expect(quota.acquire(undefined, client)).toBe(true);
  expect(quota.acquire(undefined, client)).toBe(false);
  expect(quota.total).toBe(1);
  publishOthers(shared.fleet, 0, []);
  expect(quota.acquire(undefined, client)).toBe(true);
});
