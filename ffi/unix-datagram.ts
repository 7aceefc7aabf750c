/**
 * Unix datagram sockets (AF_UNIX, SOCK_DGRAM), which node:dgram does not offer: a sender connected to a
 * path (the system logger's /dev/log) and a bound receiver (for tests that stand in for that logger).
 */
import { AF_UNIX, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK } from "./constants.ts";
import { check } from "./errno.ts";
import { libc, type Syscalls } from "./libc.ts";

const PATH_OFFSET = 2;
const SOCKADDR_UN_SIZE = 110;

function sockaddrUn(path: string): { name: Uint8Array; length: number } {
  const encoded = new TextEncoder().encode(path);
  if (encoded.length > SOCKADDR_UN_SIZE - PATH_OFFSET - 1) throw new RangeError(`unix socket path too long: ${path}`);
  const name = new Uint8Array(new ArrayBuffer(SOCKADDR_UN_SIZE));
  name[0] = AF_UNIX;
  name.set(encoded, PATH_OFFSET);
  return { name, length: PATH_OFFSET + encoded.length + 1 };
}

function open(path: string, call: "connect" | "bind", sys: Syscalls): number {
  const { name, length } = sockaddrUn(path);
  const fd = check("socket", sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const r = call === "connect" ? sys.connect(fd, name, length) : sys.bind(fd, name, length);
  if (r < 0) {
    sys.close(fd);
    check(call, r);
  }
  return fd;
}

/** A non-blocking datagram socket connected to `path`; write() sends one datagram. Throws with errno. */
export function connectUnixDatagram(path: string, sys: Syscalls = libc): number {
  return open(path, "connect", sys);
}

/** A non-blocking datagram socket bound to `path`; read() returns one datagram or -EAGAIN. */
export function bindUnixDatagram(path: string, sys: Syscalls = libc): number {
  return open(path, "bind", sys);
}
