/**
 * Parks a listening socket that the process cannot accept on (EMFILE, ENFILE, ENOBUFS, ENOMEM): it leaves
 * the epoll set for a short while and comes back when a timer fires, as nginx and coturn do. Without
 * this a level-triggered listener with a pending connection stays readable, accept keeps failing, and the
 * engine spins at 100 % CPU until descriptors come back. Pending connections wait in the kernel's accept
 * queue meanwhile and are served once descriptors are free again.
 */
import { EMFILE, ENOBUFS, ENOMEM, EPOLLIN, type Epoll } from "../../ffi/index.ts";
import { TimerFd } from "../../ffi/timerfd.ts";

export const PARK_MS = 100;

/** ENFILE: the system-wide table is full (not in ffi/errno.ts). */
const ENFILE = 23;
const NAMES: Record<number, string> = { [EMFILE]: "EMFILE", [ENFILE]: "ENFILE", [ENOBUFS]: "ENOBUFS", [ENOMEM]: "ENOMEM" };

/** Whether accept failed for want of descriptors or memory (`errno` positive): the listener is to be parked. */
export function acceptWantsParking(errno: number): boolean {
  return NAMES[errno] !== undefined;
}

export class ListenerPark {
  /** Made at start: at EMFILE there would be no descriptor left to make it. */
  private timer: TimerFd | undefined;
  private readonly parked = new Set<number>();
  /** How many times a listener was parked (for tests and the log). */
  parkings = 0;
  private lastWarning = 0;

  constructor(private readonly epoll: Epoll, private readonly warn: (message: string) => void = () => {}, private readonly delayMs = PARK_MS) {
    this.timer = new TimerFd();
    epoll.add(this.timer.fd, EPOLLIN);
  }

  /** Takes `fd` out of epoll until the timer fires; `errno` is why accept failed (logged at most once per 10 s). */
  park(fd: number, errno: number): void {
    if (this.parked.has(fd)) return;
    if (!this.timer) return;
    this.epoll.remove(fd);
    this.parked.add(fd);
    this.parkings++;
    this.timer.arm(this.delayMs);
    const now = Date.now();
    if (now - this.lastWarning < 10_000) return; // it lasts as long as the flood: one line per 10 s
    this.lastWarning = now;
    this.warn(`TCP accept failed (${NAMES[errno] ?? `errno ${errno}`}: out of descriptors or memory); listener parked for ${this.delayMs} ms at a time until it passes`);
  }

  isParked(fd: number): boolean {
    return this.parked.has(fd);
  }

  /** True for the timer's fd: the owner routes its epoll event to resume(). */
  owns(fd: number): boolean {
    return this.timer !== undefined && fd === this.timer.fd;
  }

  /** The timer fired: every parked listener goes back into epoll (and is parked again if accept still fails). */
  resume(): void {
    this.timer?.drain();
    for (const fd of this.parked) this.epoll.add(fd, EPOLLIN);
    this.parked.clear();
  }

  /** A listener being closed: not to be put back. */
  forget(fd: number): void {
    this.parked.delete(fd);
  }

  close(): void {
    this.parked.clear();
    if (this.timer) {
      this.epoll.remove(this.timer.fd);
      this.timer.close();
      this.timer = undefined;
    }
  }
}
