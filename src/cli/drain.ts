/**
 * coturn's drain (SIGUSR1, --drain-min-allocations): the engines stop taking new allocations (they are
 * redirected to an alternate server or refused, src/engine/admission.ts), live ones go on, and the
 * process stops cleanly (exit 0) once the allocations fall to the minimum, as coturn's listener loop does.
 */
import type { Logger } from "../logger.ts";

export interface Drainable {
  drain(): void;
  readonly draining: boolean;
  readonly allocations: number;
}

/** How often the allocation count is looked at, and how often progress is logged. */
const POLL_MS = 200;
const PROGRESS_MS = 10_000;

export class Drain {
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly server: Drainable,
    private readonly minAllocations: number,
    private readonly logger: Pick<Logger, "info">,
    /** Called once when the drain is complete: stop and exit 0. */
    private readonly done: (reason: string) => void,
  ) {}

  begin(signal: string): void {
    if (this.server.draining) {
      this.logger.info(`${signal}: already draining (${this.server.allocations} allocation(s) left, exiting at ${this.minAllocations} or fewer)`);
      return;
    }
    this.server.drain();
    this.logger.info(
      `${signal}: draining: new allocations are redirected or refused, live ones go on; ` +
        `exiting once ${this.minAllocations} or fewer remain (${this.server.allocations} now)`,
    );
    let lastProgress = Date.now();
    let lastCount = this.server.allocations;
    this.timer = setInterval(() => {
      const left = this.server.allocations;
      if (left <= this.minAllocations) {
        clearInterval(this.timer);
        this.done(`drain complete (${left} allocation(s) left, threshold ${this.minAllocations})`);
        return;
      }
      if (left !== lastCount && Date.now() - lastProgress >= PROGRESS_MS) {
        this.logger.info(`draining: ${left} allocation(s) left`);
        lastProgress = Date.now();
        lastCount = left;
      }
    }, POLL_MS);
  }

  cancel(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }
}
