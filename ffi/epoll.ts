/** epoll and eventfd: how an engine's Worker sleeps until a socket is readable or it is told to wake. */
import { EFD_CLOEXEC, EFD_NONBLOCK, EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD } from "./constants.ts";
import { EAGAIN, EINTR, check } from "./errno.ts";
import { libc, type Syscalls } from "./libc.ts";
import { EPOLL_EVENT, readHostU32, writeHostU32 } from "./layout.ts";

export class Epoll {
  readonly fd: number;
  readonly maxEvents: number;
  private readonly events: ArrayBuffer;
  private readonly bytes: Uint8Array;
  private readonly one = new ArrayBuffer(EPOLL_EVENT.size);
  private readonly oneBytes = new Uint8Array(this.one);
  private readonly sys: Syscalls;

  constructor(maxEvents = 256, sys: Syscalls = libc) {
    this.sys = sys;
    this.maxEvents = maxEvents;
    this.events = new ArrayBuffer(maxEvents * EPOLL_EVENT.size);
    this.bytes = new Uint8Array(this.events);
    this.fd = check("epoll_create1", sys.epollCreate1(EPOLL_CLOEXEC));
  }

  private control(op: number, fd: number, events: number, token: number, name: string): void {
    const b = this.oneBytes;
    b.fill(0);
    writeHostU32(b, EPOLL_EVENT.events, events);
    writeHostU32(b, EPOLL_EVENT.data, token);
    check(name, this.sys.epollCtl(this.fd, op, fd, this.one));
  }
  /** Watches fd; `token` (a u32) comes back with its events. */
  add(fd: number, events: number, token = fd): void {
    this.control(EPOLL_CTL_ADD, fd, events, token, "epoll_ctl(ADD)");
  }
  modify(fd: number, events: number, token = fd): void {
    this.control(EPOLL_CTL_MOD, fd, events, token, "epoll_ctl(MOD)");
  }
  remove(fd: number): void {
    this.sys.epollCtl(this.fd, EPOLL_CTL_DEL, fd, this.one);
  }

  /** Blocks up to timeoutMs (-1: forever). Returns the number of ready entries (0 on timeout or EINTR). */
  wait(timeoutMs: number): number {
    const n = this.sys.epollWait(this.fd, this.events, this.maxEvents, timeoutMs);
    if (n === -EINTR) return 0;
    return check("epoll_wait", n);
  }
  eventMask(i: number): number {
    return readHostU32(this.bytes, i * EPOLL_EVENT.size + EPOLL_EVENT.events);
  }
  eventToken(i: number): number {
    return readHostU32(this.bytes, i * EPOLL_EVENT.size + EPOLL_EVENT.data);
  }

  close(): void {
    this.sys.close(this.fd);
  }
}

/** An eventfd: another thread writes to it to wake the Worker blocked in epoll_wait. */
export class EventFd {
  readonly fd: number;
  private readonly cell = new BigUint64Array(1);
  private readonly sys: Syscalls;

  constructor(sys: Syscalls = libc) {
    this.sys = sys;
    this.fd = check("eventfd", sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  }
  /** Safe from any thread: it is a plain write(2) on a shared fd number. */
  static signal(fd: number, sys: Syscalls = libc): void {
    const one = new BigUint64Array([1n]);
    sys.write(fd, one, 8);
  }
  signal(): void {
    EventFd.signal(this.fd, this.sys);
  }
  /** Resets the counter; returns how many signals were pending (0 when none). */
  drain(): number {
    const r = this.sys.read(this.fd, this.cell, 8);
    if (r === -EAGAIN || r < 0) return 0;
    return Number(this.cell[0]);
  }
  close(): void {
    this.sys.close(this.fd);
  }
}
