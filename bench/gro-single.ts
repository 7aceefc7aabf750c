/**
 * What UDP_GRO and UDP_SEGMENT cost the kernel per datagram when no train ever forms (one datagram in
 * flight, issue 15's `--window 1` case): two loopback sockets bounce one datagram back and forth in one
 * thread (sendmsg, then recvmmsg on the other socket, as the engine does: on loopback the send has
 * already delivered it), through ffi's own socket and batch code. Variants differ only in the options
 * their sockets were opened with (`off`; `gro`: UDP_GRO; `gso`: UDP_SEGMENT probed, size 0; `both`),
 * each with its own socket pair; their blocks of --rounds round trips are interleaved, the order rotated
 * per block, so the machine's drift cancels within a block. Reports CPU ns per hop (send + receive of
 * one datagram: user and system time of this process, which does nothing else) per variant, and the
 * per-block ratios to `off` (median, quartiles, extremes).
 */
import {
  RecvBatch, SendBatch, UdpCapabilities, UdpSocketState, boundPort, flushSendBatch, libc, newStats, receiveBatch,
} from "../ffi/index.ts";
import { describeArgs, parseArgs, type ArgSpec } from "./lib/args.ts";
import { emit, median, round } from "./lib/stats.ts";

export const spec = {
  rounds: { default: 20000, help: "round trips per block (two hops each)" },
  blocks: { default: 30, help: "blocks per variant, interleaved" },
  size: { default: 100, help: "datagram bytes" },
  variants: { default: "off,gro,gso,both", help: "comma-separated: off, gro, gso, both" },
} satisfies ArgSpec;

export const usage = `bun run bench gro-single [options]\n${describeArgs(spec)}`;

const LOOPBACK = new Uint8Array([127, 0, 0, 1]);

interface Pair {
  name: string;
  a: UdpSocketState;
  b: UdpSocketState;
  portA: number;
  portB: number;
  nsPerHop: number[];
}

function openPair(name: string, caps: UdpCapabilities): Pair {
  const gro = name === "gro" || name === "both";
  const gso = name === "gso" || name === "both";
  const open = () => UdpSocketState.open({ family: 4, address: LOOPBACK, port: 0, receiveTtlTos: true, stickyTtlTos: true, gro, gso }, caps);
  const a = open();
  const b = open();
  if (gro && (a.groSegments === 1 || b.groSegments === 1)) throw new Error("the kernel refused UDP_GRO");
  if (gso && (a.maxGsoSegments === 1 || b.maxGsoSegments === 1)) throw new Error("the kernel refused UDP_SEGMENT");
  return { name, a, b, portA: boundPort(a.fd), portB: boundPort(b.fd), nsPerHop: [] };
}

function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

export async function main(argv: string[]): Promise<void> {
  const o = parseArgs(argv, spec);
  const caps = new UdpCapabilities({ recvmmsg: true, sendmmsg: true });
  const pairs = o.variants.split(",").filter(Boolean).map((v) => openPair(v, caps));
  const recv = new RecvBatch(16, 65536, 8);
  const send = new SendBatch(4, 2048);
  send.borrowFrom(recv.payload, recv.payloadAddress);
  const stats = newStats();
  const payload = new Uint8Array(o.size).fill(0x5a);
  /** One round trip on pair p: a -> b, b echoes the bytes it received (zero-copy) -> a. */
  const roundTrip = (p: Pair): void => {
    send.push(p.a, LOOPBACK, p.portB, payload);
    flushSendBatch(send, stats, libc);
    if (receiveBatch(p.b, recv, stats, libc) !== 1) throw new Error("lost a datagram on loopback");
    send.pushRange(p.b, LOOPBACK, p.portA, recv.payload, recv.datagramOffset(0), recv.length(0));
    flushSendBatch(send, stats, libc);
    if (receiveBatch(p.a, recv, stats, libc) !== 1) throw new Error("lost a datagram on loopback");
  };
  for (const p of pairs) for (let k = 0; k < o.rounds; k++) roundTrip(p); // JIT and caches warm, not counted
  for (let block = 0; block < o.blocks; block++) {
    for (let k = 0; k < pairs.length; k++) {
      const p = pairs[(block + k) % pairs.length]!;
      const t0 = cpuNs();
      for (let r = 0; r < o.rounds; r++) roundTrip(p);
      p.nsPerHop.push((cpuNs() - t0) / (2 * o.rounds));
    }
  }
  for (const p of pairs) {
    p.a.close(libc);
    p.b.close(libc);
  }
  const off = pairs.find((p) => p.name === "off");
  const summary: Record<string, unknown> = { bench: "gro-single", summary: true, size: o.size, rounds: o.rounds, blocks: o.blocks };
  for (const p of pairs) {
    const entry: Record<string, unknown> = { nsPerHop: round(median(p.nsPerHop), 1) };
    if (off && p !== off) {
      const ratios = p.nsPerHop.map((ns, k) => ns / off.nsPerHop[k]!).sort((x, y) => x - y);
      const q = (f: number) => round(ratios[Math.min(ratios.length - 1, Math.floor(f * ratios.length))]!, 3);
      entry.pairedToOff = round(median(ratios), 3);
      entry.quartiles = [q(0.25), q(0.75)];
      entry.range = [round(ratios[0]!, 3), round(ratios[ratios.length - 1]!, 3)];
      entry.belowOff = `${ratios.filter((r) => r < 1).length}/${ratios.length}`;
    }
    summary[p.name] = entry;
  }
  emit(summary);
}
