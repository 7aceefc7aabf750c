/**
 * bunturn vs coturn's turnserver (Debian 4.6.1, started by hand in the foreground), identical
 * turnutils_uclient load, runs alternated coturn, bunturn, coturn, bunturn … Same user, realm, relay
 * range size, --relay-threads, loopback peers allowed, both on 127.0.0.1. coturn 4.6.1 has no
 * --udp-recvmmsg, so it reads one datagram per system call; bunturn runs with --bunturn-recvmmsg as given.
 * One JSON line per run, then a summary line per configuration with the bunturn/coturn ratios.
 * --transport tcp or tls puts uclient on TCP (-t) or TLS (-t -S; both servers get the same certificate).
 * --side-by-side: each run starts both servers and loads them at the same moment (bench/lib/side-by-side.ts),
 * so the machine's drift from one run to the next hits both alike; for paced loads only.
 */
import { describeArgs, numberList, parseArgs, type ArgSpec } from "./lib/args.ts";
import { coturnVersion, startServer } from "./lib/servers.ts";
import { emit } from "./lib/stats.ts";
import { UCLIENT_LOAD_SPEC, loadOptionsFor, runUclientLoad, type LoadResult } from "./lib/uclient-load.ts";
import { runPairSideBySide } from "./lib/side-by-side.ts";
import { summarize } from "./ab.ts";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A one-day P-256 certificate for both servers (in the system's temporary directory). */
export function selfSignedPair(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), "bunturn-bench-dtls-"));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const gen = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
    "-subj", "/CN=localhost", "-keyout", key, "-out", cert], { stdout: "ignore", stderr: "pipe" });
  if (gen.exitCode !== 0) throw new Error(`openssl: ${gen.stderr.toString()}`);
  return { cert, key };
}

/** The TLS certificate (--transport tls), made once. */
let certificate: { cert: string; key: string } | undefined;

export const spec = {
  runs: { default: 3, help: "runs per server (alternated)" },
  clients: { default: "1,100", help: "comma-separated client counts" },
  sizes: { default: "100,1000", help: "comma-separated message lengths (bytes)" },
  threads: { default: 2, help: "--relay-threads for both" },
  "bunturn-recvmmsg": { default: false, help: "run bunturn with --udp-recvmmsg (coturn 4.6.1 cannot)" },
  "coturn-bin": { default: "turnserver", help: "the coturn turnserver to run (e.g. one built from source)" },
  "bunturn-args": { default: "", help: "extra options of bunturn, space-separated (e.g. \"--no-warmup\")" },
  indications: { default: false, help: "uclient -s: Send and Data indications instead of channels (coturn 4.17.1 answers Debian's uclient -S ChannelBind with 400 over DTLS)" },
  dtls: { default: false, help: "TURN over DTLS (uclient -S over UDP), both servers with the same self-signed certificate" },
  "side-by-side": { default: false, help: "run both servers at once, each under its own identical load started at the same moment (paced loads: --interval > 0)" },
  ...UCLIENT_LOAD_SPEC,
} satisfies ArgSpec;

type Kind = "coturn" | "bunturn";

export const usage = `bun run bench vs-coturn [options]\n${describeArgs(spec)}`;

export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv, spec);
  const version = coturnVersion(a["coturn-bin"]);
  const dtls = a.dtls ? selfSignedPair() : undefined;
  for (const clients of numberList(a.clients)) {
    for (const size of numberList(a.sizes)) {
      const results: Record<Kind, LoadResult[]> = { coturn: [], bunturn: [] };
      const load = { ...loadOptionsFor(a, clients, size), secure: a.dtls, indications: a.indications };
      const tls = load.transport === "tls" ? (certificate ??= selfSignedPair()) : undefined;
      const messages = load.messages;
      const startOne = (kind: Kind) => startServer({
        kind, threads: a.threads, recvmmsg: kind === "bunturn" && a["bunturn-recvmmsg"], coturnBin: a["coturn-bin"],
        extra: kind === "bunturn" ? a["bunturn-args"].split(" ").filter(Boolean) : [], ...(dtls ? { dtls } : {}), ...(tls ? { tls } : {}),
      });
      const record = (kind: Kind, run: number, r: LoadResult, extra: object = {}) => {
        results[kind].push(r);
        const recvmmsg = kind === "bunturn" && a["bunturn-recvmmsg"];
        emit({ bench: "vs-coturn", variant: kind, run, clients, size, messages, transport: load.transport, threads: a.threads, dtls: a.dtls, indications: a.indications, warmupS: a["warmup-s"], recvmmsg, sideBySide: a["side-by-side"], ...(kind === "bunturn" ? { bunturnArgs: a["bunturn-args"] } : {}), ...(kind === "coturn" ? { version } : {}), ...extra, ...r });
      };
      for (let run = 0; run < a.runs; run++) {
        if (a["side-by-side"]) {
          for (const { variant, result, extra } of await runPairSideBySide(run, ["coturn", "bunturn"] as const, startOne, load)) record(variant, run, result, extra);
          continue;
        }
        for (const kind of ["coturn", "bunturn"] as const) {
          const server = await startOne(kind);
          try {
            record(kind, run, await runUclientLoad(server, load));
          } finally {
            await server.stop();
          }
        }
      }
      emit(summarize("vs-coturn", { clients, size, transport: load.transport, runs: a.runs, sideBySide: a["side-by-side"], warmupS: a["warmup-s"], threads: a.threads, dtls: a.dtls, indications: a.indications, bunturnRecvmmsg: a["bunturn-recvmmsg"] }, results.coturn, results.bunturn, "bunturn/coturn"));
    }
  }
}
