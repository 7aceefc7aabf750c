/**
 * The engine's side of the operator's channel (./admin-channel.ts has the protocol and the main
 * thread's side): one Atomics.load per wake tells whether a request came, and the answer goes back by
 * postMessage between batches, never in the middle of one.
 */
import { isConnection, type ConnectionId } from "../turn/api.ts";
import { ADMIN, ADMIN_OP } from "./admin-channel.ts";
import type { EngineEvent, TurnCore } from "./engine-init.ts";

export class AdminInbox {
  /** The last request answered (its sequence number). */
  private seen = 0;

  constructor(
    /** This engine's admin cells; absent when the engine runs without a main thread (benches). */
    private readonly cells: Int32Array | undefined,
    private readonly index: number,
    private readonly emit: (event: EngineEvent) => void,
  ) {}

  /** Whether the main thread has posted a request not answered yet. */
  get pending(): boolean {
    return this.cells !== undefined && Atomics.load(this.cells, ADMIN.seq) !== this.seen;
  }

  /** Answers the request: the live sessions, or one ended (its TCP connection closed too). */
  answer(
    core: Pick<TurnCore, "sessions" | "endSession">,
    closeConnection: (id: ConnectionId) => void,
    now: number,
    onError: (error: unknown) => void,
  ): void {
    const cells = this.cells!;
    const seq = Atomics.load(cells, ADMIN.seq);
    this.seen = seq;
    const op = Atomics.load(cells, ADMIN.op);
    const index = this.index;
    try {
      if (op === ADMIN_OP.sessions) {
        this.emit({ kind: "sessions", index, seq, sessions: core.sessions?.(now) ?? [] });
      } else if (op === ADMIN_OP.end) {
        const path = core.endSession?.(Atomics.load(cells, ADMIN.arg));
        if (path !== undefined && isConnection(path)) closeConnection(path);
        this.emit({ kind: "ended", index, seq, found: path !== undefined });
      }
    } catch (error) {
      onError(error);
    }
  }
}
