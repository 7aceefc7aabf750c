/** Issue 6 (leaks): cancelled timers must not keep their targets alive until their old deadlines. */
import { expect, test } from "bun:test";
import { TimerQueue } from "../../src/turn/timer-queue.ts";
import { harness } from "./harness.ts";
import { StunMethod, writeLifetime } from "../../src/stun/index.ts";

test("10,000 schedule/cancel pairs leave a heap bounded by the live timers, not by the cancelled ones", () => {
  const q = new TimerQueue<{ timerSeq: number }>();
  const live = { timerSeq: 0 };
  q.schedule(live, 5_000);
  for (let i = 0; i < 10_000; i++) {
    const t = { timerSeq: 0 };
    q.schedule(t, 600_000 + i);
    q.cancel(t);
  }
  expect(q.size).toBeLessThanOrEqual(64);
  expect(q.peek()).toBe(5_000);
  expect(q.popDue(5_000)).toBe(live);
  expect(q.popDue(10_000_000)).toBeUndefined();
});

test("1,000 allocate/refresh(0) cycles keep the core's timer heap small (each deleted allocation was held until its deadline)", () => {
  const h = harness();
  const c = h.client();
  for (let i = 0; i < 1000; i++) {
    expect(c.allocate().ok).toBe(true);
    expect(c.request(StunMethod.Refresh, (w) => writeLifetime(w, 0)).ok).toBe(true);
  }
  expect(h.server.allocationCount).toBe(0);
  expect(h.server.timerCount).toBeLessThanOrEqual(64);
});
