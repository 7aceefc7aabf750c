/**
 * libc through bun:ffi. Each wrapper returns the call's result, or -errno when it failed, so the hot
 * path never allocates an error object and tests can swap a call for one that fails on purpose.
 * errno lives at a fixed address per thread; every Worker that imports this module maps its own.
 */
import { dlopen, FFIType, toArrayBuffer, type Pointer } from "bun:ffi";

const { i32, u32, u64, ptr, i64_fast } = FFIType;

const lib = dlopen("libc.so.6", {
  socket: { args: [i32, i32, i32], returns: i32 },
  bind: { args: [i32, ptr, u32], returns: i32 },
  connect: { args: [i32, ptr, u32], returns: i32 },
  listen: { args: [i32, i32], returns: i32 },
  accept4: { args: [i32, ptr, ptr, i32], returns: i32 },
  setsockopt: { args: [i32, i32, i32, ptr, u32], returns: i32 },
  getsockopt: { args: [i32, i32, i32, ptr, ptr], returns: i32 },
  getsockname: { args: [i32, ptr, ptr], returns: i32 },
  recvmsg: { args: [i32, ptr, i32], returns: i64_fast },
  sendmsg: { args: [i32, ptr, i32], returns: i64_fast },
  recvmmsg: { args: [i32, ptr, u32, i32, ptr], returns: i32 },
  sendmmsg: { args: [i32, ptr, u32, i32], returns: i32 },
  close: { args: [i32], returns: i32 },
  epoll_create1: { args: [i32], returns: i32 },
  epoll_ctl: { args: [i32, i32, i32, ptr], returns: i32 },
  epoll_wait: { args: [i32, ptr, i32, i32], returns: i32 },
  eventfd: { args: [u32, i32], returns: i32 },
  read: { args: [i32, ptr, u64], returns: i64_fast },
  write: { args: [i32, ptr, u64], returns: i64_fast },
  __errno_location: { args: [], returns: ptr },
});

const c = lib.symbols;
const errnoCell = new Int32Array(toArrayBuffer(c.__errno_location() as Pointer, 0, 4));

/** errno of this thread, as the last failed call left it. */
export function lastErrno(): number {
  return errnoCell[0]!;
}

function result(r: number | bigint): number {
  // i64_fast returns a number whenever the value fits, which every ssize_t result here does.
  const n = Number(r);
  return n < 0 ? -errnoCell[0]! : n;
}

/** Anything bun:ffi accepts as a pointer argument: a raw address, an ArrayBuffer or a typed array. */
export type Ptr = number | ArrayBufferLike | ArrayBufferView | null;

/** The system calls the layers above use. Tests replace members to inject failures. */
export interface Syscalls {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Ptr, addrlen: number): number;
  connect(fd: number, addr: Ptr, addrlen: number): number;
  listen(fd: number, backlog: number): number;
  accept4(fd: number, addr: Ptr, lenPtr: Ptr, flags: number): number;
  setsockopt(fd: number, level: number, name: number, value: Ptr, len: number): number;
  getsockopt(fd: number, level: number, name: number, value: Ptr, lenPtr: Ptr): number;
  getsockname(fd: number, addr: Ptr, lenPtr: Ptr): number;
  recvmsg(fd: number, msg: Ptr, flags: number): number;
  sendmsg(fd: number, msg: Ptr, flags: number): number;
  recvmmsg(fd: number, msgvec: Ptr, vlen: number, flags: number): number;
  sendmmsg(fd: number, msgvec: Ptr, vlen: number, flags: number): number;
  close(fd: number): number;
  epollCreate1(flags: number): number;
  epollCtl(epfd: number, op: number, fd: number, event: Ptr): number;
  epollWait(epfd: number, events: Ptr, maxEvents: number, timeoutMs: number): number;
  eventfd(initval: number, flags: number): number;
  read(fd: number, buf: Ptr, count: number): number;
  write(fd: number, buf: Ptr, count: number): number;
}

// bun:ffi's declared parameter types are narrower than what it accepts at run time (numbers, buffers).
const p = (x: Ptr) => x as unknown as Pointer;

export const libc: Syscalls = {
  socket: (d, t, pr) => result(c.socket(d, t, pr)),
  bind: (fd, a, l) => result(c.bind(fd, p(a), l)),
  connect: (fd, a, l) => result(c.connect(fd, p(a), l)),
  listen: (fd, b) => result(c.listen(fd, b)),
  accept4: (fd, a, l, f) => result(c.accept4(fd, p(a), p(l), f)),
  setsockopt: (fd, lv, n, v, l) => result(c.setsockopt(fd, lv, n, p(v), l)),
  getsockopt: (fd, lv, n, v, l) => result(c.getsockopt(fd, lv, n, p(v), p(l))),
  getsockname: (fd, a, l) => result(c.getsockname(fd, p(a), p(l))),
  recvmsg: (fd, m, f) => result(c.recvmsg(fd, p(m), f)),
  sendmsg: (fd, m, f) => result(c.sendmsg(fd, p(m), f)),
  recvmmsg: (fd, v, n, f) => result(c.recvmmsg(fd, p(v), n, f, null)),
  sendmmsg: (fd, v, n, f) => result(c.sendmmsg(fd, p(v), n, f)),
  close: (fd) => result(c.close(fd)),
  epollCreate1: (f) => result(c.epoll_create1(f)),
  epollCtl: (e, o, fd, ev) => result(c.epoll_ctl(e, o, fd, p(ev))),
  epollWait: (e, ev, n, t) => result(c.epoll_wait(e, p(ev), n, t)),
  eventfd: (i, f) => result(c.eventfd(i, f)),
  read: (fd, b, n) => result(c.read(fd, p(b), n)),
  write: (fd, b, n) => result(c.write(fd, p(b), n)),
};
