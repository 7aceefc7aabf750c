/**
 * The relay's peer for the benches: a UDP echo on the FFI layer (recvmmsg 16 + sendmmsg, zero-copy), so
 * that it is never the bottleneck, which counts what it echoed and when the first and last datagram came.
 * With `sockets` > 1 it listens on that many ports (the first given, the others the kernel's), so that
 * every client of a load can have a peer of its own (coturn's --multiplex-peer tells sessions apart by
 * the peer's address and port). With `gso` > 0 (a segment size, the largest datagram it will echo) it
 * echoes each run of equal datagrams from one source as one UDP_SEGMENT message (bench/lib/gso.ts), as a
 * peer behind a GSO-capable stack would send a video frame, with the run's own datagram size as the
 * segment size (the socket's UDP_SEGMENT option, changed only when the size does); falls back to plain
 * sends if refused. With `gro` 1 its sockets also receive with UDP_GRO (bench/lib/gso.ts, setGro): a
 * train arrives as one buffer and goes back as one message of the same segment size.
 * Prints `ready <port>,<port>,…`, then, when its stdin closes (or after max-seconds), one JSON line:
 * {"rx":…,"tx":…,"first":epoch-ms,"last":epoch-ms,"gso":bool}.
 *
 *   bun bench/lib/echo-peer.ts <ip> <port> [max-seconds] [sockets] [gso-segment] [gro 1|0]
 */
import {
  CmsgInfo, EPOLLIN, Epoll, RecvBatch, SOCKADDR_SLOT, STAT, SendBatch, UdpCapabilities, UdpSocketState, boundPort,
  flushSendBatch, libc, newStats, receiveBatch,
} from "../../ffi/index.ts";
import { parseIp } from "../../src/net/endpoint.ts";
import { GSO_MAX_BYTES, GSO_MAX_SEGMENTS, datagramsIn, setGro, setSegmentSize } from "./gso.ts";

const [ip = "127.0.0.1", portText = "0", maxText = "120", socketsText = "1", gsoText = "0", groText = "0"] = process.argv.slice(2);
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
  if (groText === "1" && !setGro(socket)) throw new Error("the kernel refused UDP_GRO on the echo peer's sockets");
}
if (!gso) for (const s of sockets.values()) setSegmentSize(s, 0);
/** Each socket's UDP_SEGMENT option now (a message longer than it is cut at it). */
const segmentNow = new Map<number, number>([...sockets.keys()].map((fd) => [fd, gso ? segment : 0]));
epoll.add(0, EPOLLIN);
const slot = groText === "1" ? 65536 : 2048;
const recv = new RecvBatch(16, slot);
const send = new SendBatch(64, 2048);
send.borrowFrom(recv.payload, recv.payloadAddress);
const gsoSend = new SendBatch(16, 65536);
const scratch = new Uint8Array(65536);
const info = new CmsgInfo();
const stats = newStats();
const deadline = Date.now() + Number(maxText) * 1000;
let rx = 0;
let first = 0;
let last = 0;

const sourceOf = (i: number) => recv.names.subarray(i * SOCKADDR_SLOT + 4, i * SOCKADDR_SLOT + 8);
const sameSource = (i: number, j: number) => recv.sourcePort(i) === recv.sourcePort(j) && recv.sourceIpv4(i) === recv.sourceIpv4(j);
const lengthOf = (i: number) => recv.length(i);

/** Sets the socket's segment size to `size`, sending what was queued under the old one first. */
function segmentSize(socket: UdpSocketState, size: number): void {
  if (segmentNow.get(socket.fd) === size) return;
  if (gsoSend.count) flushSendBatch(gsoSend, stats, libc);
  setSegmentSize(socket, size);
  segmentNow.set(socket.fd, size);
}

/** Echoes `got` received entries; returns the datagrams they held. */
function echo(socket: UdpSocketState, got: number): number {
  if (!gso) {
    for (let i = 0; i < got; i++) {
      send.push(socket, sourceOf(i), recv.sourcePort(i), recv.datagram(i));
      if (send.full) flushSendBatch(send, stats, libc);
    }
    flushSendBatch(send, stats, libc);
    return got;
  }
  let datagrams = 0;
  let from = 0;
  while (from < got) {
    const len = lengthOf(from);
    const inBuffer = datagramsIn(recv, from, info);
    if (inBuffer > 1) {
      // A train received as one GRO buffer: back as one message cut at the same size.
      segmentSize(socket, info.groSize);
      gsoSend.push(socket, sourceOf(from), recv.sourcePort(from), recv.datagram(from));
      if (gsoSend.full) flushSendBatch(gsoSend, stats, libc);
      datagrams += inBuffer;
      from++;
      continue;
    }
    // Plain datagrams: a run of equal ones from one source (the last may be shorter) is one message.
    let to = from + 1;
    let bytes = len;
    while (to < got && to - from < GSO_MAX_SEGMENTS && lengthOf(to - 1) === len && lengthOf(to) <= len && bytes + lengthOf(to) <= GSO_MAX_BYTES
      && sameSource(from, to) && datagramsIn(recv, to, info) === 1) {
      bytes += lengthOf(to);
      to++;
    }
    const now = segmentNow.get(socket.fd)!;
    if (to - from > 1) segmentSize(socket, len);
    else if (now !== 0 && now < len) segmentSize(socket, segment); // one datagram must not be cut
    for (let i = from, at = 0; i < to; at += lengthOf(i), i++) scratch.set(recv.datagram(i), at);
    gsoSend.push(socket, sourceOf(from), recv.sourcePort(from), scratch.subarray(0, bytes));
    if (gsoSend.full) flushSendBatch(gsoSend, stats, libc);
    datagrams += to - from;
    from = to;
  }
  flushSendBatch(gsoSend, stats, libc);
  return datagrams;
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
      rx += echo(socket, got);
      if (got < recv.capacity) break;
    }
  }
}
for (const s of sockets.values()) s.close(libc);
epoll.close();
console.log(JSON.stringify({ rx, tx: stats[STAT.sendPackets], first, last, gso }));
