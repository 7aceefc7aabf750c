/**
 * One run of the user-space hot path: a real Engine (this checkout, or the one given by --root), one
 * allocation with a channel, and the kernel replaced by a fake in the four calls of the data path
 * (epoll_wait, recvmmsg/recvmsg, sendmmsg, sendmsg). Each fake wake-up hands the engine `batch` datagrams on
 * the listener (ChannelData from the client) or on the relay socket (from the peer), alternately, written
 * where the batch's iovecs point, as the kernel would. What is timed is everything bunturn does per
 * datagram in JavaScript (batch bookkeeping, cmsg, source lookup, protocol, send queueing, counters)
 * and the FFI-free part of the loop; no system call of the data path runs. Prints one JSON line.
 *
 *   bun bench/lib/hotpath-child.ts <root> <batch> <size> <warmupWakes> <wakes> [recvmmsg 1|0]
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { wordList } from "./args.ts";
import { freePort, relayRange } from "./proc.ts";

const [root = join(import.meta.dir, "../.."), batchText = "1", sizeText = "100", warmText = "200000", wakesText = "400000", recvmmsgText = "1", extraArgsText = ""] = process.argv.slice(2);
const BATCH = Number(batchText);
const SIZE = Number(sizeText);
const WARM = Number(warmText);
const WAKES = Number(wakesText);

const ffi = await import(join(root, "ffi/index.ts"));
const layout = await import(join(root, "ffi/layout.ts"));
const { Engine } = await import(join(root, "src/engine/engine.ts"));
const { parseArgv } = await import(join(root, "src/cli/argv.ts"));
const { resolveConfig } = await import(join(root, "src/config/resolve.ts"));
const { PortPool } = await import(join(root, "src/engine/port-pool.ts"));
const { createQuotaShared } = await import(join(root, "src/engine/quota.ts"));
const counterLayout = await import(join(root, "src/engine/counters.ts"));
// ENGINE_SLOTS: the name in a checkout from before the counter table (e.g. a --base).
const BLOCK_SLOTS: number = counterLayout.BLOCK_SLOTS ?? counterLayout.ENGINE_SLOTS;
const stun = await import(join(root, "src/stun/index.ts"));
const { parseEndpoint } = await import(join(root, "src/net/endpoint.ts"));

const PEER = parseEndpoint("127.0.0.1", 39999);
const CLIENT = parseEndpoint("127.0.0.1", 39998);
const [minPort, maxPort] = relayRange();
const config = resolveConfig(parseArgv([
  "--listening-ip", "127.0.0.1", "--listening-port", String(freePort()), "--relay-ip", "127.0.0.1", "--min-port", String(minPort), "--max-port", String(maxPort),
  "--no-auth", "--allow-loopback-peers", "--relay-threads", "1", "--no-tcp", ...(recvmmsgText === "1" ? ["--udp-recvmmsg"] : []), ...wordList(extraArgsText),
]).raw);
// Stop and drain flags (admission.ts CONTROL_CELLS); a checkout from before the drain reads only [0].
const control = new Int32Array(new SharedArrayBuffer(4 * 8));
const logs: string[] = [];
const init = {
  index: 0, config, pool: PortPool.createShared(config.minPort, config.maxPort),
  capabilityCells: ffi.UdpCapabilities.sharedCells({ recvmmsg: config.udpRecvmmsg, sendmmsg: config.udpSendmmsg }),
  counters: new Float64Array(new SharedArrayBuffer(BLOCK_SLOTS * 8)), control, nonceSecret: new Uint8Array(32).fill(7), quota: createQuotaShared(),
};
const onEvent = (e: { kind: string; message?: string }) => { if (e.kind === "log") logs.push(e.message!); };
// A checkout whose engine takes its core from outside (src/engine/core.ts) is built through its public
// API; an older one (e.g. the --base of a comparison) through the internals it had then.
const handsCoreIn = existsSync(join(root, "src/engine/core.ts"));
let turn: any;
let engine: any;
if (handsCoreIn) {
  const { buildTurnServer } = await import(join(root, "src/engine/core.ts"));
  engine = new Engine(init, onEvent, (io: unknown) => (turn = buildTurnServer(init, io)));
} else {
  engine = new Engine(init, onEvent);
  turn = (engine as Record<string, any>).turn;
}
engine.openListeners();
const inner = handsCoreIn ? engine : (engine as Record<string, any>);
const listenerFd: number = handsCoreIn ? engine.listeners[0].udp.fd : inner.listeners[0].fd;

// One allocation and a channel to PEER, through the real protocol core (no authentication, so no keys).
const request = (method: number, build: (w: any) => void) => {
  const w = new stun.StunWriter(method, stun.StunClass.Request, crypto.getRandomValues(new Uint8Array(12)));
  build(w);
  turn.handleClientDatagram(0, CLIENT, w.finish(), Date.now());
};
request(stun.StunMethod.Allocate, (w) => stun.writeRequestedTransport(w, 17));
request(stun.StunMethod.ChannelBind, (w) => {
  stun.writeChannelNumber(w, 0x4000);
  stun.writeXorAddress(w, stun.Attr.XorPeerAddress, PEER);
});
const relayFds: number[] = handsCoreIn ? [...engine.relays.all()].map((r) => r.udp.fd) : [...inner.relaysById.values()].map((r) => r.fd);
if (relayFds.length !== 1) throw new Error(`setup failed: ${relayFds.length} relays; ${logs.join("; ")}`);
const relayFd = relayFds[0]!;

// The fake kernel writes into the engine's own receive batch, where its iovecs point.
const recv = inner.recv;
const u32: Uint32Array = recv.u32;
const structBytes = new Uint8Array(recv.structBuffer);
const { MMSGHDR, MSGHDR, IOVEC, SOCKADDR_SLOT, EPOLL_EVENT } = layout;
const payloadOf = (i: number): number => {
  const iovAddress = u32[(i * MMSGHDR.size + MSGHDR.iov) >>> 2]! + u32[(i * MMSGHDR.size + MSGHDR.iov + 4) >>> 2]! * 2 ** 32;
  const iov = iovAddress - recv.vecAddress;
  const base = u32[(iov + IOVEC.base) >>> 2]! + u32[(iov + IOVEC.base + 4) >>> 2]! * 2 ** 32;
  return base - recv.payloadAddress;
};
const controlOf = (i: number): number => {
  const h = i * MMSGHDR.size;
  const address = u32[(h + MSGHDR.control) >>> 2]! + u32[(h + MSGHDR.control + 4) >>> 2]! * 2 ** 32;
  return address - recv.vecAddress;
};
// Per slot, what does not change between datagrams is written once; per datagram, the fake writes what
// the kernel would change (length, source, control and name lengths, flags) with a few stores.
const ttlTos = new Uint8Array(64);
const ttlTosLength = ffi.writeTtlTos(ttlTos, 0, false, 64, 0);
const payloadAt: number[] = [];
for (let i = 0; i < recv.capacity; i++) {
  payloadAt.push(payloadOf(i));
  structBytes.set(ttlTos.subarray(0, ttlTosLength), controlOf(i));
}
const sockaddrWords = (e: typeof PEER): Uint32Array => {
  const b = new Uint8Array(16);
  ffi.writeSockaddr(b, 0, e.address, e.port);
  return new Uint32Array(b.buffer);
};
const peerName = sockaddrWords(PEER);
const clientName = sockaddrWords(CLIENT);
const namesWordOffset = (recv.names.byteOffset as number) >>> 2;

function deliver(i: number, fromPeer: boolean): void {
  const at = payloadAt[i]!;
  const payload = recv.payload as Uint8Array;
  let length = SIZE;
  if (!fromPeer) {
    payload[at] = 0x40;
    payload[at + 1] = 0x00;
    payload[at + 2] = SIZE >> 8;
    payload[at + 3] = SIZE & 0xff;
    length += 4;
  }
  const h = (i * MMSGHDR.size) >>> 2;
  u32[h + (MMSGHDR.len >>> 2)] = length;
  const name = fromPeer ? peerName : clientName;
  const n = namesWordOffset + ((i * SOCKADDR_SLOT) >>> 2);
  u32[n] = name[0]!;
  u32[n + 1] = name[1]!;
  u32[n + 2] = name[2]!;
  u32[n + 3] = name[3]!;
  u32[h + (MSGHDR.namelen >>> 2)] = 16;
  u32[h + (MSGHDR.controllen >>> 2)] = ttlTosLength;
  u32[h + (MSGHDR.flags >>> 2)] = 0;
}

let wakes = 0;
let delivered = 0;
let pending = 0; // datagrams the current wake still has to hand out
let readyFd = listenerFd;
let t0 = 0;
let delivered0 = 0;
const EAGAIN = 11;
let eventWords: Uint32Array | undefined;
const sys = ffi.libc;
sys.epollWait = (_epfd: number, events: ArrayBuffer, _max: number, _timeout: number): number => {
  wakes++;
  if (wakes === WARM) {
    t0 = Bun.nanoseconds();
    delivered0 = delivered;
  }
  if (wakes >= WARM + WAKES) {
    Atomics.store(control, 0, 1);
    return 0;
  }
  readyFd = wakes & 1 ? relayFd : listenerFd;
  pending = BATCH;
  if (eventWords === undefined) eventWords = new Uint32Array(events, 0, 3);
  eventWords[EPOLL_EVENT.events >>> 2] = 1; // EPOLLIN
  eventWords[EPOLL_EVENT.data >>> 2] = readyFd;
  return 1;
};
sys.recvmmsg = (fd: number, _vec: number, max: number): number => {
  if (fd !== readyFd || pending === 0) return -EAGAIN;
  const n = Math.min(max, pending);
  for (let i = 0; i < n; i++) deliver(i, fd === relayFd);
  pending -= n;
  delivered += n;
  return n;
};
sys.recvmsg = (fd: number, msghdr: number): number => {
  if (fd !== readyFd || pending === 0) return -EAGAIN;
  const i = (msghdr - recv.vecAddress) / MMSGHDR.size;
  deliver(i, fd === relayFd);
  pending--;
  delivered++;
  return u32[(i * MMSGHDR.size + MMSGHDR.len) >>> 2]!;
};
let sent = 0;
sys.sendmmsg = (_fd: number, _vec: number, n: number): number => {
  sent += n;
  return n;
};
sys.sendmsg = (): number => {
  sent++;
  return SIZE;
};

const counters = turn.counters;
const before = { toPeer: counters.clientToPeerPackets, toClient: counters.peerToClientPackets };
const cpu0 = process.cpuUsage();
engine.run();
const ns = Bun.nanoseconds() - t0;
const cpu = process.cpuUsage(cpu0);
const relayed = delivered - delivered0;
const toPeer = counters.clientToPeerPackets - before.toPeer;
const toClient = counters.peerToClientPackets - before.toClient;
if (toPeer + toClient < delivered * 0.99) throw new Error(`relayed ${toPeer}+${toClient} of ${delivered}: the fake kernel is not being relayed; ${logs.join("; ")}`);
console.log(JSON.stringify({
  batch: BATCH, size: SIZE, wakes: WAKES, relayed, sent,
  nsPerPkt: Math.round((ns / relayed) * 100) / 100,
  processCpuS: Math.round(((cpu.user + cpu.system) / 1e6) * 100) / 100,
  crashes: logs.filter((l) => l.includes("handler failed")).length,
}));
process.exit(0);
