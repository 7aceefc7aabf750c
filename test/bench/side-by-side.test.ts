/**
 * The benches' `--side-by-side` (bench/lib/side-by-side.ts): two servers loaded at the same moment, each
 * with its own peer and uclients, and the check that says when such a run is no fair comparison (loss,
 * an incomplete load, windows of different lengths, a machine near its cores).
 */
import { describe, expect, test } from "bun:test";
import { MACHINE_CORES } from "../../bench/lib/proc.ts";
import { startServer, type Server } from "../../bench/lib/servers.ts";
import { checkSideBySide, runUclientLoadsSideBySide } from "../../bench/lib/side-by-side.ts";
import type { LoadResult } from "../../bench/lib/uclient-load.ts";
import { e2eTest } from "../e2e/harness.ts";
import { relayRange } from "../ports.ts";

const T0 = 1_800_000_000_000;

/** A paced, loss-free run of 10 s at a few % of a core. */
function result(over: Partial<LoadResult> = {}): LoadResult {
  return {
    ok: true, sent: 1000, roundTrips: 1000, lost: 0, lossPct: 0, rttMs: 0.1, relayed: 2000, windowS: 10, windowFromMs: T0, windowToMs: T0 + 10_000, relayedPps: 200,
    serverCpuS: 0.4, serverCpuSPerMpkt: 200, serverCpuUsPerPktFine: 200, serverCpuUsPerPktByThread: {}, serverCpuUsPerPktByEngine: [],
    serverCpuPct: 4, uclientCpuS: 0.5, uclientCpuPctMax: 5, peerCpuS: 0.2, peerCpuPct: 2, bottleneck: "paced (nobody near a full core)",
    ...over,
  };
}

describe("checkSideBySide", () => {
  test("two paced, loss-free loads at the same time: no note, the machine's load summed", () => {
    const check = checkSideBySide([result(), result({ windowS: 10.2, windowFromMs: T0 + 100, windowToMs: T0 + 10_300 })]);
    expect(check.notes).toEqual([]);
    expect(check.overlap).toBe(0.971); // 9.9 s in common of 10.2
    // 4 + 5 + 2 for the first, 4 + 100*0.5/10.2 + 2 for the second
    expect(check.machineCpuPct).toBeCloseTo(11 + 6 + 4.9, 1);
  });

  test("loss in one load, an incomplete one, loads apart in time and a busy machine are each named", () => {
    expect(checkSideBySide([result(), result({ lost: 3, lossPct: 0.3 })]).notes).toEqual(["load 1: 3 lost (0.3 %): the load, not the pacing, was the limit"]);
    expect(checkSideBySide([result({ ok: false, note: "timed out" }), result()]).notes).toEqual(["load 0: incomplete (timed out)"]);
    expect(checkSideBySide([result(), result({ windowFromMs: T0 + 1000, windowToMs: T0 + 11_000 })]).notes).toEqual(["the windows overlap by 90 % of the longest: the loads did not run together"]);
    expect(checkSideBySide([result(), result({ windowFromMs: T0 + 20_000, windowToMs: T0 + 30_000 })]).notes).toEqual(["the windows overlap by 0 % of the longest: the loads did not run together"]);
    // Two servers at 45 % and 35 % of the machine's cores, plus their uclients and peers: over 85 % of it.
    const near = checkSideBySide([result({ serverCpuPct: 45 * MACHINE_CORES }), result({ serverCpuPct: 35 * MACHINE_CORES })]);
    expect(near.notes[0]).toMatch(new RegExp(`^the machine was near its ${MACHINE_CORES} cores`));
  });

  test("a load whose peer saw nothing has no window: the overlap is unknown, and said to be", () => {
    const check = checkSideBySide([result(), result({ windowS: NaN, windowFromMs: 0, windowToMs: 0 })]);
    expect(check.overlap).toBeNaN();
    expect(check.notes.some((n) => n.startsWith("the windows overlap by NaN %"))).toBe(true);
  });
});

describe("runUclientLoadsSideBySide", () => {
  e2eTest("two bunturns loaded together: each relays its own load in full, and the loads overlap in time", async () => {
    const servers: Server[] = [];
    try {
      for (let k = 0; k < 2; k++) {
        const [minPort, maxPort] = relayRange(100);
        servers.push(await startServer({ kind: "bunturn", threads: 1, minPort, maxPort }));
      }
      const load = { clients: 2, procs: 1, messages: 250, size: 100, intervalMs: 20, timeoutMs: 20_000, warmupSeconds: 2 };
      const [a, b] = await runUclientLoadsSideBySide(servers, load);
      for (const r of [a!, b!]) {
        expect(r.ok).toBe(true);
        expect(r.sent).toBe(500);
        expect(r.lost).toBe(0);
        expect(r.relayed).toBe(1000); // every message to the peer and back, through this server alone
        expect(r.windowS).toBeGreaterThanOrEqual(4.9); // 250 messages 20 ms apart
      }
      // One after the other, the windows would not overlap at all (0). uclient's own start-up puts up to ~2 s
      // between two 2-client loads' first datagrams here (0.2-0.75 of a 5-8 s window seen); at the bench's
      // 20 clients for 60 s the windows share 0.99 of their span.
      expect(checkSideBySide([a!, b!]).overlap).toBeGreaterThan(0.1);
    } finally {
      for (const s of servers) await s.stop();
    }
  }, 45_000);
});
