/**
 * The ceiling: a minimal UDP relay through the same FFI layer as bunturn's engine (RecvBatch/SendBatch,
 * receiveBatch/flushSendBatch, epoll), with no protocol work. A datagram from a new client source gets
 * its own relay socket (as an allocation would); client datagrams go out of that socket to the peer as
 * they are, peer datagrams on a relay socket go back to its client from the listener. Zero-copy sends.
 *
 *   bun bench/lib/forwarder.ts <listen-port> <peer-port> <recvmmsg 0|1> [max-seconds]   (stdin EOF stops it)
 */
import {
  EPOLLIN, Epoll, RecvBatch, SOCKADDR_SLOT, SendBatch, UdpCapabilities, UdpSocketState, flushSendBatch, libc,
  newStats, receiveBatch,
} from "../../ffi/index.ts";
import { parseIp } from "../../src/net/endpoint.ts";

const [listenText = "0", peerText = "0", mmsgText = "1", maxText = "120"] = process.argv.slice(2);
const LOOPBACK = parseIp("127.0.0.1")!;
const peerPort = Number(peerText);
const caps = new UdpCapabilities({ recvmmsg: mmsgText === "1", sendmmsg: true });
const listener = UdpSocketState.open({ family: 4, address: LOOPBACK, port: Number(listenText), bufferSize: 2 << 20, receiveTtlTos: true }, caps);
const epoll = new Epoll(256);
epoll.add(listener.fd, EPOLLIN);
epoll.add(0, EPOLLIN);
const recv = new RecvBatch();
const send = new SendBatch(64);
send.borrowFrom(recv.payload, recv.payloadAddress);
const stats = newStats();
/** client key (ip*65536+port) -> relay socket; fd -> its socket; relay socket -> client address and port. */
const relayOf = new Map<number, UdpSocketState>();
const socketOf = new Map<number, UdpSocketState>([[listener.fd, listener]]);
const clientOf = new Map<UdpSocketState, { address: Uint8Array; port: number }>();
const deadline = Date.now() + Number(maxText) * 1000;
console.log("ready");
loop: while (Date.now() < deadline) {
  const ready = epoll.wait(200);
  for (let e = 0; e < ready; e++) {
    const fd = epoll.eventToken(e);
    if (fd === 0) break loop;
    for (let round = 0; round < 8; round++) {
      const socket = socketOf.get(fd)!;
      const n = receiveBatch(socket, recv, stats, libc);
      if (n <= 0) break;
      for (let i = 0; i < n; i++) {
        if (socket === listener) {
          const key = recv.sourceIpv4(i) * 65536 + recv.sourcePort(i);
          let relay = relayOf.get(key);
          if (relay === undefined) {
            relay = UdpSocketState.open({ family: 4, address: LOOPBACK, port: 0, bufferSize: 2 << 20, receiveTtlTos: true }, caps);
            relayOf.set(key, relay);
            socketOf.set(relay.fd, relay);
            const off = i * SOCKADDR_SLOT;
            clientOf.set(relay, { address: recv.names.slice(off + 4, off + 8), port: recv.sourcePort(i) });
            epoll.add(relay.fd, EPOLLIN);
          }
          send.push(relay, LOOPBACK, peerPort, recv.datagram(i));
        } else {
          const c = clientOf.get(socket);
          if (c) send.push(listener, c.address, c.port, recv.datagram(i));
        }
        if (send.full) flushSendBatch(send, stats, libc);
      }
      if (send.count) flushSendBatch(send, stats, libc);
      if (n < recv.capacity) break;
    }
  }
}
for (const relay of clientOf.keys()) relay.close(libc);
listener.close(libc);
epoll.close();
