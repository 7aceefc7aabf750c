/**
 * A relay engine's Worker: builds the Engine from the data the main thread shared, reports ready (with
 * the eventfd that wakes it), then blocks in the engine's loop until asked to stop.
 */
import { workerData } from "node:worker_threads";
import { Engine, type EngineEvent, type EngineInit } from "./engine.ts";
import { buildTurnServer } from "./core.ts";

declare const self: Worker;

const init = workerData as EngineInit;
const post = (event: EngineEvent) => self.postMessage(event);

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
