/**
 * A count of what an engine's Worker keeps alive, taken on request: the main thread asks through shared
 * memory and the engine's wake eventfd, and the engine, between two loop turns, runs a full garbage
 * collection of its own heap and writes what survived (live cells, their bytes, and the bytes of
 * ArrayBuffers and other memory outside the cells). Process RSS cannot say this: it holds both engines'
 * heaps at whatever size their last collections left them, so it moves by megabytes without any leak,
 * whereas after a full collection a working set reads back the same figures each time and a leak grows
 * them by what it keeps per allocation. For diagnostics and leak tests; it stops the engine for the
 * collection (milliseconds for a small heap), so nothing asks for it on the hot path.
 */
import { heapStats } from "bun:jsc";

/** What survived a full collection in one engine's Worker. */
export interface HeapCensus {
  /** Live cells (objects, strings, structures...). */
  objects: number;
  /** Bytes of the live cells. */
  heapBytes: number;
  /** Memory owned by live cells outside the heap: ArrayBuffer contents, mostly. */
  extraBytes: number;
}

/** One engine's request/answer cells, shared between the main thread and its Worker. */
export interface HeapCensusShared {
  /** [0]: census requested (a sequence number), [1]: census answered (the number it answers). */
  sequence: Int32Array;
  /** The last answer: objects, heap bytes, extra bytes. */
  figures: Float64Array;
}

export function createHeapCensusShared(): HeapCensusShared {
  return { sequence: new Int32Array(new SharedArrayBuffer(8)), figures: new Float64Array(new SharedArrayBuffer(24)) };
}

/** Engine side, in the turns the engine was signalled (and once a second): answers a pending request, else costs two loads. */
export function answerHeapCensus(shared: HeapCensusShared): void {
  const requested = Atomics.load(shared.sequence, 0);
  if (requested === Atomics.load(shared.sequence, 1)) return;
  Bun.gc(true);
  const stats = heapStats();
  shared.figures[0] = stats.objectCount;
  shared.figures[1] = stats.heapSize;
  shared.figures[2] = stats.extraMemorySize;
  Atomics.store(shared.sequence, 1, requested); // published after the figures
}

/**
 * Main-thread side: asks one engine for a census and waits for its answer. `wake` interrupts the
 * engine's epoll_wait (its eventfd), so the answer does not wait for the engine's next timer.
 */
export async function requestHeapCensus(shared: HeapCensusShared, wake: () => void, timeoutMs = 5000): Promise<HeapCensus> {
  const ticket = Atomics.add(shared.sequence, 0, 1) + 1;
  wake();
  const deadline = Date.now() + timeoutMs;
  // At or past the ticket: a later request may have been answered by the same collection.
  while (Atomics.load(shared.sequence, 1) - ticket < 0) {
    if (Date.now() > deadline) throw new Error("an engine did not answer the heap census in time");
    await Bun.sleep(2);
  }
  return { objects: shared.figures[0]!, heapBytes: shared.figures[1]!, extraBytes: shared.figures[2]! };
}
