/**
 * Watches, from the main thread, whether the process can still open descriptors. Bun's own accept loop
 * (Bun.listen, used by the TLS front end) keeps a listener with a pending connection in epoll when
 * accept fails with EMFILE/ENFILE, so the main thread would spin at 100 % CPU until descriptors come
 * back. Bun has no way to pause a listener, so the front end closes its listening sockets while this
 * watch says "exhausted" and opens them again once a reserve of descriptors is free (hysteresis: not
 * the moment a single one is).
 */
import { closeSync, openSync } from "node:fs";

export const WATCH_INTERVAL_MS = 100;
/** Descriptors that must be free before listening again. */
export const RESERVE = 32;

/** Opens up to `count` descriptors (then closes them); how many could be opened. */
function freeDescriptors(count: number): number {
  const opened: number[] = [];
  try {
    for (let i = 0; i < count; i++) opened.push(openSync("/dev/null", "r"));
  } catch {
    // EMFILE or ENFILE: what was opened so far is the answer
  } finally {
    for (const fd of opened) closeSync(fd);
  }
  return opened.length;
}

export class DescriptorWatch {
  private timer: ReturnType<typeof setInterval> | undefined;
  private exhausted = false;

  /** `onChange(true)`: out of descriptors; `onChange(false)`: a reserve is free again. */
  constructor(private readonly onChange: (exhausted: boolean) => void, private readonly intervalMs = WATCH_INTERVAL_MS) {}

  start(): void {
    this.timer = setInterval(() => this.check(), this.intervalMs);
    this.timer.unref();
  }

  get isExhausted(): boolean {
    return this.exhausted;
  }

  check(): void {
    if (!this.exhausted && freeDescriptors(1) === 0) {
      this.exhausted = true;
      this.onChange(true);
    } else if (this.exhausted && freeDescriptors(RESERVE) === RESERVE) {
      this.exhausted = false;
      this.onChange(false);
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
