/**
 * What the TcpTransport tests share: a STUN Binding request to open a connection with (its first
 * message must be STUN), clean-ups run after each test, and a pump that drives the transport by hand
 * through our epoll.
 */
import type { Epoll } from "../../ffi/index.ts";
import type { TcpTransport } from "../../src/engine/tcp-transport.ts";

export { bindingRequest } from "../binding-request.ts";

export const LOOPBACK = new Uint8Array([127, 0, 0, 1]);

/** Closers registered by a test; the test file runs them with `afterEach(runCleanup)`. */
export const cleanup: Array<() => void> = [];
export function runCleanup(): void {
  for (const f of cleanup.splice(0)) f();
}

/** Returns pump(done, ms): runs the transport's epoll events until `done()` or `ms` (default `defaultMs`). */
export function transportPump(epoll: Epoll, tcp: TcpTransport, defaultMs: number) {
  return async (done: () => boolean, ms = defaultMs): Promise<boolean> => {
    const end = Date.now() + ms;
    while (!done() && Date.now() < end) {
      const n = epoll.wait(0);
      for (let i = 0; i < n; i++) tcp.handleEvent(epoll.eventToken(i), epoll.eventMask(i), Date.now());
      await Bun.sleep(2);
    }
    return done();
  };
}
