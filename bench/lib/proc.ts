/**
 * Processes for the benches: spawn with captured output, wait for readiness, stop by pid (never by name),
 * and read what the kernel says about them (/proc/PID/stat CPU of all threads, VmRSS, open fds).
 */
import { readFileSync, readdirSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "../..");
export const CLK_TCK = 100;
/** Cores this process may run on (its CPU affinity): what "the machine was the limit" is judged against. */
export const MACHINE_CORES = availableParallelism();

/** utime+stime of the whole process (every thread), in seconds; NaN when it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/**
 * CPU time of every live thread of a process, by thread id, from /proc/PID/task/TID/schedstat (time on
 * CPU in nanoseconds, so short windows at a few % of a core are measured, unlike /proc's 10 ms ticks).
 * A thread that exits between two readings takes its time with it: compare the sum with cpuSeconds().
 */
export function threadCpu(pid: number): Map<number, { name: string; seconds: number }> {
  const out = new Map<number, { name: string; seconds: number }>();
  forEachThread(pid, (tid, dir) => {
    const name = readFileSync(`${dir}/comm`, "utf8").trim();
    const ns = Number(readFileSync(`${dir}/schedstat`, "utf8").split(" ")[0]);
    out.set(tid, { name, seconds: ns / 1e9 });
  });
  return out;
}

/**
 * threadCpu() of a process, read every `everyMs` until stop(), which reads it once more and returns every
 * thread seen: one that exited meanwhile keeps its last reading. JSC's helper threads (HeapHelper,
 * JITWorker) exit after a few seconds idle and would otherwise take their CPU out of /proc/PID/task.
 */
export function watchThreadCpu(pid: number, everyMs = 500): { stop(): ReturnType<typeof threadCpu> } {
  const seen = threadCpu(pid);
  const read = () => {
    for (const [tid, t] of threadCpu(pid)) seen.set(tid, t);
  };
  const timer = setInterval(read, everyMs);
  return {
    stop() {
      clearInterval(timer);
      read();
      return seen;
    },
  };
}

/** CPU seconds of all live threads of a process (threadCpu summed; nanosecond counters, not ticks). */
export function threadCpuSeconds(pid: number): number {
  let total = 0;
  for (const t of threadCpu(pid).values()) total += t.seconds;
  return total;
}

/** CPU seconds each thread name used between two threadCpu() readings (threads of one name summed). */
export function threadCpuDelta(before: ReturnType<typeof threadCpu>, after: ReturnType<typeof threadCpu>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [tid, t] of after) {
    const used = t.seconds - (before.get(tid)?.seconds ?? 0);
    out.set(t.name, (out.get(t.name) ?? 0) + used);
  }
  return out;
}

/**
 * Context switches of every live thread of a process: voluntary (the thread slept: it had no work) and
 * involuntary (it was preempted with work in hand), from /proc/PID/task/TID/status.
 */
export function contextSwitches(pid: number): { voluntary: number; involuntary: number } {
  const out = { voluntary: 0, involuntary: 0 };
  forEachThread(pid, (_tid, dir) => {
    const status = readFileSync(`${dir}/status`, "utf8");
    out.voluntary += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    out.involuntary += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
  });
  return out;
}

/** Per live thread: its name, voluntary and involuntary context switches and CPU seconds (schedstat). */
export interface ThreadActivity {
  name: string;
  voluntary: number;
  involuntary: number;
  seconds: number;
}

export function threadActivity(pid: number): Map<number, ThreadActivity> {
  const out = new Map<number, ThreadActivity>();
  forEachThread(pid, (tid, dir) => {
    const status = readFileSync(`${dir}/status`, "utf8");
    out.set(tid, {
      name: readFileSync(`${dir}/comm`, "utf8").trim(),
      voluntary: Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0),
      involuntary: Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0),
      seconds: Number(readFileSync(`${dir}/schedstat`, "utf8").split(" ")[0]) / 1e9,
    });
  });
  return out;
}

/**
 * What each thread name did between two threadActivity() readings (threads of one name summed; a thread
 * born meanwhile counts from zero, one that ended is missing): which threads wake, and what they cost.
 */
export function threadActivityDelta(before: Map<number, ThreadActivity>, after: Map<number, ThreadActivity>): Record<string, { sleeps: number; preemptions: number; cpuS: number }> {
  const out: Record<string, { sleeps: number; preemptions: number; cpuS: number }> = {};
  for (const [tid, t] of after) {
    const b = before.get(tid);
    const sum = (out[t.name] ??= { sleeps: 0, preemptions: 0, cpuS: 0 });
    sum.sleeps += t.voluntary - (b?.voluntary ?? 0);
    sum.preemptions += t.involuntary - (b?.involuntary ?? 0);
    sum.cpuS += t.seconds - (b?.seconds ?? 0);
  }
  return out;
}

/** Calls read with each live thread's /proc directory; a thread that ends meanwhile is skipped. */
function forEachThread(pid: number, read: (tid: number, dir: string) => void): void {
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return; // the process is gone
  }
  for (const tid of tids) {
    try {
      read(Number(tid), `/proc/${pid}/task/${tid}`);
    } catch {
      // the thread ended between readdir and read
    }
  }
}

export function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

export function openFds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

export function threads(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/task`).length;
  } catch {
    return NaN;
  }
}

export type Proc = ReturnType<typeof Bun.spawn>;

export interface Spawned {
  proc: Proc;
  pid: number;
  output(): string;
  stop(timeoutMs?: number): Promise<number>;
}

async function collect(stream: ReadableStream<Uint8Array> | undefined, sink: string[]): Promise<void> {
  if (!stream) return;
  const decoder = new TextDecoder();
  try {
    for await (const chunk of stream) sink.push(decoder.decode(chunk));
  } catch {
    // the process went away
  }
}

const live = new Set<Proc>();
/** Every process a bench started is killed on exit, even after an exception. */
function killAll(): void {
  for (const p of live) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
}
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => {
  killAll();
  process.exit(130);
});

export function spawn(cmd: string[], options: { stdin?: "pipe" | "ignore"; cwd?: string } = {}): Spawned {
  const chunks: string[] = [];
  const proc = Bun.spawn(cmd, {
    cwd: options.cwd ?? ROOT,
    stdout: "pipe",
    stderr: "pipe",
    stdin: options.stdin ?? "ignore",
    env: { ...process.env, NO_COLOR: "1" },
  });
  live.add(proc);
  void proc.exited.then(() => live.delete(proc));
  void collect(proc.stdout as ReadableStream<Uint8Array>, chunks);
  void collect(proc.stderr as ReadableStream<Uint8Array>, chunks);
  return {
    proc,
    pid: proc.pid,
    output: () => chunks.join(""),
    stop: (timeoutMs = 5000) => stopProcess(proc, timeoutMs),
  };
}

export async function stopProcess(proc: Proc, timeoutMs = 5000): Promise<number> {
  if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode ?? -1;
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const code = await proc.exited;
  clearTimeout(timer);
  return code;
}

/** Waits until `ready()` holds, polling; throws (after killing the process) on exit or timeout. */
export async function waitFor(s: Spawned, what: string, ready: () => boolean, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (s.proc.exitCode !== null) throw new Error(`${what} exited with ${s.proc.exitCode}:\n${s.output().slice(-3000)}`);
    if (Date.now() > deadline) {
      s.proc.kill("SIGKILL");
      throw new Error(`${what} not ready within ${timeoutMs} ms:\n${s.output().slice(-3000)}`);
    }
    await Bun.sleep(20);
  }
}

export { ephemeralRange, freePort, isUdpFree, relayRange } from "../../test/ports.ts";
