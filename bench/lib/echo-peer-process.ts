/** The benches' echo peer (bench/lib/echo-peer.ts) as a child process, and what it reports when stopped. */
import { join } from "node:path";
import { cpuSeconds, freePort, ROOT, spawn, waitFor, type Spawned } from "./proc.ts";

export interface PeerStats {
  rx: number;
  tx: number;
  first: number;
  last: number;
}

/** A started echo peer: its ports, and finish() to stop it and read what it echoed and its CPU. */
export type EchoPeer = Spawned & { port: number; ports: number[]; finish(): Promise<PeerStats & { cpu: number }> };

/**
 * The echo peer (bench/lib/echo-peer.ts): `sockets` ports (`port` the first, `ports` all of them), echoing
 * runs of equal datagrams as UDP_SEGMENT messages when `gsoSegment` > 0.
 */
export async function startEchoPeer(maxSeconds: number, sockets = 1, gsoSegment = 0, gro = false): Promise<EchoPeer> {
  const port = freePort();
  const s = spawn(["bun", join(ROOT, "bench/lib/echo-peer.ts"), "127.0.0.1", String(port), String(maxSeconds), String(sockets), String(gsoSegment), gro ? "1" : "0"], { stdin: "pipe" });
  await waitFor(s, "echo peer", () => /ready [\d,]+\n/.test(s.output()), 10000);
  const ports = /ready ([\d,]+)\n/.exec(s.output())![1]!.split(",").map(Number);
  return {
    ...s,
    port,
    ports,
    async finish() {
      const cpu = cpuSeconds(s.pid);
      (s.proc.stdin as import("bun").FileSink).end();
      const timer = setTimeout(() => s.proc.kill("SIGKILL"), 3000);
      await s.proc.exited;
      clearTimeout(timer);
      const line = s.output().trim().split("\n").pop() ?? "";
      try {
        return { ...(JSON.parse(line) as PeerStats), cpu };
      } catch {
        return { rx: 0, tx: 0, first: 0, last: 0, cpu };
      }
    },
  };
}
