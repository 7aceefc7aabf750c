/**
 * Closed-loop ChannelData load through the FFI layer: N client sockets, each keeping `window` datagrams
 * in flight (a reply triggers the next send; silent clients are topped up every 200 ms). Mode `turn`
 * allocates and binds channel 0x4000 to the peer first (bench/lib/turn-client.ts); mode `raw` sends the
 * same bytes to a plain forwarder. Reads the server's CPU (/proc/PID/stat) at the start and end of the
 * data phase and prints one JSON line.
 *
 *   bun bench/lib/loadgen.ts <turn|raw> <server-port> <peer-port> <server-pid> <clients> <size> <window> <seconds>
 */
import { RecvBatch, SendBatch, UdpCapabilities, flushSendBatch, libc, newStats, receiveBatch } from "../../ffi/index.ts";
import { parseEndpoint } from "../../src/net/endpoint.ts";
import { encodeChannelData } from "../../src/stun/index.ts";
import { cpuSeconds } from "./proc.ts";
import { PASSWORD, USER } from "./servers.ts";
import { TurnClients } from "./turn-client.ts";

const [mode = "raw", serverText = "0", peerText = "0", pidText = "0", clientsText = "1", sizeText = "100", windowText = "8", secondsText = "3"] = process.argv.slice(2);
const clientsN = Number(clientsText);
const windowN = Number(windowText);
const tc = new TurnClients(Number(serverText), clientsN, { username: USER, password: PASSWORD }, 2 << 20);
let active = tc.clients;
if (mode === "turn") {
  active = tc.allocate();
  active = tc.channelBind(active, parseEndpoint("127.0.0.1", Number(peerText)));
}
const packet = encodeChannelData(0x4000, new Uint8Array(Number(sizeText)).fill(0x5a));
const recv = new RecvBatch(16, 2048);
const send = new SendBatch(64, 2048);
const caps = new UdpCapabilities({ recvmmsg: true, sendmmsg: true });
const stats = newStats();
const server = tc.server;
const push = (fd: number) => {
  send.push(fd, server.address, server.port, packet);
  if (send.full) flushSendBatch(send, caps, stats, libc);
};
const seenAt = new Map<number, number>();
const serverPid = Number(pidText);
const cpu0 = cpuSeconds(serverPid);
const own0 = process.cpuUsage();
const t0 = performance.now();
const end = t0 + Number(secondsText) * 1000;
let sent = 0;
let received = 0;
for (const c of active) {
  for (let k = 0; k < windowN; k++) push(c.fd);
  sent += windowN;
  seenAt.set(c.fd, t0);
}
flushSendBatch(send, caps, stats, libc);
let lastTopUp = t0;
let now = t0;
while ((now = performance.now()) < end) {
  const ready = tc.epoll.wait(20);
  for (let e = 0; e < ready; e++) {
    const fd = tc.epoll.eventToken(e);
    for (let round = 0; round < 8; round++) {
      const n = receiveBatch(fd, recv, caps, stats, libc);
      if (n <= 0) break;
      received += n;
      for (let i = 0; i < n; i++) push(fd);
      sent += n;
      if (n < 16) break;
    }
    seenAt.set(fd, now);
  }
  if (send.count) flushSendBatch(send, caps, stats, libc);
  if (now - lastTopUp > 200) {
    lastTopUp = now;
    for (const c of active) {
      if (now - (seenAt.get(c.fd) ?? 0) > 200) {
        for (let k = 0; k < windowN; k++) push(c.fd);
        sent += windowN;
      }
    }
    if (send.count) flushSendBatch(send, caps, stats, libc);
  }
}
const seconds = (performance.now() - t0) / 1000;
const cpu1 = cpuSeconds(serverPid);
const own = process.cpuUsage(own0);
tc.close();
console.log(JSON.stringify({ received, sent, seconds, serverCpuS: cpu1 - cpu0, genCpuS: (own.user + own.system) / 1e6, setupOk: active.length }));
