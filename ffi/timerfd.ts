/**
 * A one-shot timer as a file descriptor (timerfd, CLOCK_MONOTONIC), for code that sleeps in epoll and has
 * no other clock: it becomes readable when it expires.
 */
import { dlopen, FFIType } from "bun:ffi";
import { check } from "./errno.ts";
import { libc, lastErrno } from "./libc.ts";

const CLOCK_MONOTONIC = 1;
const TFD_NONBLOCK = 0o4000;
const TFD_CLOEXEC = 0o2000000;
const { i32, ptr } = FFIType;
const lib = dlopen("libc.so.6", {
  timerfd_create: { args: [i32, i32], returns: i32 },
  timerfd_settime: { args: [i32, i32, ptr, ptr], returns: i32 },
});

export class TimerFd {
  readonly fd: number;
  /** struct itimerspec: it_interval (sec, nsec), it_value (sec, nsec), 64-bit each. */
  private readonly spec = new BigInt64Array(4);
  private readonly scratch = new BigUint64Array(1);

  constructor() {
    const fd = lib.symbols.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    this.fd = check("timerfd_create", fd < 0 ? -lastErrno() : fd);
  }

  /** Fires once, `ms` from now (at least 1 ms; 0 would disarm it). */
  arm(ms: number): void {
    const total = Math.max(1, Math.ceil(ms));
    this.spec[2] = BigInt(Math.floor(total / 1000));
    this.spec[3] = BigInt((total % 1000) * 1_000_000);
    lib.symbols.timerfd_settime(this.fd, 0, this.spec, null);
  }

  /** Consumes the expiry so epoll stops reporting it. */
  drain(): void {
    libc.read(this.fd, this.scratch, 8);
  }

  close(): void {
    libc.close(this.fd);
  }
}
