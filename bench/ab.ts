/**
 * A/B of one bunturn flag under turnutils_uclient load, runs alternated A B A B …:
 *   --flag recvmmsg: --udp-recvmmsg off (A) vs on (B)
 *   --flag sendmmsg: --no-udp-sendmmsg (A) vs --udp-sendmmsg (B, the default)
 * For each (clients, size): one JSON line per run, then one summary line with medians and B/A ratios.
 */
import { describeArgs, numberList, parseArgs, type ArgSpec } from "./lib/args.ts";
import { startServer } from "./lib/servers.ts";
import { emit, median, pairedRatio, ratio, round } from "./lib/stats.ts";
import { UCLIENT_LOAD_SPEC, loadOptionsFor, runUclientLoad, type LoadResult } from "./lib/uclient-load.ts";

export const spec = {
  flag: { default: "recvmmsg", help: "recvmmsg | sendmmsg" },
  runs: { default: 3, help: "runs per variant (alternated)" },
  clients: { default: "1,100", help: "comma-separated client counts" },
  sizes: { default: "100,1000", help: "comma-separated message lengths (bytes)" },
  threads: { default: 2, help: "--relay-threads" },
  "recvmmsg-base": { default: false, help: "with --flag sendmmsg: keep --udp-recvmmsg on in both variants" },
  ...UCLIENT_LOAD_SPEC,
} satisfies ArgSpec;

export const usage = `bun run bench ab [options]\n${describeArgs(spec)}`;


export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv, spec);
  if (a.flag !== "recvmmsg" && a.flag !== "sendmmsg") throw new Error("--flag must be recvmmsg or sendmmsg");
  const variants = a.flag === "recvmmsg"
    ? [{ name: "off", recvmmsg: false, sendmmsg: true }, { name: "on", recvmmsg: true, sendmmsg: true }]
    : [{ name: "off", recvmmsg: a["recvmmsg-base"], sendmmsg: false }, { name: "on", recvmmsg: a["recvmmsg-base"], sendmmsg: true }];
  const bench = `ab-${a.flag}`;
  for (const clients of numberList(a.clients)) {
    for (const size of numberList(a.sizes)) {
      const results: Record<string, LoadResult[]> = { off: [], on: [] };
      const load = loadOptionsFor(a, clients, size);
      const messages = load.messages;
      for (let run = 0; run < a.runs; run++) {
        for (const v of variants) {
          const server = await startServer({ kind: "bunturn", threads: a.threads, recvmmsg: v.recvmmsg, sendmmsg: v.sendmmsg });
          try {
            const r = await runUclientLoad(server, load);
            results[v.name]!.push(r);
            emit({ bench, variant: v.name, run, clients, size, messages, threads: a.threads, warmupS: a["warmup-s"], recvmmsg: v.recvmmsg, sendmmsg: v.sendmmsg, ...r });
          } finally {
            await server.stop();
          }
        }
      }
      emit(summarize(bench, { clients, size, runs: a.runs }, results.off!, results.on!, "on/off"));
    }
  }
}

/** Medians of each variant and the B/A ratios of the medians. */
export function summarize(bench: string, key: Record<string, unknown>, A: LoadResult[], B: LoadResult[], label: string): Record<string, unknown> {
  const m = (rs: LoadResult[], f: (r: LoadResult) => number) => median(rs.filter((r) => r.ok).map(f));
  const fields = ["relayedPps", "serverCpuSPerMpkt", "serverCpuUsPerPktFine", "rttMs", "lossPct", "serverCpuPct", "uclientCpuPctMax", "peerCpuPct"] as const;
  const out: Record<string, unknown> = { bench, summary: true, ...key, ratioOf: label, okRuns: [A.filter((r) => r.ok).length, B.filter((r) => r.ok).length] };
  // Run k of A and of B were taken one after the other: a pair.
  const pairs = A.flatMap((a, k) => (a.ok && B[k]?.ok ? [[a, B[k]!] as const] : []));
  for (const f of fields) {
    const ma = m(A, (r) => r[f]);
    const mb = m(B, (r) => r[f]);
    const paired = pairedRatio(pairs.map(([, b]) => b[f]), pairs.map(([a]) => a[f]));
    out[f] = { a: round(ma, 4), b: round(mb, 4), ratio: ratio(mb, ma), pairedRatio: paired.median, bBelowAInPairs: `${paired.below}/${paired.pairs}` };
  }
  // Which threads a difference lives in (bunturn: "Worker" engines, "bun" main thread, JSC's helpers).
  const names = new Set([...A, ...B].flatMap((r) => Object.keys(r.serverCpuUsPerPktByThread)));
  const byThread: Record<string, unknown> = {};
  for (const n of names) {
    const ma = m(A, (r) => r.serverCpuUsPerPktByThread[n] ?? 0);
    const mb = m(B, (r) => r.serverCpuUsPerPktByThread[n] ?? 0);
    byThread[n] = { a: round(ma, 3), b: round(mb, 3) };
  }
  out.serverCpuUsPerPktByThread = byThread;
  out.bottlenecks = [...new Set([...A, ...B].map((r) => r.bottleneck))];
  return out;
}
