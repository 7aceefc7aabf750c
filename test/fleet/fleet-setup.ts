/**
 * What the fleet tests start and must stop: relay processes, Redis servers and TURN clients, all
 * closed after the file's tests, and a client that allocates from its own loopback source address.
 */
import { afterAll } from "bun:test";
import { PASSWORD, USER, type Running } from "../e2e/harness.ts";
import { TurnClient } from "../fuzz/turn-client.ts";
import type { DbServer } from "../db-servers.ts";

export interface FleetResources {
  running: Running[];
  redises: DbServer[];
  clients: TurnClient[];
  /** A client of `relay` bound to `bindHost` (a 127.0.0.0/8 address, so each test source is distinct). */
  client(relay: Running, bindHost: string, user?: string, password?: string): Promise<TurnClient>;
}

/** Call at a test file's top level: the lists it returns are emptied and closed after all its tests. */
export function fleetResources(): FleetResources {
  const running: Running[] = [];
  const redises: DbServer[] = [];
  const clients: TurnClient[] = [];
  afterAll(async () => {
    for (const c of clients.splice(0)) c.close();
    await Promise.all(running.splice(0).map((r) => r.stop()));
    await Promise.all(redises.splice(0).map((r) => r.destroy()));
  });
  const client = async (relay: Running, bindHost: string, user = USER, password = PASSWORD) => {
    const c = await TurnClient.open({ server: { host: "127.0.0.1", port: relay.port }, bindHost, username: user, password });
    clients.push(c);
    return c;
  };
  return { running, redises, clients, client };
}
