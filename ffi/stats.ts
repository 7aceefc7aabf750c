/**
 * Batch receive/send counters, one block per engine. Backed by a SharedArrayBuffer when the main thread
 * reads them (stats line, metrics); plain Float64 slots so bumping one is a store, not a message.
 */
export const STAT = {
  calls: 0,
  packets: 1,
  wouldblock: 2,
  unavailable: 3,
  noBuffer: 4,
  hist1: 5,
  hist2: 6,
  hist3to4: 7,
  hist5to8: 8,
  hist9to16: 9,
  sendCalls: 10,
  sendPackets: 11,
  sendErrors: 12,
  sendUnavailable: 13,
} as const;
export const STAT_COUNT = 14;

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
  if (n === 1) stats[STAT.hist1]!++;
  else if (n === 2) stats[STAT.hist2]!++;
  else if (n <= 4) stats[STAT.hist3to4]!++;
  else if (n <= 8) stats[STAT.hist5to8]!++;
  else stats[STAT.hist9to16]!++;
}

/** coturn's line: `udp-recvmmsg stats: calls=… packets=… avg_batch=… wouldblock=… …`. */
export function formatRecvmmsgStats(s: Float64Array): string {
  const calls = s[STAT.calls]!;
  const packets = s[STAT.packets]!;
  const avg = calls > 0 ? packets / calls : 0;
  return (
    `udp-recvmmsg stats: calls=${calls} packets=${packets} avg_batch=${avg.toFixed(2)}` +
    ` wouldblock=${s[STAT.wouldblock]} unavailable=${s[STAT.unavailable]} no_buffer=${s[STAT.noBuffer]}` +
    ` hist_1=${s[STAT.hist1]} hist_2=${s[STAT.hist2]} hist_3_4=${s[STAT.hist3to4]}` +
    ` hist_5_8=${s[STAT.hist5to8]} hist_9_16=${s[STAT.hist9to16]}`
  );
}
