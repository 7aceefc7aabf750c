/**
 * The operator's requests to an engine (`bunturn admin sessions`, `bunturn admin kill`). An engine's
 * Worker runs a synchronous loop blocked in epoll_wait, so it never receives postMessage; the request
 * goes through shared memory instead: the main thread writes the op and its argument, then bumps the
 * sequence number and writes the engine's eventfd. The engine looks at the sequence number once per
 * wake (one Atomics.load), does the work between batches, and answers with postMessage, which a
 * Worker can always send. The main thread asks one engine at a time (RelayServer serialises requests).
 */
import type { SessionInfo } from "../turn/sessions.ts";
import type { EngineEvent } from "./engine-init.ts";

/** Slots of an engine's admin cells. */
export const ADMIN = { seq: 0, op: 1, arg: 2 } as const;
export const ADMIN_CELLS = 3;
export const ADMIN_OP = { sessions: 1, end: 2 } as const;

/** One engine's cells, in a SharedArrayBuffer the main thread keeps too. */
export function createAdminCells(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(ADMIN_CELLS * 4));
}

/** The main thread's side: posts a request; its sequence number, for matching the answer. */
export function postAdminRequest(cells: Int32Array, op: number, arg: number): number {
  Atomics.store(cells, ADMIN.op, op);
  Atomics.store(cells, ADMIN.arg, arg);
  return Atomics.add(cells, ADMIN.seq, 1) + 1;
}

/** A live allocation as the operator sees it: the core's description plus the engine it lives in. */
export type Session = SessionInfo & { id: string; engine: number };

/** How long an engine has to answer: it looks between batches, so a live one answers in milliseconds. */
const ANSWER_TIMEOUT_MS = 2000;

/**
 * The main thread's side for all engines: asks, waits for the matching answer, one request at a time
 * (the cells hold one request per engine).
 */
export class EngineAdmin {
  readonly cells: Int32Array[];
  private readonly waiters = new Map<string, (event: EngineEvent) => void>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(engines: number, private readonly wake: (index: number) => void, private readonly isLive: (index: number) => boolean) {
    this.cells = Array.from({ length: engines }, createAdminCells);
  }

  /** An engine's answer (a "sessions" or "ended" event) arrived. */
  answer(event: EngineEvent): void {
    if (event.kind !== "sessions" && event.kind !== "ended") return;
    const key = `${event.index}:${event.seq}`;
    this.waiters.get(key)?.(event);
    this.waiters.delete(key);
  }

  /** Every live allocation of every engine. */
  sessions(): Promise<Session[]> {
    return this.serialised(async () => {
      const all: Session[] = [];
      for (let index = 0; index < this.cells.length; index++) {
        if (!this.isLive(index)) continue;
        const event = await this.ask(index, ADMIN_OP.sessions, 0);
        if (event?.kind !== "sessions") throw new Error(`engine ${index} did not answer`);
        for (const s of event.sessions) all.push({ id: `${index}-${s.serial}`, engine: index, ...s });
      }
      return all;
    });
  }

  /** Ends session `id` ("ENGINE-SERIAL"); false when there is no such session. */
  end(id: string): Promise<boolean> {
    const match = /^(\d{1,4})-(\d{1,9})$/.exec(id);
    if (!match) return Promise.resolve(false);
    const index = Number(match[1]);
    const serial = Number(match[2]);
    if (index >= this.cells.length || !this.isLive(index)) return Promise.resolve(false);
    return this.serialised(async () => {
      const event = await this.ask(index, ADMIN_OP.end, serial);
      if (event?.kind !== "ended") throw new Error(`engine ${index} did not answer`);
      return event.found;
    });
  }

  private serialised<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => {});
    return next;
  }

  private ask(index: number, op: number, arg: number): Promise<EngineEvent | undefined> {
    const seq = postAdminRequest(this.cells[index]!, op, arg);
    const key = `${index}:${seq}`;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(key);
        resolve(undefined);
      }, ANSWER_TIMEOUT_MS);
      this.waiters.set(key, (event) => {
        clearTimeout(timer);
        resolve(event);
      });
      this.wake(index);
    });
  }
}
