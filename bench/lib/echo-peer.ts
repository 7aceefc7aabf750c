/**
 * The relay's peer for the benches: a UDP echo on the FFI layer (recvmmsg 16 + sendmmsg, zero-copy), so
 * that it is never the bottleneck, which counts what it echoed and when the first and last datagram came.
 * Stops when its stdin closes (or after --max-seconds) and prints one JSON line:
 * {"rx":…,"tx":…,"first":epoch-ms,"last":epoch-ms}.
 *
 *   bun bench/lib/echo-peer.ts <ip> <port> [max-seconds]
 */
import {
  EPOLLIN, Epoll, RecvBatch, SOCKADDR_SLOT, STAT, SendBatch, UdpCapabilities, UdpSocketState, flushSendBatch, libc,
  newStats, receiveBatch,
} from "../../ffi/index.ts";
import { parseIp } from "../../src/net/endpoint.ts";

const [ip = "127.0.0.1", portText = "0", maxText = "120"] = process.argv.slice(2);
const caps = new UdpCapabilities({ recvmmsg: true, sendmmsg: true });
const socket = UdpSocketState.open({ family: 4, address: parseIp(ip)!, port: Number(portText), bufferSize: 4 << 20 }, caps);
const epoll = new Epoll(16);
epoll.add(socket.fd, EPOLLIN);
epoll.add(0, EPOLLIN);
const recv = new RecvBatch(16, 2048);
const send = new SendBatch(64, 2048);
send.borrowFrom(recv.payload, recv.payloadAddress);
const stats = newStats();
const deadline = Date.now() + Number(maxText) * 1000;
let rx = 0;
let first = 0;
let last = 0;
console.log("ready");
loop: while (Date.now() < deadline) {
  const n = epoll.wait(200);
  for (let e = 0; e < n; e++) {
    if (epoll.eventToken(e) === 0) break loop;
    for (let round = 0; round < 64; round++) {
      const got = receiveBatch(socket, recv, stats, libc);
      if (got <= 0) break;
      const now = performance.timeOrigin + performance.now();
      if (first === 0) first = now;
      last = now;
      rx += got;
      for (let i = 0; i < got; i++) {
        const off = i * SOCKADDR_SLOT;
        send.push(socket, recv.names.subarray(off + 4, off + 8), recv.sourcePort(i), recv.datagram(i));
        if (send.full) flushSendBatch(send, stats, libc);
      }
      flushSendBatch(send, stats, libc);
      if (got < recv.capacity) break;
    }
  }
}
socket.close(libc);
epoll.close();
console.log(JSON.stringify({ rx, tx: stats[STAT.sendPackets], first, last }));
