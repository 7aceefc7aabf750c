/**
 * Closed-loop ChannelData load through the FFI layer: N client sockets per target, each keeping `window`
 * datagrams in flight (a reply triggers the next send; silent clients are topped up every 200 ms). A
 * target of mode `turn` is a TURN server: each client allocates and binds channel 0x4000 to the peer
 * first (bench/lib/turn-client.ts); mode `raw` sends the same bytes to a plain forwarder.
 *
 * With several targets the load alternates between them in slices of `slice-ms`: one target at a time
 * is loaded while the others sit idle, so every target sees the same machine, minute by minute, and the
 * drifts of a noisy machine cancel instead of landing on whichever server ran at the bad moment. At the
 * start of its slice a target's sockets are emptied of replies that arrived late (not counted), then
 * its window is sent afresh.
 *
 * Reads each server's CPU (/proc/PID/stat) at the start and end of the data phase and prints one JSON
 * line: {"targets":[{received,sent,seconds,serverCpuS,setupOk,sleeps,preemptions}, …],"genCpuS":…},
 * `seconds` being the time that target was loaded, sleeps and preemptions the server's voluntary and
 * involuntary context switches over the data phase.
 *
 *   bun bench/lib/loadgen.ts <clients> <size> <window> <seconds> <slice-ms> <peer-port> <mode:server-port:server-pid>...
 */
import { RecvBatch, SendBatch, flushSendBatch, libc, newStats, receiveBatch, type UdpSocketState } from "../../ffi/index.ts";
import { parseEndpoint } from "../../src/net/endpoint.ts";
import { encodeChannelData } from "../../src/stun/index.ts";
import { contextSwitches, cpuSeconds } from "./proc.ts";
import { PASSWORD, USER } from "./servers.ts";
import { TurnClients, type TurnClientSocket } from "./turn-client.ts";

const [clientsText = "1", sizeText = "100", windowText = "8", secondsText = "3", sliceText = "500", peerText = "0", ...targetTexts] = process.argv.slice(2);
const clientsN = Number(clientsText);
const windowN = Number(windowText);
const peer = parseEndpoint("127.0.0.1", Number(peerText));

interface Target {
  tc: TurnClients;
  active: TurnClientSocket[];
  pid: number;
  cpu0: number;
  switches0: { voluntary: number; involuntary: number };
  loadedMs: number;
  sent: number;
  received: number;
}

const targets: Target[] = targetTexts.map((text) => {
  const [mode, port, pid] = text.split(":");
  const tc = new TurnClients(Number(port), clientsN, { username: USER, password: PASSWORD }, 2 << 20);
  let active = tc.clients;
  if (mode === "turn") active = tc.channelBind(tc.allocate(), peer);
  return { tc, active, pid: Number(pid), cpu0: 0, switches0: { voluntary: 0, involuntary: 0 }, loadedMs: 0, sent: 0, received: 0 };
});
if (targets.length === 0) throw new Error("no target");
const packet = encodeChannelData(0x4000, new Uint8Array(Number(sizeText)).fill(0x5a));
const recv = new RecvBatch(16, 2048);
const send = new SendBatch(64, 2048);
const stats = newStats();
const flush = () => {
  if (send.count) flushSendBatch(send, stats, libc);
};
const seenAt = new Map<number, number>();

function push(t: Target, socket: UdpSocketState, count: number): void {
  const server = t.tc.server;
  for (let k = 0; k < count; k++) {
    send.push(socket, server.address, server.port, packet);
    if (send.full) flush();
  }
  t.sent += count;
}

/** Empties the target's sockets of late replies, then sends every client's window. */
function startSlice(t: Target, now: number): void {
  for (const c of t.active) {
    while (receiveBatch(c.udp, recv, stats, libc) > 0);
    push(t, c.udp, windowN);
    seenAt.set(c.fd, now);
  }
  flush();
}

const own0 = process.cpuUsage();
for (const t of targets) {
  t.cpu0 = cpuSeconds(t.pid);
  t.switches0 = contextSwitches(t.pid);
}
const t0 = performance.now();
const end = t0 + Number(secondsText) * 1000;
const sliceMs = targets.length > 1 ? Number(sliceText) : Infinity;
let current = targets[0]!;
let sliceStart = t0;
let lastTopUp = t0;
let now = t0;
startSlice(current, t0);
while ((now = performance.now()) < end) {
  if (now - sliceStart >= sliceMs) {
    current.loadedMs += now - sliceStart;
    current = targets[(targets.indexOf(current) + 1) % targets.length]!;
    sliceStart = now;
    startSlice(current, now);
  }
  const ready = current.tc.epoll.wait(20);
  for (let e = 0; e < ready; e++) {
    const fd = current.tc.epoll.eventToken(e);
    const socket = current.tc.byFd.get(fd)!.udp;
    for (let round = 0; round < 8; round++) {
      const n = receiveBatch(socket, recv, stats, libc);
      if (n <= 0) break;
      current.received += n;
      push(current, socket, n);
      if (n < 16) break;
    }
    seenAt.set(fd, now);
  }
  flush();
  if (now - lastTopUp > 200) {
    lastTopUp = now;
    for (const c of current.active) if (now - (seenAt.get(c.fd) ?? 0) > 200) push(current, c.udp, windowN);
    flush();
  }
}
current.loadedMs += performance.now() - sliceStart;
const results = targets.map((t) => {
  const switches = contextSwitches(t.pid);
  return {
    received: t.received, sent: t.sent, seconds: t.loadedMs / 1000, serverCpuS: cpuSeconds(t.pid) - t.cpu0, setupOk: t.active.length,
    sleeps: switches.voluntary - t.switches0.voluntary, preemptions: switches.involuntary - t.switches0.involuntary,
  };
});
const own = process.cpuUsage(own0);
for (const t of targets) t.tc.close();
console.log(JSON.stringify({ targets: results, genCpuS: (own.user + own.system) / 1e6 }));
