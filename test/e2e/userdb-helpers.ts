/**
 * What the user-database end-to-end tests (SQL, Redis, TURN REST secrets) share: judging a
 * turnutils_uclient run, polling a relay that reads its database every few seconds, and a relay
 * with a Prometheus endpoint.
 */
import { expect } from "bun:test";
import { freePort, runCli, runUclient, startBunturn, type Running, type UclientResult } from "./harness.ts";

/** Every datagram the client sent came back through the relay, without an error. */
export function expectRelayed(r: UclientResult): void {
  if (r.errors.length > 0 || r.received !== r.sent) console.error(r.output.slice(-2000));
  expect(r.errors).toEqual([]);
  expect(r.sent).toBeGreaterThanOrEqual(10);
  expect(r.received).toBe(r.sent);
}

/** Nothing was relayed: the allocation was refused before uclient sent anything. */
export function expectNothingRelayed(r: UclientResult): void {
  expect(r.received).toBeLessThanOrEqual(0);
  expect(r.output).not.toContain("tot_send_msgs");
}

/** Polls `check` until it holds (the relays read the database every 2 s). */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(200);
  }
}

/** The value of an unlabelled metric in a Prometheus text page (NaN when absent). */
export const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);

/** `bunturn admin ...args ...userdb` against a database; throws unless it exits 0. */
export async function admin(args: string[], userdb: string[]): Promise<string> {
  const { code, output } = await runCli(["admin", ...args, ...userdb], 20000);
  if (code !== 0) throw new Error(`bunturn admin ${args.join(" ")} exited ${code}: ${output}`);
  return output;
}

/** A relay on one worker with `args` and `userdb`, its /metrics page at hand; pushed to `running`. */
export async function relayWithMetrics(running: Running[], args: string[], userdb: string[]): Promise<Running & { metrics(): Promise<string> }> {
  const prometheus = freePort();
  const s = await startBunturn({ auth: "custom", args: [...args, ...userdb, "--prometheus", "--prometheus-address", "127.0.0.1", "--prometheus-port", String(prometheus), "--relay-threads", "1"] });
  running.push(s);
  return { ...s, metrics: async () => (await fetch(`http://127.0.0.1:${prometheus}/metrics`)).text() };
}

/** turnutils_uclient through `relay` to `peer`, 10 messages from one client, with `credentials` (-u/-w, or -W and -u). */
export function uclientVia(relay: Running, peer: Running, credentials: string[], timeoutMs = 20000): Promise<UclientResult> {
  return runUclient([...credentials, "-e", "127.0.0.1", "-r", String(peer.port), "-p", String(relay.port), "-n", "10", "-m", "1", "-c", "127.0.0.1"], timeoutMs);
}
