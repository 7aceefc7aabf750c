#!/usr/bin/env bun
/**
 * The end-to-end fuzzer at full size: `bun bench/fuzz.ts --count 1000000 [--seed N] [--auth]`. Starts bunturn on
 * 127.0.0.1, sends it `count` random and mutated STUN/ChannelData datagrams from 256 loopback sources
 * (test/fuzz/run.ts), and prints what the server received, its crash counter, its RSS and whether a
 * well-behaved client kept being relayed. Exits 1 when anything escaped or the client was not served.
 * `--auth`: against `--lt-cred-mech`, most datagrams validly signed mutated requests (test/fuzz/signed.ts);
 * also fails when a request corrupted after signing got anything but 401, or when the allocations, relay
 * sockets, relay ports and fds the fuzz took are not all back after Refresh(0) (reserved ports: <= 40 s).
 */
import { runFuzz } from "../test/fuzz/run.ts";

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const count = flag("count", 1_000_000);
const seed = flag("seed", Date.now() % 0x7fffffff);
const auth = process.argv.includes("--auth");
console.log(`fuzz: ${count} datagrams, seed ${seed}${auth ? ", --lt-cred-mech, signed mutations" : ""}`);
const r = await runFuzz({ count, seed, auth, releaseWaitMs: 40_000, log: (l) => console.log(l) });
const rate = Math.round(r.sent / (r.elapsedMs / 1000));
console.log(`sent ${r.sent} datagrams from ${r.sources} sources in ${(r.elapsedMs / 1000).toFixed(1)} s (${rate}/s), send errors ${r.sendErrors}`);
console.log(`server received ${r.serverReceived} datagrams on its listeners (incl. probes and the client)`);
console.log(`mutations: ${Object.entries(r.mutations).map(([k, v]) => `${k}=${v}`).join(" ")}`);
console.log(`server: crashes ${r.after.crashes}, "handler failed" lines ${r.handlerFailedLines}, allocations ${r.after.allocations}, ` +
  `responses sent ${r.after.protocol.errorsSent} errors, dropped ${r.after.protocol.dropped}, relayed ${r.after.protocol.clientToPeerPackets} out / ${r.after.protocol.peerToClientPackets} back`);
console.log(`server RSS ${r.rssBeforeKiB} KiB before, ${r.rssAfterKiB} KiB after`);
console.log(`well-behaved client: ${r.echoDuring[0]}/${r.echoDuring[1]} relayed round trips during, ${r.echoAfter[0]}/${r.echoAfter[1]} after; probes answered ${r.probesAnswered}`);
let ok = r.after.crashes === 0 && r.handlerFailedLines === 0 && r.echoAfter[0] === r.echoAfter[1] && r.echoDuring[0] === r.echoDuring[1];
if (r.auth) {
  const a = r.auth;
  console.log(`signed: ${a.signed} (${Object.entries(a.signedMutations).map(([k, v]) => `${k}=${v}`).join(" ")}), 401s ${r.after.protocol.unauthorized}`);
  console.log(`corrupted after signing: ${a.afterSigning} sent, ${a.afterSigningAnswered} answers seen, ${a.afterSigningWrong} not 401`);
  console.log(`allocations: at most ${a.maxAllocations} seen (incl. the client); released: allocations ${a.released.allocations}, relay sockets ${a.released.relaySockets}, ` +
    `relay ports ${a.released.relayPorts} after ${a.released.waitedMs} ms, fds ${a.released.fdsBefore} -> ${a.released.fdsAfter}`);
  ok &&= a.afterSigningWrong === 0 && a.afterSigningAnswered >= a.afterSigning * 0.98 && a.released.allocations === 0 && a.released.relaySockets === 0 && a.released.relayPorts === 0 &&
    a.released.fdsAfter === a.released.fdsBefore && a.maxAllocations <= r.sources + 1;
}
console.log(ok ? "PASS" : "FAIL");
process.exit(ok ? 0 : 1);
