/**
 * The relay's peer for the benches: a UDP echo on the FFI layer (recvmmsg 16 + sendmmsg, zero-copy), so
 * that it is never the bottleneck, which counts what it echoed and when the first and last datagram came.
 * With `sockets` > 1 it listens on that many ports (the first given, the others the kernel's), so that
 * every client of a load can have a peer of its own (coturn's --multiplex-peer tells sessions apart by
 * the peer's address and port). With `gso` > 0 (a segment size, the largest datagram it will echo) it
 * echoes each run of equal datagrams from one source as one UDP_SEGMENT message (bench/lib/gso.ts), as a
 * peer behind a GSO-capable stack would send a video frame; falls back to plain sends if refused.
 * Prints `ready <port>,<port>,…`, then, when its stdin closes (or after max-seconds), one JSON line:
 * {"rx":…,"tx":…,"first":epoch-ms,"last":epoch-ms,"gso":bool}.
 *
 *   bun bench/lib/echo-peer.ts <ip> <port> [max-seconds] [sockets] [gso-segment]
 */
import {
  EPOLLIN, Epoll, RecvBatch, SOCKADDR_SLOT, STAT, SendBatch, UdpCapabilities, UdpSocketState, boundPort,
  flushSendBatch, libc, newStats, receiveBatch,
} from "../../ffi/index.ts";
import { parseIp } from "../../src/net/endpoint.ts";
import { runsOf, setSegmentSize } from "./gso.ts";

const [ip = "127.0.0.1", portText = "0", maxText = "120", socketsText = "1", gsoText = "0"] = process.argv.slice(2);
const caps = new UdpCapabilities({ recvmmsg: true, sendmmsg: true });
const epoll = new Epoll(256);
const sockets = new Map<number, UdpSocketState>();
const segment = Number(gsoText);
let gso = segment > 0;
for (let k = 0; k < Math.max(1, Number(socketsText)); k++) {
  const socket = UdpSocketState.open({ family: 4, address: parseIp(ip)!, port: k === 0 ? Number(portText) : 0, bufferSize: 4 << 20 }, caps);
  sockets.set(socket.fd, socket);
  epoll.add(socket.fd, EPOLLIN);
  if (gso && !setSegmentSize(socket, segment)) gso = false;
}
if (!gso) for (const s of sockets.values()) setSegmentSize(s, 0);
epoll.add(0, EPOLLIN);
const recv = new RecvBatch(16, 2048);
const send = new SendBatch(64, 2048);
send.borrowFrom(recv.payload, recv.payloadAddress);
const gsoSend = new SendBatch(16, 16 * 2048);
const stats = newStats();
const deadline = Date.now() + Number(maxText) * 1000;
let rx = 0;
let first = 0;
let last = 0;

const sourceOf = (i: number) => recv.names.subarray(i * SOCKADDR_SLOT + 4, i * SOCKADDR_SLOT + 8);
const sameSource = (i: number, j: number) => recv.sourcePort(i) === recv.sourcePort(j) && sourceOf(i).every((b, k) => b === sourceOf(j)[k]);
const lengthOf = (i: number) => recv.datagram(i).length;

function echo(socket: UdpSocketState, got: number): void {
  if (!gso) {
    for (let i = 0; i < got; i++) {
      send.push(socket, sourceOf(i), recv.sourcePort(i), recv.datagram(i));
      if (send.full) flushSendBatch(send, stats, libc);
    }
    flushSendBatch(send, stats, libc);
    return;
  }
  runsOf(got, lengthOf, sameSource, segment, (from, to) => {
    let bytes = 0;
    for (let i = from; i < to; i++) bytes += lengthOf(i);
    const message = new Uint8Array(bytes);
    for (let i = from, at = 0; i < to; at += lengthOf(i), i++) message.set(recv.datagram(i), at);
    gsoSend.push(socket, sourceOf(from), recv.sourcePort(from), message);
  });
  flushSendBatch(gsoSend, stats, libc);
}

console.log(`ready ${[...sockets.values()].map((s) => boundPort(s.fd)).join(",")}`);
loop: while (Date.now() < deadline) {
  const n = epoll.wait(200);
  for (let e = 0; e < n; e++) {
    const fd = epoll.eventToken(e);
    if (fd === 0) break loop;
    const socket = sockets.get(fd)!;
    for (let round = 0; round < 64; round++) {
      const got = receiveBatch(socket, recv, stats, libc);
      if (got <= 0) break;
      const now = performance.timeOrigin + performance.now();
      if (first === 0) first = now;
      last = now;
      rx += got;
      echo(socket, got);
      if (got < recv.capacity) break;
    }
  }
}
for (const s of sockets.values()) s.close(libc);
epoll.close();
console.log(JSON.stringify({ rx, tx: stats[STAT.sendPackets], first, last, gso }));
