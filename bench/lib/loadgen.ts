/**
 * ChannelData load through the FFI layer: N client sockets per target, each sending one of the shapes
 * of load-shapes.ts (closed loop `window` or `burst`: a reply triggers the next send, silent clients are
 * topped up every 200 ms; paced `call`). A target of mode `turn` is a TURN server: each client
 * allocates and binds channel 0x4000 to its peer first (bench/lib/turn-client.ts), client k to peer port
 * k mod the number of peer ports; mode `raw` sends the same bytes to a plain forwarder. With `gso` the
 * clients send each burst or frame as one UDP_SEGMENT message (bench/lib/gso.ts); with `gro` they also
 * receive with UDP_GRO (a relay's GSO message arrives as one buffer, counted as its datagrams).
 *
 * With several targets the load alternates between them in slices of `sliceMs`: one target at a time
 * is loaded while the others sit idle, so every target sees the same machine, minute by minute, and the
 * drifts of a noisy machine cancel instead of landing on whichever server ran at the bad moment. At the
 * start of its slice a target's sockets are emptied of replies that arrived late (not counted), then
 * its window is sent afresh (or its call schedule restarted).
 *
 * Reads each server's CPU (all its threads, /proc/PID/task/*\/schedstat) at the start and end of the
 * data phase and prints one JSON line:
 * {"targets":[{received,sent,seconds,serverCpuS,setupOk,sleeps,preemptions,threads}, …],"genCpuS":…,"gso":…},
 * `seconds` being the time that target was loaded, sleeps and preemptions the server's voluntary and
 * involuntary context switches over the data phase (`threads`: the same and CPU seconds per thread
 * name), `sent` and `received` datagrams. With `marksS`
 * (seconds into the data phase) each target also gets `marks`: [{atS, received, sent, cpu}], `cpu` being
 * the server's CPU seconds per thread name since before the allocations, summed per thread id between
 * marks (bench/coldstart.ts); the first
 * mark (atS 0) is taken when the allocations and channel bindings are done.
 *
 *   bun bench/lib/loadgen.ts '<json LoadgenConfig>'
 */
import { CmsgInfo, RecvBatch, SendBatch, flushSendBatch, libc, newStats, receiveBatch } from "../../ffi/index.ts";
import { parseEndpoint } from "../../src/net/endpoint.ts";
import { datagramsIn, setGro, setSegmentSize } from "./gso.ts";
import { Shape, type Message, type ShapeOptions } from "./load-shapes.ts";
import { contextSwitches, threadActivity, threadActivityDelta, threadCpu, threadCpuDelta, threadCpuSeconds, type ThreadActivity } from "./proc.ts";
import { PASSWORD, USER } from "./servers.ts";
import { TurnClients, type TurnClientSocket } from "./turn-client.ts";

export interface LoadgenConfig extends ShapeOptions {
  clients: number;
  seconds: number;
  sliceMs: number;
  peerPorts: number[];
  gso: boolean;
  /** The clients' sockets receive with UDP_GRO (bench/lib/gso.ts, setGro). */
  gro?: boolean;
  targets: { mode: "turn" | "raw"; port: number; pid: number }[];
  /** Seconds into the data phase at which to record each server's CPU per thread name and the counts. */
  marksS?: number[];
}

interface Mark {
  atS: number;
  received: number;
  sent: number;
  cpu: Record<string, number>;
}

const cfg = JSON.parse(process.argv[2] ?? "{}") as LoadgenConfig;
/** Each server's threads at the last mark (first: before the first request), and CPU per thread name since then. */
const lastSeen = cfg.targets.map((t) => threadCpu(t.pid));
const cumulative = cfg.targets.map(() => new Map<string, number>());

interface Target {
  tc: TurnClients;
  active: TurnClientSocket[];
  /** fd -> client index in `active`. */
  index: Map<number, number>;
  /** Per client: replies not yet answered (burst), next frame and audio time (call). */
  credit: Int32Array;
  nextVideo: Float64Array;
  nextAudio: Float64Array;
  pid: number;
  cpu0: number;
  switches0: { voluntary: number; involuntary: number };
  threads0: Map<number, ThreadActivity>;
  loadedMs: number;
  sent: number;
  received: number;
  marks: Mark[];
}

const targets: Target[] = cfg.targets.map(({ mode, port, pid }) => {
  const tc = new TurnClients(port, cfg.clients, { username: USER, password: PASSWORD }, 2 << 20);
  let active = tc.clients;
  if (mode === "turn") {
    const allocated = tc.allocate();
    active = [];
    cfg.peerPorts.forEach((peerPort, k) => {
      const mine = allocated.filter((c) => tc.clients.indexOf(c) % cfg.peerPorts.length === k);
      if (mine.length) active.push(...tc.channelBind(mine, parseEndpoint("127.0.0.1", peerPort)));
    });
  }
  const n = active.length;
  const index = new Map(active.map((c, k) => [c.fd, k]));
  return { tc, active, index, credit: new Int32Array(n), nextVideo: new Float64Array(n), nextAudio: new Float64Array(n), pid, cpu0: 0, switches0: { voluntary: 0, involuntary: 0 }, threads0: new Map(), loadedMs: 0, sent: 0, received: 0, marks: [] };
});
if (targets.length === 0) throw new Error("no target");
const shape = new Shape(cfg, cfg.gso);
let gso = cfg.gso;
if (gso) for (const t of targets) for (const c of t.active) gso = setSegmentSize(c.udp, shape.segment) && gso;
if (cfg.gso && !gso) throw new Error("the kernel refused UDP_SEGMENT on the load generator's sockets");
if (cfg.gro) for (const t of targets) for (const c of t.active) if (!setGro(c.udp)) throw new Error("the kernel refused UDP_GRO on the load generator's sockets");
const recv = new RecvBatch(16, cfg.gro ? 65536 : 2048);
const info = new CmsgInfo();
/** Datagrams in the n entries just received (GRO buffers hold several). */
const datagramsOf = (n: number) => {
  if (!cfg.gro) return n;
  let d = 0;
  for (let i = 0; i < n; i++) d += datagramsIn(recv, i, info);
  return d;
};
const send = new SendBatch(64, gso ? 65536 : 2048);
const stats = newStats();
const flush = () => {
  if (send.count) flushSendBatch(send, stats, libc);
};
const seenAt = new Map<number, number>();

function sendMessages(t: Target, c: TurnClientSocket, messages: Message[]): void {
  const server = t.tc.server;
  for (const m of messages) {
    send.push(c.udp, server.address, server.port, m.bytes);
    if (send.full) flush();
    t.sent += m.datagrams;
  }
}

/** Empties the target's sockets of late replies, then sends every client's window or restarts its calls. */
function startSlice(t: Target, now: number): void {
  t.active.forEach((c, k) => {
    while (receiveBatch(c.udp, recv, stats, libc) > 0);
    seenAt.set(c.fd, now);
    t.credit[k] = 0;
    if (cfg.shape === "call") {
      // Clients start spread over one frame interval (and one audio interval), as calls would be.
      t.nextVideo[k] = now + (k / t.active.length) * shape.frameIntervalMs;
      t.nextAudio[k] = now + (k / t.active.length) * shape.audioIntervalMs;
    } else for (let w = 0; w < cfg.window; w++) sendMessages(t, c, shape.unit);
  });
  flush();
}

/** Call shape: sends what is due; a client more than 100 ms late skips ahead rather than bursting. */
function sendDue(t: Target, now: number): void {
  for (let k = 0; k < t.active.length; k++) {
    const c = t.active[k]!;
    if (t.nextVideo[k]! <= now) {
      sendMessages(t, c, shape.unit);
      t.nextVideo[k] = Math.max(t.nextVideo[k]! + shape.frameIntervalMs, now - 100);
    }
    if (t.nextAudio[k]! <= now) {
      sendMessages(t, c, [shape.audio]);
      t.nextAudio[k] = Math.max(t.nextAudio[k]! + shape.audioIntervalMs, now - 100);
    }
  }
  flush();
}

/** Closed loops: the next datagram per reply (window), the next burst per burst of replies (burst). */
function answer(t: Target, c: TurnClientSocket, n: number): void {
  if (cfg.shape === "call") return;
  const k = t.index.get(c.fd)!;
  const credit = t.credit[k]! + n;
  const units = Math.floor(credit / shape.unitDatagrams);
  t.credit[k] = credit - units * shape.unitDatagrams;
  for (let u = 0; u < units; u++) sendMessages(t, c, shape.unit);
}

/**
 * Adds what each live thread used since the last mark, by thread id, to its name's total: a thread
 * that ended since takes only its last interval with it (summing whole-process readings instead would
 * subtract all of its time, and could even go backwards).
 */
function mark(atS: number): void {
  targets.forEach((t, k) => {
    const now = threadCpu(t.pid);
    for (const [name, used] of threadCpuDelta(lastSeen[k]!, now)) cumulative[k]!.set(name, (cumulative[k]!.get(name) ?? 0) + used);
    lastSeen[k] = now;
    t.marks.push({ atS, received: t.received, sent: t.sent, cpu: Object.fromEntries(cumulative[k]!) });
  });
}
const marksS = [...(cfg.marksS ?? [])].sort((a, b) => a - b);
if (marksS.length) mark(0);
let nextMark = 0;

const own0 = process.cpuUsage();
for (const t of targets) {
  t.cpu0 = threadCpuSeconds(t.pid);
  t.switches0 = contextSwitches(t.pid);
  t.threads0 = threadActivity(t.pid);
}
const t0 = performance.now();
const end = t0 + cfg.seconds * 1000;
const sliceMs = targets.length > 1 ? cfg.sliceMs : Infinity;
let current = targets[0]!;
let sliceStart = t0;
let lastTopUp = t0;
let now = t0;
startSlice(current, t0);
while ((now = performance.now()) < end) {
  if (nextMark < marksS.length && now >= t0 + marksS[nextMark]! * 1000) mark(marksS[nextMark++]!);
  if (now - sliceStart >= sliceMs) {
    current.loadedMs += now - sliceStart;
    current = targets[(targets.indexOf(current) + 1) % targets.length]!;
    sliceStart = now;
    startSlice(current, now);
  }
  const ready = current.tc.epoll.wait(cfg.shape === "call" ? 1 : 20);
  for (let e = 0; e < ready; e++) {
    const fd = current.tc.epoll.eventToken(e);
    const client = current.tc.byFd.get(fd)!;
    for (let round = 0; round < 8; round++) {
      const n = receiveBatch(client.udp, recv, stats, libc);
      if (n <= 0) break;
      const datagrams = datagramsOf(n);
      current.received += datagrams;
      if (current.index.has(fd)) answer(current, client, datagrams);
      if (n < 16) break;
    }
    seenAt.set(fd, now);
  }
  flush();
  if (cfg.shape === "call") sendDue(current, performance.now());
  else if (now - lastTopUp > 200) {
    lastTopUp = now;
    current.active.forEach((c, k) => {
      if (now - (seenAt.get(c.fd) ?? 0) <= 200) return;
      current.credit[k] = 0;
      for (let w = 0; w < cfg.window; w++) sendMessages(current, c, shape.unit);
    });
    flush();
  }
}
current.loadedMs += performance.now() - sliceStart;
const results = targets.map((t) => {
  const switches = contextSwitches(t.pid);
  return {
    received: t.received, sent: t.sent, seconds: t.loadedMs / 1000, serverCpuS: threadCpuSeconds(t.pid) - t.cpu0, setupOk: t.active.length,
    sleeps: switches.voluntary - t.switches0.voluntary, preemptions: switches.involuntary - t.switches0.involuntary,
    threads: threadActivityDelta(t.threads0, threadActivity(t.pid)),
    ...(marksS.length ? { marks: t.marks } : {}),
  };
});
const own = process.cpuUsage(own0);
for (const t of targets) t.tc.close();
console.log(JSON.stringify({ targets: results, genCpuS: (own.user + own.system) / 1e6, gso }));
