/**
 * A relay engine's Worker: builds the Engine from the data the main thread shared, reports ready (with
 * the eventfd that wakes it), then blocks in the engine's loop until asked to stop.
 */
import { workerData } from "node:worker_threads";
import { Engine, type EngineEvent, type EngineInit } from "./engine.ts";

declare const self: Worker;

const init = workerData as EngineInit;
const post = (event: EngineEvent) => self.postMessage(event);

let engine: Engine | undefined;
try {
  engine = new Engine(init, post);
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
