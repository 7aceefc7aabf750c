/**
 * A min-heap of deadlines with lazy cancellation: rescheduling a target bumps its `timerSeq`, which
 * turns every earlier entry for it into a tombstone that is skipped when it reaches the top.
 *
 * Tombstones are also swept when the heap has doubled since the last sweep: a deleted allocation's entry
 * would otherwise sit in the heap, holding the whole Allocation, until its original deadline (up to
 * --max-allocate-lifetime), so allocate/refresh(0) cycles grew memory with their rate times the lifetime.
 */
import type { Millis } from "./api.ts";

export interface Timed {
  timerSeq: number;
}

interface Entry<T> {
  at: Millis;
  seq: number;
  target: T;
}

export class TimerQueue<T extends Timed> {
  private heap: Entry<T>[] = [];
  /** The heap is swept of tombstones when it reaches this size. */
  private sweepAt = 64;

  get size(): number {
    return this.heap.length;
  }

  schedule(target: T, at: Millis): void {
    const entry = { at, seq: ++target.timerSeq, target };
    if (this.heap.length >= this.sweepAt) this.sweep();
    const h = this.heap;
    h.push(entry);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.at <= at) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = entry;
  }

  cancel(target: T): void {
    target.timerSeq++;
  }

  /** Earliest live deadline, dropping tombstones on the way. */
  peek(): Millis | undefined {
    this.dropTombstones();
    return this.heap[0]?.at;
  }

  /** Removes and returns the earliest target due at `now`, or undefined. */
  popDue(now: Millis): T | undefined {
    this.dropTombstones();
    const top = this.heap[0];
    if (top === undefined || top.at > now) return undefined;
    this.pop();
    top.target.timerSeq++;
    return top.target;
  }

  clear(): void {
    this.heap.length = 0;
  }

  /** Keeps live entries only; sorted by deadline, which is a valid min-heap. Amortized O(log n) per schedule. */
  private sweep(): void {
    this.heap = this.heap.filter((e) => e.seq === e.target.timerSeq).sort((a, b) => a.at - b.at);
    this.sweepAt = Math.max(64, this.heap.length * 2);
  }

  private dropTombstones(): void {
    const h = this.heap;
    while (h.length > 0 && h[0]!.seq !== h[0]!.target.timerSeq) this.pop();
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    let i = 0;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && h[r]!.at < h[l]!.at ? r : l;
      if (h[c]!.at >= last.at) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
  }
}
