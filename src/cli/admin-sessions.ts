/**
 * `bunturn admin sessions` and `bunturn admin kill`: the live allocations of a running relay, read and
 * ended through its --control-socket (src/metrics/control-socket.ts: HTTP over a Unix socket, 0600).
 */
import { defineCommand, type ArgsDef } from "citty";
import type { Session } from "../engine/admin-channel.ts";

const socket = { type: "string" as const, alias: "c", description: "The relay's --control-socket", required: true as const };

function fail(message: string): never {
  process.stderr.write(`bunturn admin: ${message}\n`);
  process.exit(1);
}

async function call(path: string, method: "GET" | "DELETE", url: string): Promise<{ status: number; body: unknown }> {
  let response: Response;
  try {
    response = await fetch(`http://localhost${url}`, { method, unix: path } as RequestInit);
  } catch (error) {
    fail(`cannot reach ${path}: ${(error as Error).message} (is the relay running with --control-socket ${path}?)`);
  }
  return { status: response.status, body: await response.json() };
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function age(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** Sessions as an aligned text table, one allocation a line. */
export function sessionTable(sessions: readonly Session[], now: number): string {
  const header = ["ID", "USER", "CLIENT", "RELAY", "PEERS", "TO PEER", "TO CLIENT", "AGE"];
  const rows = sessions.map((s) => [
    s.id,
    s.user ?? "-",
    `${s.client}/${s.transport}`,
    s.relays.join(",") || "-",
    s.peers.join(",") || "-",
    `${bytes(s.bytesToPeer)} ${s.packetsToPeer}p`,
    `${bytes(s.bytesToClient)} ${s.packetsToClient}p`,
    age(now - s.startedAt),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

export const sessionsCommand = defineCommand({
  meta: { name: "sessions", description: "List the live allocations of a running relay (user, client, relay, peers, traffic each way, age)" },
  args: {
    "control-socket": socket,
    json: { type: "boolean", description: "One JSON array instead of a table" },
  } satisfies ArgsDef,
  async run({ args }) {
    const { status, body } = await call(args["control-socket"], "GET", "/sessions");
    if (status !== 200) fail(`${(body as { error?: string }).error ?? `status ${status}`}`);
    const sessions = body as Session[];
    if (args.json) return void console.log(JSON.stringify(sessions, null, 2));
    console.log(sessions.length === 0 ? "no live allocations" : sessionTable(sessions, Date.now()));
  },
});

export const killCommand = defineCommand({
  meta: { name: "kill", description: "End one allocation now (its relay closed, its TCP connection too); ID from 'bunturn admin sessions'" },
  args: {
    id: { type: "positional", description: "Session id (ENGINE-NUMBER)", required: true },
    "control-socket": socket,
  } satisfies ArgsDef,
  async run({ args }) {
    if (!/^\d+-\d+$/.test(args.id)) fail(`'${args.id}' is not a session id (ENGINE-NUMBER, as 'bunturn admin sessions' shows)`);
    const { status, body } = await call(args["control-socket"], "DELETE", `/sessions/${args.id}`);
    if (status !== 200) fail(`${(body as { error?: string }).error ?? `status ${status}`}`);
    console.log(`session ${args.id} ended`);
  },
});
