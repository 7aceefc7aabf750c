/**
 * Load-aware ALTERNATE-SERVER (src/fleet/fleet-load.ts, src/engine/fleet-redirect.ts) with two relay
 * processes and a real Redis: a relay at its --fleet-capacity answers Allocate with 300 and the other
 * relay, and the client allocates there (RFC 8656 §7.4); a draining relay sends clients to a peer with
 * room, and refuses (403) while the only peer is full.
 */
import { expect } from "bun:test";
import { Attr, readAddress } from "../../src/stun/index.ts";
import { formatEndpoint } from "../../src/net/endpoint.ts";
import { eventually, relayWithMetrics } from "./metrics-wait.ts";
import type { Response } from "../turn/harness.ts";
import { dbTest, startServer } from "../db-servers.ts";
import { fleetResources } from "./fleet-setup.ts";

const { running, redises, client } = fleetResources();

function alternateOf(r: Response): string | undefined {
  const v = r.attr(Attr.AlternateServer);
  return v === undefined ? undefined : formatEndpoint(readAddress(v, 0, v.length)!);
}

dbTest("redis", "a full relay redirects to the least-loaded peer and the client allocates there; a draining one too, 403 while the peer is full", async () => {
  const redis = await startServer("redis");
  redises.push(redis);
  const fleet = ["--relay-threads", "1", "--fleet-redis", `redis://127.0.0.1:${redis.port}`];
  const [a, b] = await Promise.all([relayWithMetrics([...fleet, "--fleet-capacity", "1"]), relayWithMetrics(fleet)]);
  running.push(a, b);

  const first = await client(a, "127.0.34.1");
  expect((await first.allocate()).ok).toBe(true);
  // What each relay's last heartbeat saw of the other (the redirect target is picked in the same one).
  const sees = (relay: typeof a, n: number) => eventually(`${n} allocation(s) on the other relay`, async () => (await relay.metric("bunturn_fleet_peers")) === 1 && (await relay.metric("bunturn_fleet_other_allocations")) === n);
  await sees(a, 0);
  // A holds its capacity: the next Allocate goes to B, and the client follows.
  const second = await client(a, "127.0.34.2");
  const redirected = await second.allocate();
  expect(redirected.errorCode).toBe(300);
  expect(alternateOf(redirected)).toBe(`127.0.0.1:${b.port}`);
  second.moveTo({ host: "127.0.0.1", port: b.port });
  expect((await second.allocate()).ok).toBe(true);

  // B drains (SIGUSR1; it keeps serving its allocation): A is its only peer, and A is full.
  b.proc.kill("SIGUSR1");
  await sees(b, 1);
  expect((await (await client(b, "127.0.34.3")).allocate()).errorCode).toBe(403);
  // A has room again: B sends new clients there.
  expect((await first.refresh(0)).ok).toBe(true);
  await sees(b, 0);
  const third = await client(b, "127.0.34.4");
  const toA = await third.allocate();
  expect(toA.errorCode).toBe(300);
  expect(alternateOf(toA)).toBe(`127.0.0.1:${a.port}`);
  third.moveTo({ host: "127.0.0.1", port: a.port });
  expect((await third.allocate()).ok).toBe(true);
}, 60_000);
