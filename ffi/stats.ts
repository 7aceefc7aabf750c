/**
 * Batch receive/send statistics, one block per engine: ffi's own small table (names, kinds, what they
 * count, and the key in coturn's `udp-recvmmsg stats:` line), laid out in this order from slot 0. Backed
 * by a SharedArrayBuffer when the main thread reads them (stats line, metrics); plain Float64 slots so
 * bumping one is a store, not a message. An engine puts these slots first in its counter block.
 */
export interface BatchStatSpec {
  readonly kind: "counter" | "gauge";
  readonly help: string;
  /** Its key in coturn's stats line; absent: not in the line. */
  readonly line?: string;
}

export const BATCH_STATS = {
  calls: { kind: "counter", line: "calls", help: "recvmmsg system calls (including those that found nothing: wouldblock)" },
  packets: { kind: "counter", line: "packets", help: "Datagrams received through recvmmsg" },
  wouldblock: { kind: "counter", line: "wouldblock", help: "recvmmsg calls that returned EAGAIN" },
  unavailable: { kind: "counter", line: "unavailable", help: "recvmmsg refused by the kernel (ENOSYS, EINVAL, EOPNOTSUPP)" },
  noBuffer: { kind: "counter", line: "no_buffer", help: "recvmmsg calls that failed with ENOBUFS or ENOMEM" },
  hist1: { kind: "counter", line: "hist_1", help: "recvmmsg calls that returned 1 datagram" },
  hist2: { kind: "counter", line: "hist_2", help: "recvmmsg calls that returned 2 datagrams" },
  hist3to4: { kind: "counter", line: "hist_3_4", help: "recvmmsg calls that returned 3 or 4 datagrams" },
  hist5to8: { kind: "counter", line: "hist_5_8", help: "recvmmsg calls that returned 5 to 8 datagrams" },
  hist9to16: { kind: "counter", line: "hist_9_16", help: "recvmmsg calls that returned 9 to 16 datagrams" },
  sendCalls: { kind: "counter", help: "Send system calls (sendmmsg, or sendmsg for a run of one)" },
  sendPackets: { kind: "counter", help: "Datagrams sent by those calls" },
  sendErrors: { kind: "counter", help: "Datagrams the kernel refused to send" },
  sendUnavailable: { kind: "counter", help: "sendmmsg refused by the kernel (switched to sendmsg)" },
  sendRefused: { kind: "counter", help: "Datagrams refused for themselves (e.g. destination port 0, EMSGSIZE, EACCES): dropped, batching stays on; part of the send errors" },
  segments: { kind: "counter", line: "segments", help: "Datagrams received, each segment of a UDP_GRO buffer counted (packets counts the buffer once)" },
  groBuffers: { kind: "counter", line: "gro_buffers", help: "Received UDP_GRO buffers that held more than one datagram" },
  gsoSends: { kind: "counter", line: "gso_sends", help: "Send calls that carried a run of datagrams as one UDP_SEGMENT message (part of the send calls)" },
  gsoSegments: { kind: "counter", line: "gso_segments", help: "Datagrams sent within UDP_SEGMENT messages (part of the datagrams sent)" },
  gsoRefused: { kind: "counter", help: "UDP_SEGMENT sends the kernel refused (EIO, EINVAL): that run was sent one by one" },
  gsoDisabled: { kind: "counter", help: "Sockets whose GSO was switched off after repeated refusals" },
} as const satisfies Record<string, BatchStatSpec>;

export type BatchStatName = keyof typeof BATCH_STATS;

/** Slot of each statistic, in table order (a plain object of constants: `stats[STAT.calls]++` is one store). */
export const STAT = slotsInOrder(BATCH_STATS);
export const STAT_COUNT = Object.keys(BATCH_STATS).length;

/** `{ name: index }` for the keys of `table` in order, starting at `first`. */
export function slotsInOrder<T extends object>(table: T, first = 0): { readonly [Name in keyof T]: number } {
  const slots = {} as { [Name in keyof T]: number };
  let slot = first;
  for (const name of Object.keys(table) as Array<keyof T>) slots[name] = slot++;
  return slots;
}

export function newStats(shared?: SharedArrayBuffer, offsetSlots = 0): Float64Array {
  return shared ? new Float64Array(shared, offsetSlots * 8, STAT_COUNT) : new Float64Array(STAT_COUNT);
}

/** Records one recvmmsg call that returned `n` datagrams (n = 0: EAGAIN). */
export function recordBatch(stats: Float64Array, n: number): void {
  stats[STAT.calls]!++;
  if (n === 0) {
    stats[STAT.wouldblock]!++;
    return;
  }
  stats[STAT.packets]! += n;
  stats[STAT.segments]! += n;
  if (n === 1) stats[STAT.hist1]!++;
  else if (n === 2) stats[STAT.hist2]!++;
  else if (n <= 4) stats[STAT.hist3to4]!++;
  else if (n <= 8) stats[STAT.hist5to8]!++;
  else stats[STAT.hist9to16]!++;
}

/**
 * A received buffer was cut into `segments` datagrams (UDP_GRO): recordBatch counted it as one segment,
 * this adds the others.
 */
export function recordGroBuffer(stats: Float64Array, segments: number): void {
  stats[STAT.groBuffers]!++;
  stats[STAT.segments]! += segments - 1;
}

/** coturn's line: `udp-recvmmsg stats: calls=… packets=… avg_batch=… wouldblock=… …`, from the table's `line` keys. */
export function formatRecvmmsgStats(s: Float64Array): string {
  const parts: string[] = [];
  for (const name of Object.keys(BATCH_STATS) as BatchStatName[]) {
    const spec: BatchStatSpec = BATCH_STATS[name];
    if (spec.line === undefined) continue;
    parts.push(`${spec.line}=${s[STAT[name]]}`);
    if (name === "packets") {
      const calls = s[STAT.calls]!;
      parts.push(`avg_batch=${(calls > 0 ? s[STAT.packets]! / calls : 0).toFixed(2)}`);
    } else if (name === "segments") {
      const calls = s[STAT.calls]!;
      parts.push(`avg_segments=${(calls > 0 ? s[STAT.segments]! / calls : 0).toFixed(2)}`);
    } else if (name === "gsoSegments") {
      const sends = s[STAT.sendCalls]!;
      parts.push(`avg_send_segments=${(sends > 0 ? s[STAT.sendPackets]! / sends : 0).toFixed(2)}`);
    }
  }
  return `udp-recvmmsg stats: ${parts.join(" ")}`;
}
