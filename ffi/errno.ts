/** errno values (Linux x86_64) and the typed error every failed system call becomes. */

export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EIO = 5;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EINVAL = 22;
export const EMFILE = 24;
export const ENOSYS = 38;
export const EMSGSIZE = 90;
export const EPROTONOSUPPORT = 93;
export const EOPNOTSUPP = 95;
export const EAFNOSUPPORT = 97;
export const EADDRINUSE = 98;
export const EADDRNOTAVAIL = 99;
export const ENETUNREACH = 101;
export const ENOBUFS = 105;
export const ECONNREFUSED = 111;
export const EHOSTUNREACH = 113;

const NAMES: Record<number, string> = {
  [EPERM]: "EPERM", [ENOENT]: "ENOENT", [EINTR]: "EINTR", [EIO]: "EIO", [EBADF]: "EBADF", [EAGAIN]: "EAGAIN",
  [ENOMEM]: "ENOMEM", [EACCES]: "EACCES", [EFAULT]: "EFAULT", [EINVAL]: "EINVAL", [EMFILE]: "EMFILE",
  [ENOSYS]: "ENOSYS", [EMSGSIZE]: "EMSGSIZE", [EPROTONOSUPPORT]: "EPROTONOSUPPORT",
  [EOPNOTSUPP]: "EOPNOTSUPP", [EAFNOSUPPORT]: "EAFNOSUPPORT", [EADDRINUSE]: "EADDRINUSE",
  [EADDRNOTAVAIL]: "EADDRNOTAVAIL", [ENETUNREACH]: "ENETUNREACH", [ENOBUFS]: "ENOBUFS",
  [ECONNREFUSED]: "ECONNREFUSED", [EHOSTUNREACH]: "EHOSTUNREACH",
};

export function errnoName(errno: number): string {
  return NAMES[errno] ?? `errno ${errno}`;
}

/** A failed system call: which one, its errno and the errno's symbolic name (e.g. EADDRINUSE). */
export class SyscallError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;

  constructor(syscall: string, errno: number) {
    super(`${syscall} failed: ${errnoName(errno)}`);
    this.name = "SyscallError";
    this.syscall = syscall;
    this.errno = errno;
    this.code = errnoName(errno);
  }
}

/** Wrappers return -errno on failure; this turns such a value into a thrown SyscallError. */
export function check(syscall: string, result: number): number {
  if (result < 0) throw new SyscallError(syscall, -result);
  return result;
}

/** recvmmsg refused as a call (its errors concern no datagram): switched off for the process. */
export function isBatchUnsupported(errno: number): boolean {
  return errno === ENOSYS || errno === EINVAL || errno === EOPNOTSUPP;
}

/** Errors that can only be the call's own, never one datagram's (sendmmsg: switched off at once). */
export function isCallUnsupported(errno: number): boolean {
  return errno === ENOSYS || errno === EOPNOTSUPP;
}

/** A datagram the kernel will not send as it is (bad destination, too large, not allowed). */
export function isDatagramRefused(errno: number): boolean {
  return (
    errno === EINVAL || errno === EMSGSIZE || errno === EACCES || errno === EPERM || errno === EAFNOSUPPORT ||
    errno === EADDRNOTAVAIL || errno === ENETUNREACH || errno === EHOSTUNREACH
  );
}
