/**
 * A relay engine's Worker: warms the relay path up (warmup.ts; a failure there is logged and ignored),
 * builds the Engine from the data the main thread shared, reports ready (with the eventfd that wakes
 * it), then blocks in the engine's loop until asked to stop.
 */
import { workerData } from "node:worker_threads";
import { Engine, type EngineEvent, type EngineInit } from "./engine.ts";
import { buildTurnServer } from "./core.ts";
import { warmUp } from "./warmup.ts";

declare const self: Worker;

const init = workerData as EngineInit;
const post = (event: EngineEvent) => self.postMessage(event);

if (init.config.warmupMs > 0) {
  try {
    const r = warmUp(init, init.config.warmupMs);
    if (init.config.verbose) {
      post({ kind: "log", level: "debug", message: `engine ${init.index}: warm-up: ${r.allocations} allocations on 127.0.0.1, ${r.relayed} datagrams relayed in ${r.ms} ms` });
    }
  } catch (error) {
    post({ kind: "log", level: "warn", message: `engine ${init.index}: warm-up skipped: ${error instanceof Error ? error.message : String(error)}` });
  }
}

let engine: Engine | undefined;
try {
  const warn = (message: string) => post({ kind: "log", level: "warn", message });
  engine = new Engine(init, post, (io) => buildTurnServer(init, io, warn));
  const listeners = engine.openListeners();
  post({ kind: "ready", index: init.index, wakeFd: engine.wakeFd, listeners });
} catch (error) {
  engine?.stop();
  post({ kind: "failed", index: init.index, message: error instanceof Error ? error.message : String(error) });
  engine = undefined;
}
if (engine) {
  engine.run();
  post({ kind: "stopped", index: init.index });
}
