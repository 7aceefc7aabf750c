/**
 * The fleet tests wait on what a relay says on /metrics (bunturn_fleet_*: what its last heartbeat saw),
 * not on sleeps, so a slow machine makes them slower, never wrong.
 */
import { freePort, startBunturn, type Running } from "../e2e/harness.ts";

export type MetricsRelay = Running & { metric(name: string): Promise<number> };

/** A relay with --prometheus on a loopback port, and a reader of one metric. */
export async function relayWithMetrics(args: string[]): Promise<MetricsRelay> {
  const prometheus = freePort();
  const relay = await startBunturn({ args: [...args, "--prometheus", "--prometheus-address", "127.0.0.1", "--prometheus-port", String(prometheus)] });
  const metric = async (name: string) => {
    const text = await (await fetch(`http://127.0.0.1:${prometheus}/metrics`)).text();
    return Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
  };
  return { ...relay, metric };
}

export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await Bun.sleep(50);
  }
}
