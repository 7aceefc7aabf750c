/**
 * An idle relay stays asleep: each engine blocks in epoll_wait with a long timeout (one turn a second
 * for the sweeps) and nothing else in the process ticks on its behalf. Counted from outside, as an
 * operator would: the voluntary context switches of the process's threads in /proc over an idle window
 * (each is one sleep, so one wake-up). A poll every few milliseconds, or a timer firing per engine at
 * a media rate, shows up here as hundreds of wake-ups. Under the call-shaped load the engine threads
 * make nearly all of the process's wake-ups (docs/PerformanceIterationLog.md, iteration 21).
 */
import { expect, test } from "bun:test";
import { readFileSync, readdirSync } from "node:fs";
import { startBunturn } from "./harness.ts";

interface ThreadSleeps {
  name: string;
  sleeps: number;
}

/** Every live thread of `pid`: its name and voluntary context switches so far. */
function threadSleeps(pid: number): Map<number, ThreadSleeps> {
  const out = new Map<number, ThreadSleeps>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const dir = `/proc/${pid}/task/${tid}`;
      const sleeps = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`${dir}/status`, "utf8"))?.[1]);
      out.set(Number(tid), { name: readFileSync(`${dir}/comm`, "utf8").trim(), sleeps });
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

const IDLE_MS = 3000;
const ENGINES = 2;

test("an idle relay's engines wake about once a second, and the whole process stays quiet", async () => {
  const server = await startBunturn({ args: ["--relay-threads", String(ENGINES)] });
  try {
    await Bun.sleep(500); // whatever the start-up left (compilation, a collection) settles first
    const before = threadSleeps(server.proc.pid);
    await Bun.sleep(IDLE_MS);
    const after = threadSleeps(server.proc.pid);
    const engines: number[] = [];
    let total = 0;
    for (const [tid, t] of after) {
      const woke = t.sleeps - (before.get(tid)?.sleeps ?? 0);
      total += woke;
      if (t.name === "Worker") engines.push(woke); // Bun's name for a Worker's thread: the engines
    }
    expect(engines.length).toBe(ENGINES);
    // One epoll_wait timeout a second: 3-4 in the window; a loop polling every 100 ms would make 30.
    for (const woke of engines) expect(woke).toBeLessThanOrEqual(10);
    // The runtime's own threads (GC, compiler, allocator) add a few a second when idle (about 10 measured).
    expect(total).toBeLessThanOrEqual(150);
  } finally {
    await server.stop();
  }
}, 30000);
