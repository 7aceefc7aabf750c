/**
 * The engine Workers' lives, seen from the main thread: start one per relay thread and wait until each
 * is ready, notice one that dies, wake one through its eventfd, and wait for each to close its fds at
 * stop. What the engines report besides that (log lines, admin answers, usage events) goes to `onEvent`.
 */
import { EventFd } from "../../ffi/index.ts";
import type { EngineEvent, EngineInit } from "./engine-init.ts";
import { StartupError } from "./startup-checks.ts";
import type { Logger } from "../logger.ts";

/** What the process does when an engine dies; see RelayServer.start. */
export interface RelayHooks {
  /**
   * An engine Worker died after start (an uncaught exception, or it exited). Its sockets stay open in
   * the process (fds are per process, not per thread) and its allocations are gone with its heap, so the
   * server cannot go on half-served: the caller stops and exits non-zero (src/cli/main.ts).
   */
  onEngineDeath?(message: string): void;
  /** The engine Worker's module; tests substitute one that dies on purpose. */
  engineEntry?: string;
}

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

export class EngineWorkers {
  private readonly workers: Worker[] = [];
  /** Engines whose Worker died: nothing to wait for at stop. */
  private readonly dead = new Set<number>();
  private readonly wakeFds: number[] = [];
  private stopping = false;

  constructor(
    private readonly hooks: RelayHooks,
    private readonly logger: Logger,
    /** Events other than the lifecycle's own (ready, failed, stopped). */
    private readonly onEvent: (event: EngineEvent) => void,
  ) {}

  /** Starts `count` engines; resolves with engine 0's listener labels once every engine is ready. */
  start(count: number, initFor: (index: number) => EngineInit): Promise<string[]> {
    let pending = count;
    const listeners: string[] = [];
    return new Promise<string[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new StartupError("relay engines did not start within 10 s")), START_TIMEOUT_MS);
      for (let index = 0; index < count; index++) {
        const worker = new Worker(this.hooks.engineEntry ?? workerEntry(), { workerData: initFor(index) } as WorkerOptions);
        this.workers.push(worker);
        worker.addEventListener("message", (event: MessageEvent<EngineEvent>) => {
          const e = event.data;
          switch (e.kind) {
            case "ready":
              this.wakeFds[e.index] = e.wakeFd;
              if (e.index === 0) listeners.push(...e.listeners);
              if (--pending === 0) {
                clearTimeout(timer);
                resolve(listeners);
              }
              break;
            case "failed":
              clearTimeout(timer);
              reject(new StartupError(e.message));
              break;
            case "stopped":
              break;
            default:
              this.onEvent(e);
          }
        });
        // An uncaught exception ends the Worker: 'error' says why, then 'close' says it is gone.
        let cause = "";
        worker.addEventListener("error", (event) => {
          const e = event as ErrorEvent;
          // Bun's message carries a source excerpt; the line "error: <message>" is the one that matters.
          const line = e.message.split("\n").find((l) => l.startsWith("error: "));
          cause = e.error instanceof Error ? e.error.message : line ? line.slice(7) : e.message.split("\n")[0]!;
        });
        worker.addEventListener("close", (event) => {
          if (this.stopping) return;
          this.dead.add(index);
          const code = (event as CloseEvent).code;
          const message = `engine ${index} died (${cause || `exit code ${code}`})`;
          if (pending > 0) {
            clearTimeout(timer);
            reject(new StartupError(message));
          } else if (this.hooks.onEngineDeath) this.hooks.onEngineDeath(message);
          else this.logger.error(message);
        });
      }
    });
  }

  /** Wakes engine `index` from epoll_wait (its eventfd), once it has said it is ready. */
  wake(index: number): void {
    const fd = this.wakeFds[index];
    if (fd !== undefined) EventFd.signal(fd);
  }

  /** Whether engine `index` can answer a request: ready, alive, and not being stopped. */
  serving(index: number): boolean {
    return !this.dead.has(index) && this.wakeFds[index] !== undefined && !this.stopping;
  }

  /**
   * Wakes every engine (the caller has raised the stop flag), waits until each has closed its sockets
   * or the timeout passes, then ends the Workers.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    const stopped = this.workers.map(
      (worker, index) =>
        new Promise<void>((resolve) => {
          if (this.dead.has(index)) return resolve();
          const timer = setTimeout(resolve, STOP_TIMEOUT_MS);
          worker.addEventListener("message", (event: MessageEvent<EngineEvent>) => {
            if (event.data.kind === "stopped" || event.data.kind === "failed") {
              clearTimeout(timer);
              resolve();
            }
          });
        }),
    );
    for (const fd of this.wakeFds) if (fd !== undefined) EventFd.signal(fd);
    await Promise.all(stopped);
    for (const worker of this.workers) worker.terminate();
  }
}

/**
 * Where the engine Worker's code is. Inside a `bun build --compile` binary every module reports the
 * binary's own URL, and extra entry points are addressed relative to the bundle's root (src/), which
 * is how `npm run build` lists src/engine/worker.ts.
 */
function workerEntry(): string {
  return import.meta.url.includes("/$bunfs/") ? "./engine/worker.ts" : new URL("./worker.ts", import.meta.url).href;
}
