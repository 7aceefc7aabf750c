#!/usr/bin/env bun
/**
 * The end-to-end fuzzer at full size: `bun bench/fuzz.ts --count 1000000 [--seed N]`. Starts bunturn on
 * 127.0.0.1, sends it `count` random and mutated STUN/ChannelData datagrams from 256 loopback sources
 * (test/fuzz/run.ts), and prints what the server received, its crash counter, its RSS and whether a
 * well-behaved client kept being relayed. Exits 1 when anything escaped or the client was not served.
 */
import { runFuzz } from "../test/fuzz/run.ts";

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const count = flag("count", 1_000_000);
const seed = flag("seed", Date.now() % 0x7fffffff);
console.log(`fuzz: ${count} datagrams, seed ${seed}`);
const r = await runFuzz({ count, seed, log: (l) => console.log(l) });
const rate = Math.round(r.sent / (r.elapsedMs / 1000));
console.log(`sent ${r.sent} datagrams from ${r.sources} sources in ${(r.elapsedMs / 1000).toFixed(1)} s (${rate}/s), send errors ${r.sendErrors}`);
console.log(`server received ${r.serverReceived} datagrams on its listeners (incl. probes and the client)`);
console.log(`mutations: ${Object.entries(r.mutations).map(([k, v]) => `${k}=${v}`).join(" ")}`);
console.log(`server: crashes ${r.after.crashes}, "handler failed" lines ${r.handlerFailedLines}, allocations ${r.after.allocations}, ` +
  `responses sent ${r.after.protocol.errorsSent} errors, dropped ${r.after.protocol.dropped}, relayed ${r.after.protocol.clientToPeerPackets} out / ${r.after.protocol.peerToClientPackets} back`);
console.log(`server RSS ${r.rssBeforeKiB} KiB before, ${r.rssAfterKiB} KiB after`);
console.log(`well-behaved client: ${r.echoDuring[0]}/${r.echoDuring[1]} relayed round trips during, ${r.echoAfter[0]}/${r.echoAfter[1]} after; probes answered ${r.probesAnswered}`);
const ok = r.after.crashes === 0 && r.handlerFailedLines === 0 && r.echoAfter[0] === r.echoAfter[1] && r.echoDuring[0] === r.echoDuring[1];
console.log(ok ? "PASS" : "FAIL");
process.exit(ok ? 0 : 1);
