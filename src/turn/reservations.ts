/**
 * Ports reserved for a later Allocate (RFC 8656 §7.2 step 4, EVEN-PORT's R bit), as the core keeps them:
 * each RESERVATION-TOKEN handed out is held for about 30 seconds on the server's one timer queue, then
 * the port (RelayAllocator) and its quota unit (AllocationQuota) are given back, unless an Allocate
 * redeemed the token first. Apart from ./state.ts because a reservation belongs to no allocation.
 */
import type { AllocationQuota, Millis, RelayAllocator } from "./api.ts";
import type { TimerQueue } from "./timer-queue.ts";

/** RFC 8656 §7.2 step 4: a reserved port is held for about 30 seconds. */
export const RESERVATION_MS = 30_000;

export class Reservation {
  timerSeq = 0;
  constructor(readonly token: bigint, readonly expiresAt: Millis) {}
}

export class Reservations {
  private readonly held = new Map<bigint, Reservation>();

  constructor(
    private readonly timers: Pick<TimerQueue<Reservation>, "schedule" | "cancel">,
    private readonly relays: RelayAllocator,
    private readonly quota: AllocationQuota | undefined,
  ) {}

  hold(token: bigint, now: Millis): void {
    const r = new Reservation(token, now + RESERVATION_MS);
    this.held.set(token, r);
    this.timers.schedule(r, r.expiresAt);
  }

  /**
   * A RESERVATION-TOKEN was redeemed by open(): the allocator now owns the port and the redeeming
   * allocation the quota unit (AllocationQuota.acquireReserved), nothing to release.
   */
  forget(token: bigint): void {
    const r = this.held.get(token);
    if (r === undefined) return;
    this.held.delete(token);
    this.timers.cancel(r);
  }

  /** Its timer fired: nobody redeemed it, the port and the quota unit go back. */
  expired(r: Reservation): void {
    this.held.delete(r.token);
    this.giveBack(r.token);
  }

  /** Shutdown: every reservation still held goes back. */
  releaseAll(): void {
    for (const token of [...this.held.keys()]) {
      this.forget(token);
      this.giveBack(token);
    }
  }

  private giveBack(token: bigint): void {
    this.relays.releaseReservation?.(token);
    this.quota?.releaseReservation?.(token);
  }
}
