import { UdpCapabilities, UdpSocketState, boundPort, Epoll, EPOLLIN } from "../../ffi/index.ts";

export const LOOPBACK4 = new Uint8Array([127, 0, 0, 1]);
export const LOOPBACK6 = (() => {
  const a = new Uint8Array(16);
  a[15] = 1;
  return a;
})();

export interface TestSocket {
  udp: UdpSocketState;
  fd: number;
  port: number;
}

/**
 * Opens bound loopback sockets and closes every one of them after the test. Each gets its own batching
 * capabilities (both on) unless the test hands in the ones it wants to watch.
 */
export class SocketScope {
  private readonly sockets: UdpSocketState[] = [];
  open(
    family: 4 | 6 = 4,
    options: { receiveTtlTos?: boolean; receiveErrors?: boolean; stickyTtlTos?: boolean; gso?: boolean; gro?: boolean } = {},
    caps = new UdpCapabilities({ recvmmsg: true, sendmmsg: true }),
  ): TestSocket {
    const udp = UdpSocketState.open({ family, address: family === 4 ? LOOPBACK4 : LOOPBACK6, port: 0, ...options }, caps);
    this.sockets.push(udp);
    return { udp, fd: udp.fd, port: boundPort(udp.fd) };
  }
  closeAll(): void {
    for (const s of this.sockets.splice(0)) s.close();
  }
}

/** Polls `f` until it returns non-zero or the deadline passes (loopback delivery is fast but not instant). */
export async function until(f: () => number, ms = 1000): Promise<number> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== 0 || Date.now() > end) return v;
    await Bun.sleep(1);
  }
}

/** Blocks (up to ms) until fd is readable, through our own epoll: no sleeping and hoping. */
export function waitReadable(fd: number, ms = 1000): boolean {
  const ep = new Epoll(1);
  try {
    ep.add(fd, EPOLLIN);
    return ep.wait(ms) === 1;
  } finally {
    ep.close();
  }
}
