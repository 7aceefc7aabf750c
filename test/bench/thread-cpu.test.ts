/**
 * The benches' per-thread CPU (bench/lib/proc.ts): a thread that works and then exits inside the measured
 * window (JSC's JITWorker and HeapHelper threads exit after a few idle seconds) keeps its CPU in
 * watchThreadCpu's readings, where a reading of /proc/PID/task at the end no longer has it.
 */
import { expect, test } from "bun:test";
import { threadCpu, threadCpuDelta, watchThreadCpu } from "../../bench/lib/proc.ts";

const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

test("a thread that spins 300 ms and exits inside the window is counted", async () => {
  const script = `
    console.log("ready");
    await Bun.sleep(300);
    const w = new Worker(URL.createObjectURL(new Blob(["const t = Date.now(); while (Date.now() - t < 300) {} postMessage(1);"], { type: "application/javascript" })));
    w.onmessage = () => { w.terminate(); console.log("done"); };
    await Bun.sleep(10000);`;
  const p = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "ignore" });
  try {
    const out = p.stdout.getReader();
    await out.read(); // "ready": the worker starts 300 ms later
    const before = threadCpu(p.pid);
    const watching = watchThreadCpu(p.pid, 50);
    await out.read(); // "done": the worker has spun and been terminated
    await Bun.sleep(500); // its thread has exited by now
    const watched = total(threadCpuDelta(before, watching.stop()));
    const live = total(threadCpuDelta(before, threadCpu(p.pid)));
    expect(watched).toBeGreaterThan(0.25);
    expect(live).toBeLessThan(watched - 0.2); // the check would pass without the watch otherwise
  } finally {
    p.kill("SIGKILL");
  }
}, 20_000);
